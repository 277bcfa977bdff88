use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Redirect, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::api::{Logout, SignedIn, current_user};
use crate::pages::{
    account::SessionsPage, api_docs::ApiDocsPage, asset::AssetPage, asset_action::AssetActionPage,
    assets::AssetsPage, attention::AttentionPage, audit::AuditPage, catalog::CatalogPage,
    edit_request::EditRequestPage, flow_metrics::FlowMetricsPage, login::LoginPage,
    my_requests::MyRequestsPage, new_request::NewRequestPage, request::RequestPage,
    reviews::ReviewQueuePage, tokens::TokensPage,
};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::ssr::content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options islands=true />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The document's title for a page's own. `leptos_meta` writes it into the
/// server's HTML as it is, and a page's title may hold what a requester typed
/// (an asset's name) or a catalog wrote: `&` and `<` are escaped here, so
/// `</title>` in a name is text, not markup. (In the browser the title is set
/// as text through the DOM: nothing to escape there.)
fn page_title(page: String) -> String {
    let title = if page.is_empty() {
        "Slipway".to_string()
    } else {
        format!("{page} · Slipway")
    };
    if cfg!(feature = "ssr") {
        title
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    } else {
        title
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/slipway.css" />
        <Title formatter=page_title />
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <Header />
            <main id="main">
                // Pages render whole on the server (only islands hydrate), so each waits
                // for its data: a redirect to sign-in or a 404 can still set the status.
                <Routes fallback=|| view! { <NotFound /> }>
                    <Route path=path!("/") view=|| view! { <Redirect path="/catalog" /> } ssr=SsrMode::Async />
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/catalog") view=CatalogPage ssr=SsrMode::Async />
                    <Route path=path!("/requests") view=MyRequestsPage ssr=SsrMode::Async />
                    <Route path=path!("/requests/new/:type_name") view=NewRequestPage ssr=SsrMode::Async />
                    <Route path=path!("/requests/:id") view=RequestPage ssr=SsrMode::Async />
                    <Route path=path!("/requests/:id/edit") view=EditRequestPage ssr=SsrMode::Async />
                    <Route path=path!("/reviews") view=ReviewQueuePage ssr=SsrMode::Async />
                    <Route path=path!("/attention") view=AttentionPage ssr=SsrMode::Async />
                    <Route path=path!("/assets") view=AssetsPage ssr=SsrMode::Async />
                    <Route path=path!("/assets/:id") view=AssetPage ssr=SsrMode::Async />
                    <Route path=path!("/assets/:id/actions/:action") view=AssetActionPage ssr=SsrMode::Async />
                    <Route path=path!("/audit") view=AuditPage ssr=SsrMode::Async />
                    <Route path=path!("/metrics/flow") view=FlowMetricsPage ssr=SsrMode::Async />
                    <Route path=path!("/account/tokens") view=TokensPage ssr=SsrMode::Async />
                    <Route path=path!("/api-docs") view=ApiDocsPage ssr=SsrMode::Async />
                    <Route path=path!("/account/sessions") view=SessionsPage ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
        <HydrationMarker />
    }
}

/// Tells tests (and CSS) that the islands are live. It is the last island on the page
/// and islands hydrate in document order, so every other island is live by then.
#[island]
fn HydrationMarker() -> impl IntoView {
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
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
    let user = Resource::new(|| (), |_| async { current_user().await.ok().flatten() });
    let logout = ServerAction::<Logout>::new();
    view! {
        <header class="top">
            <a class="brand" href="/catalog">"Slipway"</a>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    user.await.map(|SignedIn { user, menu }| {
                        view! {
                            <nav aria-label="Main">
                                <A href="/catalog">"Catalog"</A>
                                <A href="/requests" exact=true>"My requests"</A>
                                {menu.review_queue.then(|| view! { <A href="/reviews">"Review queue"</A> })}
                                {menu.needs_attention.then(|| view! { <A href="/attention">"Needs attention"</A> })}
                                <A href="/assets">"Assets"</A>
                                <A href="/api-docs">"API"</A>
                                {menu.audit_log.then(|| view! { <A href="/audit">"Audit log"</A> })}
                                {menu.flow_metrics.then(|| view! { <A href="/metrics/flow">"Flow metrics"</A> })}
                            </nav>
                            <div class="who">
                                // Named for what it leads to, and starting with the name it
                                // shows (speech input calls a link by the words it sees).
                                <a href="/account/sessions" aria-label=format!("{}: your account", user.display_name)>{user.display_name.clone()}</a>
                                <A href="/account/tokens">"API tokens"</A>
                                <ActionForm action=logout>
                                    <button type="submit" class="link">"Sign out"</button>
                                </ActionForm>
                            </div>
                        }
                    })
                })}
            </Suspense>
        </header>
    }
}

#[cfg(all(test, feature = "ssr"))]
mod title_tests {
    use super::page_title;

    #[test]
    fn a_title_holds_markup_as_text() {
        assert_eq!(page_title(String::new()), "Slipway");
        assert_eq!(
            page_title("Asset x</title><meta http-equiv=refresh>&amp;".into()),
            "Asset x&lt;/title&gt;&lt;meta http-equiv=refresh&gt;&amp;amp; · Slipway"
        );
    }
}
