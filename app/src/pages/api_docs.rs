//! The REST API's reference, rendered on the server from the same OpenAPI document
//! `/api/v1/openapi.json` serves (generated from the handlers), so the two never
//! differ and the page needs no script and nothing from elsewhere.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::components::{Loading, page_error_view};
use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiReference {
    pub title: String,
    pub description: String,
    pub version: String,
    pub sections: Vec<ApiSection>,
    /// Each problem `type` the API answers with, and what to do about it.
    pub problems: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiSection {
    pub tag: String,
    pub description: String,
    pub endpoints: Vec<ApiEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiEndpoint {
    pub method: String,
    pub path: String,
    pub summary: String,
    pub parameters: Vec<ApiParameter>,
    pub body: Option<String>,
    pub responses: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiParameter {
    pub name: String,
    pub location: String,
    pub required: bool,
    pub description: String,
}

#[server]
pub async fn fetch_api_reference() -> Result<ApiReference, AppError> {
    let document = serde_json::to_value(slipway_server::api::openapi()).map_err(|e| {
        crate::ssr::user_error(slipway_server::services::ServiceError::Internal(format!(
            "OpenAPI document: {e}"
        )))
    })?;
    Ok(reference_from(&document))
}

#[cfg(feature = "ssr")]
fn text(value: &serde_json::Value, key: &str) -> String {
    value
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// The document, grouped by tag in the order the document lists its tags.
#[cfg(feature = "ssr")]
fn reference_from(document: &serde_json::Value) -> ApiReference {
    use serde_json::Value;
    let info = &document["info"];
    let mut sections: Vec<ApiSection> = document["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| ApiSection {
                    tag: text(t, "name"),
                    description: text(t, "description"),
                    endpoints: Vec::new(),
                })
                .collect()
        })
        .unwrap_or_default();
    let empty = serde_json::Map::new();
    for (path, item) in document["paths"].as_object().unwrap_or(&empty) {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let tag = operation["tags"][0].as_str().unwrap_or("other").to_string();
            let endpoint = ApiEndpoint {
                method: method.to_uppercase(),
                path: path.clone(),
                summary: [text(operation, "summary"), text(operation, "description")]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
                parameters: operation["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .map(|p| ApiParameter {
                                name: text(p, "name"),
                                location: text(p, "in"),
                                required: p["required"].as_bool().unwrap_or(false),
                                description: text(p, "description"),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                body: operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .and_then(|r| r.rsplit('/').next())
                    .map(str::to_string),
                responses: operation["responses"]
                    .as_object()
                    .map(|rs| {
                        rs.iter()
                            .map(|(code, r): (&String, &Value)| {
                                (code.clone(), text(r, "description"))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            match sections.iter_mut().find(|s| s.tag == tag) {
                Some(section) => section.endpoints.push(endpoint),
                None => sections.push(ApiSection {
                    tag,
                    description: String::new(),
                    endpoints: vec![endpoint],
                }),
            }
        }
    }
    sections.retain(|s| !s.endpoints.is_empty());
    ApiReference {
        title: text(info, "title"),
        description: text(info, "description"),
        version: text(info, "version"),
        sections,
        problems: slipway_server::api::problem::KINDS
            .iter()
            .map(|(kind, meaning)| (kind.to_string(), meaning.to_string()))
            .collect(),
    }
}

#[component]
pub fn ApiDocsPage() -> impl IntoView {
    let reference = Resource::new(|| (), |_| fetch_api_reference());
    view! {
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match reference.await {
                    Ok(reference) => view! { <Title text="API reference" /><Reference reference /> }.into_any(),
                    Err(e) => page_error_view(e),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Reference(reference: ApiReference) -> impl IntoView {
    view! {
        <h1>{reference.title} " " <span class="muted">"v" {reference.version}</span></h1>
        <p>{reference.description}</p>
        <p>
            "The machine-readable document: "
            <a href="/api/v1/openapi.json"><code>"/api/v1/openapi.json"</code></a>
            " (OpenAPI 3.1). Tokens: "
            <a href="/account/tokens">"Account → API tokens"</a>"."
        </p>
        <nav aria-label="API sections" class="toc">
            <ul>
                {reference.sections.iter().map(|s| {
                    let href = format!("#{}", s.tag);
                    view! { <li><a href=href>{s.tag.clone()}</a></li> }
                }).collect_view()}
                <li><a href="#problems">"problems"</a></li>
            </ul>
        </nav>
        {reference.sections.into_iter().map(|section| view! {
            <section id=section.tag.clone() class="api-section">
                <h2>{section.tag.clone()}</h2>
                <p class="muted">{section.description.clone()}</p>
                {section.endpoints.into_iter().map(|e| view! { <Endpoint endpoint=e /> }).collect_view()}
            </section>
        }).collect_view()}
        <section id="problems" class="api-section">
            <h2>"problems"</h2>
            <p class="muted">"Errors are " <code>"application/problem+json"</code> " (RFC 9457). Each " <code>"type"</code> " leads here."</p>
            <dl class="problems">
                {reference.problems.into_iter().map(|(kind, meaning)| view! {
                    <dt id=format!("problem-{kind}")><code>{kind.clone()}</code></dt>
                    <dd>{meaning}</dd>
                }).collect_view()}
            </dl>
        </section>
    }
}

#[component]
fn Endpoint(endpoint: ApiEndpoint) -> impl IntoView {
    let responses = endpoint
        .responses
        .iter()
        .map(|(code, description)| format!("{code} {description}").trim().to_string())
        .collect::<Vec<_>>()
        .join(" · ");
    view! {
        <article class="endpoint">
            <h3><span class=format!("method method-{}", endpoint.method.to_lowercase())>{endpoint.method.clone()}</span> " " <code>{endpoint.path.clone()}</code></h3>
            {(!endpoint.summary.is_empty()).then(|| view! { <p>{endpoint.summary.clone()}</p> })}
            {(!endpoint.parameters.is_empty()).then(|| view! {
                <table class="list">
                    <caption class="sr-only">{format!("Parameters of {} {}", endpoint.method, endpoint.path)}</caption>
                    <thead><tr><th scope="col">"Parameter"</th><th scope="col">"In"</th><th scope="col">"Required"</th><th scope="col">"Meaning"</th></tr></thead>
                    <tbody>
                        {endpoint.parameters.iter().map(|p| view! {
                            <tr><th scope="row"><code>{p.name.clone()}</code></th><td>{p.location.clone()}</td><td>{if p.required { "yes" } else { "no" }}</td><td>{p.description.clone()}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {endpoint.body.map(|b| view! { <p>"Body: " <code>{b}</code> " (JSON)"</p> })}
            <p class="muted">"Answers: " {responses}</p>
        </article>
    }
}
