use leptos::prelude::*;
use leptos_meta::Title;
use slipway_core::ids::AssetId;
use slipway_core::views::{ASSET_PAGE_HISTORY, AssetTemplates, NoUpgrade, RelationView};

use crate::api::fetch_asset;
use crate::components::{Loading, page_error_view};
use crate::pages::request::ParamsTable;

/// The relations an asset's page reads each way (the storage's `RELATIONS_SHOWN`):
/// active first, then the newest retired.
pub const RELATIONS_SHOWN: usize = 200;

/// Whether the relations read stop short of all of them in either direction.
fn relations_cut(relations: &[RelationView]) -> bool {
    let required_by = relations.iter().filter(|r| r.kind == "required by").count();
    required_by >= RELATIONS_SHOWN || relations.len() - required_by >= RELATIONS_SHOWN
}

#[component]
pub fn AssetPage() -> impl IntoView {
    let raw_id = crate::components::route_id();
    let id = move || raw_id().map(AssetId);
    let asset = Resource::new(id, |id| async move {
        match id {
            Some(id) => fetch_asset(id).await,
            None => Err(crate::components::unknown_id("asset")),
        }
    });
    view! {
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match asset.await {
                    Ok(a) => {
                        view! {
                            <Title text=format!("Asset {}", a.summary.name) />
                            <h1>{format!("Asset #{}: ", a.summary.id)}<code>{a.summary.name.clone()}</code></h1>
                            <p class="muted">{format!("{} · {} · created {} by ", a.summary.type_name, a.summary.state, a.summary.created_at)}
                                <a href=format!("/requests/{}", a.summary.request_id)>{format!("request #{}", a.summary.request_id)}</a>
                                " at commit " <code>{a.commit_id.chars().take(12).collect::<String>()}</code></p>
                            // A plain download from the server, not a page of the app: the
                            // router leaves links with `download` and `rel="external"` alone.
                            <p><a class="button" href=format!("/assets/{}/catalog-info.yaml", a.summary.id)
                                download="catalog-info.yaml" rel="external">"Download catalog-info.yaml"</a>
                                <span class="muted">" for Backstage"</span></p>
                            <TemplatesNotice templates=a.templates.clone() />
                            {(!a.actions.is_empty()).then(|| view! {
                                <section aria-label="Actions" class="asset-actions">
                                    <h2>"Actions"</h2>
                                    <ul class="plain">
                                        {a.actions.iter().map(|action| view! {
                                            <li><a class="button" href=format!("/assets/{}/actions/{}", a.summary.id, action.name)>{action.title.clone()}</a>
                                                " " <span class="muted">{action.description.clone()}</span></li>
                                        }).collect_view()}
                                    </ul>
                                </section>
                            })}
                            <div class="two-columns">
                                <section aria-label="Parameters">
                                    <h2>"Parameters"</h2>
                                    <ParamsTable params=a.params.clone() titles=a.param_titles.clone() caption="The asset's parameters".to_string() />
                                </section>
                                <div>
                                <section aria-label="Monitoring">
                                    <h2>"Monitoring"</h2>
                                    {if a.monitoring.is_empty() { view! { <p class="empty">"None recorded."</p> }.into_any() } else { view! {
                                        <ul class="plain">
                                            {a.monitoring.into_iter().map(|m| view! { <li><strong>{m.name.clone()}</strong>{format!(" ({})", m.kind)}<br /><code>{m.target.clone()}</code></li> }).collect_view()}
                                        </ul>
                                    }.into_any() }}
                                </section>
                                <section aria-label="Relations">
                                    <h2>"Relations"</h2>
                                    {relations_cut(&a.relations).then(|| view! {
                                        <p class="muted" data-testid="relations-cut">
                                            {format!("At most {RELATIONS_SHOWN} each way: the active ones first, then the newest retired. All of them: ")}
                                            <a href="/assets">"the asset search"</a>"."
                                        </p>
                                    })}
                                    {if a.relations.is_empty() { view! { <p class="empty">"None."</p> }.into_any() } else { view! {
                                        <ul class="plain">
                                            {a.relations.into_iter().map(|r| view! { <li>{format!("{} ", r.kind)}<a href=format!("/assets/{}", r.asset_id)>{r.asset_name.clone()}</a>{format!(" ({})", r.type_name)}{(r.state == "retired").then(|| view! { " " <span class="badge">"retired"</span> })}</li> }).collect_view()}
                                        </ul>
                                    }.into_any() }}
                                </section>
                                </div>
                            </div>
                            <section aria-label="History">
                                <h2>"History"</h2>
                                {(a.history.len() >= ASSET_PAGE_HISTORY).then(|| view! {
                                    <p class="muted" data-testid="history-cut">
                                        {format!("The newest {ASSET_PAGE_HISTORY} events. All of them: ")}
                                        <a href=format!("/audit?target=asset:{}", a.summary.id)>"the audit log"</a>
                                        " (for its readers), or "<code>{format!("GET /api/v1/assets/{}/history", a.summary.id)}</code>"."
                                    </p>
                                })}
                                {if a.history.is_empty() { view! { <p class="empty">"No events recorded."</p> }.into_any() } else { view! {
                                    <ol class="timeline">
                                        {a.history.into_iter().map(|e| view! { <li><time>{e.at.clone()}</time>" "<span class="what">{format!("{} by {}", e.action, e.actor)}</span><p class="detail">{e.detail.clone()}</p></li> }).collect_view()}
                                    </ol>
                                }.into_any() }}
                            </section>
                        }
                        .into_any()
                    }
                    Err(e) => page_error_view(e),
                }
            })}
        </Suspense>
    }
}

/// Why no upgrade waits for an asset whose templates moved on, in words.
fn no_upgrade_text(templates: &AssetTemplates) -> String {
    let now = &templates.current;
    match templates.no_upgrade {
        Some(NoUpgrade::TypeRemoved) => {
            " — its type is no longer in the catalog: its files stay as they are.".to_string()
        }
        Some(NoUpgrade::Retired) => " — it is retired: nothing renders it again.".to_string(),
        Some(NoUpgrade::NotOffered) => format!(
            " — the templates are now at {now}; its type offers no template upgrade, so an \
             action that renders it anew brings it to them."
        ),
        Some(NoUpgrade::Declined { request }) => format!(
            " — the templates are now at {now}; their upgrade was declined (request #{request}) \
             and is asked again when the templates or the asset change."
        ),
        Some(NoUpgrade::NoOwner) => format!(
            " — the templates are now at {now}; no one who asked for this asset may ask for \
             it now, so no upgrade is opened on its own: someone of its team asks for it \
             among its actions."
        ),
        Some(NoUpgrade::NotYet) | None => format!(
            " — the templates are now at {now}; the next upgrade sweep opens a request (after \
             any other request of this asset in flight)."
        ),
    }
}

/// Which catalog version rendered the asset, and whether an upgrade waits.
#[component]
fn TemplatesNotice(templates: AssetTemplates) -> impl IntoView {
    let rendered_by = if templates.rendered_by.is_empty() {
        view! { "an unrecorded catalog version" }.into_any()
    } else {
        view! { "catalog version " <code>{templates.rendered_by.clone()}</code> }.into_any()
    };
    let status = match (templates.is_current(), templates.upgrade_request) {
        (true, _) => view! { <span>" — the current one."</span> }.into_any(),
        (false, Some(id)) => view! {
            <span>{format!(" — the templates are now at {}; ", templates.current)}
                <a href=format!("/requests/{id}")>{format!("upgrade request #{id}")}</a>" waits."</span>
        }
        .into_any(),
        (false, None) => view! { <span>{no_upgrade_text(&templates)}</span> }.into_any(),
    };
    view! {
        <p data-testid="asset-templates">"Rendered by " {rendered_by} {status}</p>
    }
}
