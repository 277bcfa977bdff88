use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::list_types;
use crate::components::{Loading, error_view};

#[component]
pub fn CatalogPage() -> impl IntoView {
    let types = Resource::new(|| (), |_| list_types());
    view! {
        <Title text="Catalog" />
        <h1>"Catalog"</h1>
        <p class="muted">"Pick what you need. Every request is checked as you type, reviewed where the catalog says so, applied through GitOps and recorded."</p>
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match types.await {
                    Ok(types) => view! {
                        <ul class="cards">
                            {types.into_iter().map(|t| view! {
                                <li class="card">
                                    <h2>{t.title.clone()}</h2>
                                    <p>{t.description.clone()}</p>
                                    <p class="muted">{format!("Offered by {}", t.owner)}
                                        {t.auto_approve_when.clone().map(|w| format!(" · approved automatically when {w}"))}</p>
                                    {t.unavailable.clone().map(|why| view! { <p class="notice" data-testid="type-unavailable">{why}</p> })}
                                    <a class="button" href=format!("/requests/new/{}", t.name) aria-label=format!("Request a {}", t.title)>"Request"</a>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}
