use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Redirect, Route, Router, Routes};
use leptos_router::path;
use slipway_core::views::{Role, UserView};

use crate::api::{Login, Logout, current_user};
use crate::pages::{
    asset::AssetPage, assets::AssetsPage, attention::AttentionPage, audit::AuditPage,
    catalog::CatalogPage, edit_request::EditRequestPage, login::LoginPage,
    my_requests::MyRequestsPage, new_request::NewRequestPage, request::RequestPage,
    reviews::ReviewQueuePage,
};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The signed-in user, shared through context; reloaded whenever someone signs in or
/// out, because those navigate without reloading the page.
#[derive(Clone, Copy)]
pub struct CurrentUser(pub Resource<Option<UserView>>);

/// The sign-in and sign-out actions, shared so the header follows them.
#[derive(Clone, Copy)]
pub struct SessionActions {
    pub login: ServerAction<Login>,
    pub logout: ServerAction<Logout>,
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let actions = SessionActions {
        login: ServerAction::<Login>::new(),
        logout: ServerAction::<Logout>::new(),
    };
    provide_context(actions);
    let user = Resource::new(
        move || {
            (
                actions.login.version().get(),
                actions.logout.version().get(),
            )
        },
        |_| async { current_user().await.ok().flatten() },
    );
    provide_context(CurrentUser(user));
    // Effects run only in the browser: the attribute tells tests (and CSS) the page is live.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/slipway.css" />
        <Title formatter=|page: String| if page.is_empty() { "Slipway".to_string() } else { format!("{page} · Slipway") } />
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <Header />
            <main id="main">
                <Routes fallback=|| view! { <NotFound /> }>
                    <Route path=path!("/") view=|| view! { <Redirect path="/catalog" /> } />
                    <Route path=path!("/login") view=LoginPage />
                    <Route path=path!("/catalog") view=CatalogPage />
                    <Route path=path!("/requests") view=MyRequestsPage />
                    <Route path=path!("/requests/new/:type_name") view=NewRequestPage />
                    <Route path=path!("/requests/:id") view=RequestPage />
                    <Route path=path!("/requests/:id/edit") view=EditRequestPage />
                    <Route path=path!("/reviews") view=ReviewQueuePage />
                    <Route path=path!("/attention") view=AttentionPage />
                    <Route path=path!("/assets") view=AssetsPage />
                    <Route path=path!("/assets/:id") view=AssetPage />
                    <Route path=path!("/audit") view=AuditPage />
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found" />
        <h1>"Page not found"</h1>
        <p>"There is nothing at this address. " <A href="/catalog">"Go to the catalog"</A></p>
    }
}

#[component]
fn Header() -> impl IntoView {
    let CurrentUser(user) = expect_context::<CurrentUser>();
    let logout = expect_context::<SessionActions>().logout;
    view! {
        <header class="top">
            <a class="brand" href="/catalog">"Slipway"</a>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match user.await {
                        Some(user) => {
                            let has = |role| user.has(role);
                            view! {
                                <nav aria-label="Main">
                                    <A href="/catalog">"Catalog"</A>
                                    <A href="/requests" exact=true>"My requests"</A>
                                    {has(Role::Reviewer).then(|| view! { <A href="/reviews">"Review queue"</A> })}
                                    {has(Role::Platform).then(|| view! { <A href="/attention">"Needs attention"</A> })}
                                    <A href="/assets">"Assets"</A>
                                    {(has(Role::Platform) || has(Role::Auditor)).then(|| view! { <A href="/audit">"Audit log"</A> })}
                                </nav>
                                <div class="who">
                                    <span>{user.display_name.clone()}</span>
                                    <ActionForm action=logout>
                                        <button type="submit" class="link">"Sign out"</button>
                                    </ActionForm>
                                </div>
                            }
                                .into_any()
                        }
                        None => view! { <span></span> }.into_any(),
                    }
                })}
            </Transition>
        </header>
    }
}
