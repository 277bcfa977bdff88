//! The request form posted without script (or before its island is live): the
//! new-request, revise and day-2 action pages post here, to their own path with
//! `/submit` after it. The posted text is read the way the browser's form reads
//! it ([`values_from_text`]) and handed to the same services the island's server
//! functions call. Every answer is a 303: to the request when it was made, else
//! back to the form's page with its values in the query (the page fills the form
//! from them) and the refusal in `__err`, which [`super::form_errors`] signs on
//! the way out. A secret never travels in that URL: it is dropped, and the page
//! asks for it again.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use slipway_core::catalog::{FieldKind, FieldSpec, ResourceType};
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::validate::{FieldError, coerce_form_value, values_from_text};
use slipway_core::views::{ActionDraft, RequestDraft};
use tower_sessions::Session;
use url::form_urlencoded;

use super::page_path::PagePath;
use super::session_caller;
use crate::services::detail::ReviewerRead;
use crate::services::{self, CallMeta, Caller, ServiceError};
use crate::state::AppState;

/// The hidden field that carries the form's submit key: the same key posted
/// twice finds the first request instead of making a second.
pub const SUBMIT_KEY_FIELD: &str = "__submit_key";
/// A query key of the way back, once per secret field whose typed value was
/// dropped rather than put in the URL.
pub const REENTER_KEY: &str = "__reenter";
/// The hidden field of the revise form naming the revision it was opened on: a
/// post whose revision has been superseded is a double post (the same values
/// again) or a stale form, never a quiet overwrite of the newer revision.
pub const REVISION_FIELD: &str = "__revision";
/// What the form's action adds to its page's path.
pub const SUBMIT_SUFFIX: &str = "/submit";

/// `POST /requests/new/{type_name}/submit`, from the new-request page.
pub async fn submit_new(
    State(state): State<AppState>,
    session: Session,
    meta: Option<axum::Extension<CallMeta>>,
    PagePath(type_name): PagePath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, &session, meta, Form::New { type_name }, body).await
}

/// `POST /requests/{id}/edit/submit`, from the revise page.
pub async fn submit_revision(
    State(state): State<AppState>,
    session: Session,
    meta: Option<axum::Extension<CallMeta>>,
    PagePath(id): PagePath<i64>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = Form::Revision { id: RequestId(id) };
    answer(&state, &session, meta, form, body).await
}

/// `POST /assets/{id}/actions/{action}/submit`, from a day-2 action's page.
pub async fn submit_action(
    State(state): State<AppState>,
    session: Session,
    meta: Option<axum::Extension<CallMeta>>,
    PagePath((asset_id, action)): PagePath<(i64, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = Form::Action {
        asset_id: AssetId(asset_id),
        action,
    };
    answer(&state, &session, meta, form, body).await
}

/// Which of the three pages the form was posted from.
enum Form {
    New { type_name: String },
    Revision { id: RequestId },
    Action { asset_id: AssetId, action: String },
}

impl Form {
    /// The page the form is on: where a refusal sends the browser back.
    fn page(&self) -> String {
        match self {
            Form::New { type_name } => format!("/requests/new/{}", path_segment(type_name)),
            Form::Revision { id } => format!("/requests/{id}/edit"),
            Form::Action { asset_id, action } => {
                format!("/assets/{asset_id}/actions/{}", path_segment(action))
            }
        }
    }

    /// The form's `action`, which also names the form in a refusal (`__path`),
    /// so that its page knows the refusal is its form's.
    fn action(&self) -> String {
        format!("{}{SUBMIT_SUFFIX}", self.page())
    }

    fn needs_submit_key(&self) -> bool {
        !matches!(self, Form::Revision { .. })
    }

    fn needs_base_revision(&self) -> bool {
        matches!(self, Form::Revision { .. })
    }

    /// The type whose fields the form shows: the requested type, or for a
    /// day-2 action (and its revision) the action's own form.
    async fn form_type(
        &self,
        state: &AppState,
        caller: &Caller,
    ) -> Result<ResourceType, ServiceError> {
        match self {
            Form::New { type_name } => services::catalog::resource_type(state, caller, type_name),
            Form::Action { asset_id, action } => {
                Ok(services::actions::form(state, caller, *asset_id, action)
                    .await?
                    .form_type)
            }
            Form::Revision { id } => {
                // The requester revising; a read of theirs marks nothing read for a reviewer.
                let detail = services::detail::request_detail(
                    state,
                    caller,
                    *id,
                    ReviewerRead::DoesNotCount,
                )
                .await?;
                match detail.action {
                    Some(on) => {
                        Ok(
                            services::actions::form(state, caller, on.asset_id, &on.action.name)
                                .await?
                                .form_type,
                        )
                    }
                    None => {
                        services::catalog::resource_type(state, caller, &detail.summary.type_name)
                    }
                }
            }
        }
    }

    async fn send(
        &self,
        state: &AppState,
        caller: &Caller,
        filled: Filled,
    ) -> Result<RequestId, ServiceError> {
        let Filled {
            params,
            plain,
            submit_key,
            base_revision,
        } = filled;
        match self {
            Form::New { type_name } => {
                let draft = RequestDraft {
                    type_name: type_name.clone(),
                    params,
                    submit_key,
                };
                services::requests::submit(state, caller, &draft).await
            }
            Form::Revision { id } => {
                let base = base_revision.unwrap_or_default();
                if let Some(done) = revised_since(state, caller, *id, base, &plain).await? {
                    return Ok(done);
                }
                match services::requests::resubmit_from(state, caller, (*id, Some(base)), &params)
                    .await
                {
                    Ok(()) => Ok(*id),
                    // Two posts of one form at once: the other one's revision is in.
                    Err(ServiceError::Conflict(message)) => {
                        match revised_since(state, caller, *id, base, &plain).await? {
                            Some(done) => Ok(done),
                            None => Err(ServiceError::Conflict(message)),
                        }
                    }
                    Err(other) => Err(other),
                }
            }
            Form::Action { asset_id, action } => {
                let draft = ActionDraft { params, submit_key };
                services::actions::submit(state, caller, *asset_id, action, &draft).await
            }
        }
    }
}

/// Whether the request has a newer revision than the one the form was opened
/// on: none (`None`); one with the posted values, a post sent twice (the
/// request); one with other values, a form gone stale (refused, naming it).
async fn revised_since(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
    base: i64,
    posted: &serde_json::Map<String, Value>,
) -> Result<Option<RequestId>, ServiceError> {
    let detail =
        services::detail::request_detail(state, caller, id, ReviewerRead::DoesNotCount).await?;
    let Some(newest) = detail.revisions.last() else {
        return Ok(None);
    };
    if newest.revision <= base {
        return Ok(None);
    }
    let same = posted
        .iter()
        .all(|(name, value)| newest.params.get(name) == Some(value));
    if same && newest.author == caller.user.username {
        return Ok(Some(id));
    }
    Err(ServiceError::Conflict(format!(
        "request #{id} was revised (revision {}) after this form was opened on revision {base}; \
         open it again to revise its newest revision",
        newest.revision
    )))
}

/// A type or action name as one segment of a path: whatever the posted path
/// held, the way back stays a path on this site.
fn path_segment(name: &str) -> String {
    const KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    percent_encoding::utf8_percent_encode(name, KEPT).to_string()
}

/// What goes back to the form's page with a refusal.
#[derive(Default)]
struct WayBack {
    /// The posted values of the form's fields, secrets left out.
    values: Vec<(String, String)>,
    /// The secret fields whose typed values were dropped.
    reenter: Vec<String>,
}

async fn answer(
    state: &AppState,
    session: &Session,
    meta: Option<axum::Extension<CallMeta>>,
    form: Form,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let meta = meta.map(|m| m.0).unwrap_or_default();
    let trace_id = meta.trace_id.clone();
    let mut way_back = WayBack::default();
    let submitted = async {
        let caller = session_caller(state, session, Some(meta)).await?;
        let body = body.map_err(unreadable)?;
        let pairs = posted_pairs(&body).map_err(|e| ServiceError::Invalid(vec![e]))?;
        let form_type = form.form_type(state, &caller).await?;
        let wanted = Wanted {
            submit_key: form.needs_submit_key(),
            base_revision: form.needs_base_revision(),
        };
        let filled = fill(&form_type, pairs, wanted, &mut way_back)?;
        form.send(state, &caller, filled).await
    };
    match submitted.await {
        Ok(id) => Redirect::to(&format!("/requests/{id}")).into_response(),
        // Signed out (the session ended while the form was open): sign in first,
        // as every page of the portal asks.
        Err(ServiceError::Unauthenticated) => {
            let next: String = form_urlencoded::byte_serialize(form.page().as_bytes()).collect();
            Redirect::to(&format!("/login?next={next}")).into_response()
        }
        Err(error) => {
            let refusal = refusal(error, trace_id.as_deref());
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&way_back.values)
                .extend_pairs(way_back.reenter.iter().map(|name| (REENTER_KEY, name)))
                .append_pair("__path", &form.action())
                .append_pair("__err", &refusal)
                .finish();
            Redirect::to(&format!("{}?{query}", form.page())).into_response()
        }
    }
}

/// A body the server would not read, in our words (the parser's would quote it).
fn unreadable(rejection: BytesRejection) -> ServiceError {
    let message = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "could not be read: it is larger than the {} KiB a form may send; shorten the longest value",
            super::FORM_BODY_BYTES / 1024
        )
    } else {
        "could not be read; reload the page and fill the form in again".to_string()
    };
    ServiceError::Invalid(vec![FieldError::new("form", message)])
}

/// The posted `name=value` pairs, in order. Read by hand rather than by the
/// usual parser, which would quietly put U+FFFD in place of bytes that are
/// not UTF-8 and submit that.
fn posted_pairs(body: &[u8]) -> Result<Vec<(String, String)>, FieldError> {
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            Ok((decoded(name)?, decoded(value)?))
        })
        .collect()
}

fn decoded(raw: &[u8]) -> Result<String, FieldError> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    String::from_utf8(percent_encoding::percent_decode(&spaced).collect()).map_err(|_| {
        FieldError::new(
            "form",
            "could not be read: it holds text that is not UTF-8; reload the page and fill the form in again",
        )
    })
}

/// The parameters and key a form's posted fields make.
struct Filled {
    params: Value,
    /// The posted values but the secrets, which a revision stores sealed.
    plain: serde_json::Map<String, Value>,
    submit_key: String,
    base_revision: Option<i64>,
}

/// Which hidden fields a form must post besides its fields.
#[derive(Clone, Copy)]
struct Wanted {
    submit_key: bool,
    base_revision: bool,
}

/// Reads the posted fields against the form's fields. Anything the form could
/// not have sent is refused here, before any service is asked: a field it does
/// not have, a field twice, a control character, a missing key.
fn fill(
    form_type: &ResourceType,
    pairs: Vec<(String, String)>,
    wanted: Wanted,
    way_back: &mut WayBack,
) -> Result<Filled, ServiceError> {
    let fields = form_type.fields();
    let mut problems = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut submit_key = None;
    let mut base_revision = None;
    let mut text = Vec::new();
    let mut secrets = Vec::new();
    for (name, value) in pairs {
        if seen.contains(&name) {
            problems.push(named_problem(
                &name,
                "was sent twice; reload the page and fill the form in again",
            ));
            continue;
        }
        seen.push(name.clone());
        if name == SUBMIT_KEY_FIELD {
            submit_key = Some(value);
            continue;
        }
        if name == REVISION_FIELD {
            base_revision = value.trim().parse::<i64>().ok().filter(|r| *r > 0);
            // Sent back with a refusal, the form still says the revision it
            // was opened on: a stale form stays stale, not one click from
            // overwriting the newer revision with its values.
            way_back.values.push((name, value));
            continue;
        }
        let Some(field) = fields.iter().find(|f| f.name == name) else {
            problems.push(named_problem(
                &name,
                "is not a field of this form; reload the page and fill the form in again",
            ));
            continue;
        };
        if let Some(problem) = control_characters(field, &value) {
            problems.push(problem);
        } else if field.secret {
            if !value.is_empty() {
                way_back.reenter.push(name.clone());
                secrets.push((field, value));
            }
        } else {
            way_back.values.push((name.clone(), value.clone()));
            text.push((name, value));
        }
    }
    // A checkbox left unticked sends nothing: it is false, not "not given".
    for field in &fields {
        if matches!(field.kind, FieldKind::Boolean) && !seen.contains(&field.name) {
            way_back.values.push((field.name.clone(), "false".into()));
            text.push((field.name.clone(), String::new()));
        }
    }
    let submit_key = submit_key.unwrap_or_default();
    if wanted.submit_key && submit_key.trim().is_empty() {
        problems.push(FieldError::new(
            "submit_key",
            "is missing, so a second post could make a second request; reload the page and submit it again",
        ));
    }
    if wanted.base_revision && base_revision.is_none() {
        problems.push(FieldError::new(
            "revision",
            "is missing or not a revision number, so the form's revision is not known; reload the page and submit it again",
        ));
    }
    if !problems.is_empty() {
        return Err(ServiceError::Invalid(problems));
    }
    let (mut params, _) = values_from_text(form_type, &text);
    let plain = params.clone();
    // `values_from_text` never takes a secret from text (a chat message, a link);
    // a form's password field is where a secret is typed. Left empty, it keeps
    // the value the request already has.
    for (field, typed) in secrets {
        let value = coerce_form_value(&field.kind, &typed);
        if !value.is_null() {
            params.insert(field.name.clone(), value);
        }
    }
    Ok(Filled {
        params: Value::Object(params),
        plain,
        submit_key,
        base_revision,
    })
}

/// A problem with a posted field, named when the name is one a form could
/// have: any other text is the poster's, and the refusal shows on our page.
fn named_problem(name: &str, rule: &str) -> FieldError {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        FieldError::new(name, rule)
    } else {
        FieldError::new("form", format!("has a field that {rule}"))
    }
}

/// A control character is never typed into a form (a list's box holds line
/// breaks, any box a tab): one in a post is refused, not stored.
fn control_characters(field: &FieldSpec, value: &str) -> Option<FieldError> {
    let breaks_allowed = matches!(field.kind, FieldKind::TextList { .. });
    let allowed = |c: char| c == '\t' || (breaks_allowed && (c == '\n' || c == '\r'));
    value
        .chars()
        .any(|c| c.is_control() && !allowed(c))
        .then(|| {
            FieldError::new(
                field.name.clone(),
                "must not hold control characters (a null byte, an escape, a line break in a one-line box)",
            )
        })
}

/// The refusal as the portal's pages read it from `__err`: the JSON of the
/// portal's error type (`app::error::AppError`, which this crate cannot name),
/// base64 as Leptos writes a server function's refusal. An internal failure is
/// logged here, once, and shown only by its reference.
fn refusal(error: ServiceError, trace_id: Option<&str>) -> String {
    let shown = match error {
        ServiceError::Unauthenticated => json!("Unauthenticated"),
        ServiceError::Forbidden(message) => json!({ "Forbidden": message }),
        ServiceError::NotFound(what) => json!({ "NotFound": what }),
        ServiceError::Invalid(fields) => json!({ "Invalid": fields }),
        ServiceError::PrecheckFailed(report) => json!({ "PrecheckFailed": report }),
        ServiceError::Conflict(message)
        | ServiceError::TooMany(message, _)
        | ServiceError::Unavailable(message, _) => {
            json!({ "Conflict": message })
        }
        ServiceError::Internal(message) => {
            let reference = trace_id
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            tracing::error!(reference, %message, "a posted request form failed");
            json!({ "Internal": reference })
        }
    };
    base64::engine::general_purpose::URL_SAFE.encode(shown.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_text_is_decoded_or_refused_never_repaired() {
        let pairs = posted_pairs(b"name=web+app&admins=a%0D%0Ab&&flag").unwrap_or_default();
        assert_eq!(
            pairs,
            [
                ("name".to_string(), "web app".to_string()),
                ("admins".into(), "a\r\nb".into()),
                ("flag".into(), String::new()),
            ]
        );
        let refused = posted_pairs(b"name=%FF%FE").err().map(|e| e.field);
        assert_eq!(refused.as_deref(), Some("form"));
    }

    #[test]
    fn only_plain_names_are_named_back() {
        assert_eq!(named_problem("replicas", "x").field, "replicas");
        for hostile in ["Call 555-0100 now", "a.b", "", &"x".repeat(65)] {
            assert_eq!(named_problem(hostile, "x").field, "form", "{hostile:?}");
        }
    }

    #[test]
    fn a_hostile_segment_stays_one_segment() {
        assert_eq!(path_segment("k8s-namespace"), "k8s-namespace");
        assert_eq!(path_segment("/evil?x=1"), "%2Fevil%3Fx%3D1");
    }
}
