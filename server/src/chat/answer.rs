//! From a chat message to its answer: parse, find who asks, call the services as
//! them on the chat channel, and say the outcome in a few lines. Every rule is the
//! services'; this file only translates.

use serde_json::Value;
use slipway_core::catalog::{FieldKind, FieldSpec, ResourceType};
use slipway_core::ids::RequestId;
use slipway_core::listing::{ListFilter, PageRequest};
use slipway_core::precheck::PrecheckReport;
use slipway_core::validate::values_from_text;
use slipway_core::views::{RequestDraft, ReviewDecision};

use super::command::{self, Command, ParseError, Reading};
use crate::services::{self, Caller, ServiceError, catalog, operations, requests, reviews};
use crate::state::AppState;
use crate::storage;

pub const HELP: &str = "Slipway commands (in a room with others, address them to me: \
start with ! as in !approve #12, or with my name):
  link <code>            link your chat account (get the code on your Slipway account page)
  types                  the resource types you can request
  show <type>            a type's parameters and their rules
  request <type> key=value …   pre-check and submit a request
  status #<id>           where a request stands
  mine                   your latest requests
Reviewers: approve #<id> · changes #<id> <what to change> · reject #<id> <why>
Platform team: retry #<id> · take #<id>";

pub(crate) const NOT_LINKED: &str = "I do not know you yet. Open your account page in Slipway, \
get a link code, and send me link <code> in a direct chat (a code others read is used up). \
Until then I can only show help.";

/// Who reads the room a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The asker and the bot only.
    Direct,
    /// Others too: a configured room, or one of more than two members.
    Shared,
    /// Its members could not be read (the homeserver failed to say): the bot
    /// answers as where others read, but uses nothing up on a guess.
    Unknown,
}

impl Audience {
    /// Whether others may read what the bot answers here.
    pub fn others_may_read(self) -> bool {
        self != Audience::Direct
    }

    /// What a command typed here starts with: where others read, `!`, so that the
    /// bot can tell it from people talking among themselves.
    pub fn command_prefix(self) -> &'static str {
        match self {
            Audience::Direct => "",
            Audience::Shared | Audience::Unknown => "!",
        }
    }
}

/// Who sent a message, and where.
pub struct Asker<'a> {
    pub chat_user: &'a str,
    pub room_id: &'a str,
    pub event_id: &'a str,
    pub audience: Audience,
}

/// Said where a link code was read by others: nobody may use it now.
const CODE_USED_UP: &str = "Others read this room, and now that code: it is used up. Get a new \
one on your account page and send me `link <code>` in a direct chat, just you and me: I tell \
you there how your requests go.";

/// Said where the bot could not tell who reads the room: it neither links (the
/// room may be shared) nor uses the code up (it may be a direct chat).
const ROOM_UNCHECKED: &str = "I could not check who else is in this room just now (the chat \
server did not answer), so I linked nothing and your code is still good: send it again in a \
minute.";

/// Links in answers point here; relative paths when no public URL is configured.
fn portal_url(state: &AppState, path: &str) -> String {
    let origin = state
        .settings
        .identity
        .public_origin
        .as_deref()
        .unwrap_or_default();
    format!("{origin}{path}")
}

pub fn request_url(state: &AppState, id: RequestId) -> String {
    portal_url(state, &format!("/requests/{id}"))
}

/// What the bot says to a message as [`command::read`] read it, if anything.
pub async fn reply(state: &AppState, asker: &Asker<'_>, reading: Reading<'_>) -> Option<String> {
    match reading {
        Reading::Command(text) => Some(answer(state, asker, text).await),
        Reading::CodeSaidAloud(code) => code_said_aloud(state, asker, &code)
            .await
            .unwrap_or_else(|error| Some(describe_error(&error, asker.event_id))),
        Reading::Chatter => None,
    }
}

/// The answer to one message: the outcome, a refusal in the service's words, or help.
pub async fn answer(state: &AppState, asker: &Asker<'_>, body: &str) -> String {
    let command = match command::parse(body) {
        Ok(command) => command,
        Err(error) => return not_understood(&error, asker.audience),
    };
    let outcome = match command {
        Command::Help => Ok(HELP.to_string()),
        Command::Link { code } => link(state, asker, &code).await,
        other => match services::chat::caller_for(state, asker.chat_user, asker.event_id).await {
            Ok(Some(caller)) => run(state, &caller, asker, other).await,
            Ok(None) => Ok(NOT_LINKED.to_string()),
            Err(error) => Err(error),
        },
    };
    outcome.unwrap_or_else(|error| describe_error(&error, asker.event_id))
}

fn not_understood(error: &ParseError, audience: Audience) -> String {
    let prefix = audience.command_prefix();
    match error {
        ParseError::Usage(usage) => format!("Usage: {prefix}{usage}"),
        ParseError::Bad(why) => {
            format!("I could not read that: {why}. Send {prefix}help for the commands.")
        }
        other => format!("Sorry, {other}.\n{HELP}"),
    }
}

/// A service's refusal in the words the portal would use; a fault on Slipway's side
/// is logged and answered with the event id to quote.
pub fn describe_error(error: &ServiceError, event_id: &str) -> String {
    match error {
        ServiceError::Internal(cause) => {
            tracing::error!(event_id, %cause, "chat command failed");
            format!(
                "Sorry, something went wrong on Slipway's side; quote {event_id} to the platform team."
            )
        }
        ServiceError::PrecheckFailed(report) => precheck_failed(report, None),
        ServiceError::Invalid(errors) => errors
            .iter()
            .map(|e| format!("- {e}"))
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("Refused: {other}."),
    }
}

async fn link(state: &AppState, asker: &Asker<'_>, code: &str) -> Result<String, ServiceError> {
    // The linked room hears how the person's requests go, reviewers' comments
    // included: a direct chat, not a room others read. And others read the code
    // there: it is used up, or whoever reads it first could link as its owner.
    // Where the room's members could not be read, neither is done: a homeserver's
    // hiccup must not cost the person their code.
    match asker.audience {
        Audience::Direct => {}
        Audience::Shared => {
            services::chat::burn_code(state, code).await?;
            return Ok(CODE_USED_UP.to_string());
        }
        Audience::Unknown => return Ok(ROOM_UNCHECKED.to_string()),
    }
    let caller =
        services::chat::link(state, asker.chat_user, asker.room_id, code, asker.event_id).await?;
    Ok(format!(
        "Linked: in Slipway you are {} ({}). I will tell you here how your requests go.",
        caller.username, caller.display_name
    ))
}

/// A `link <code>` said to a room rather than to the bot: the code is used up
/// where others read it, and the sender told only when it was a code that could
/// still link (a sentence that merely starts with "link" gets no answer).
async fn code_said_aloud(
    state: &AppState,
    asker: &Asker<'_>,
    code: &str,
) -> Result<Option<String>, ServiceError> {
    match asker.audience {
        Audience::Shared => {
            let used_up = services::chat::burn_code(state, code).await?;
            Ok(used_up.then(|| CODE_USED_UP.to_string()))
        }
        Audience::Unknown if !services::chat::looks_like_code(code) => Ok(None),
        Audience::Direct | Audience::Unknown => link(state, asker, code).await.map(Some),
    }
}

async fn run(
    state: &AppState,
    caller: &Caller,
    asker: &Asker<'_>,
    command: Command,
) -> Result<String, ServiceError> {
    match command {
        Command::Help | Command::Link { .. } => Ok(HELP.to_string()),
        Command::Types => Ok(types(state, caller)),
        Command::Show { type_name } => show(state, caller, &type_name),
        Command::Request { type_name, params } => {
            request(state, caller, asker, &type_name, &params).await
        }
        // What a person may read is theirs, not the room's: others in a shared
        // room may be from another team, or from no team at all.
        Command::Status { id } if asker.audience.others_may_read() => Ok(format!(
            "Others read this room: ask me `status #{id}` in a direct chat, just you and \
             me, or open {}",
            request_url(state, id)
        )),
        Command::Mine if asker.audience.others_may_read() => Ok(
            "Others read this room: ask me `mine` in a direct chat, just you and me.".to_string(),
        ),
        Command::Status { id } => status(state, caller, id).await,
        Command::Mine => mine(state, caller).await,
        Command::Approve { id, revision } => {
            approve(state, caller, asker.audience, id, revision).await
        }
        Command::RequestChanges { id, comment } => {
            decide(state, caller, id, ReviewDecision::RequestChanges, &comment).await
        }
        Command::Reject { id, comment } => {
            decide(state, caller, id, ReviewDecision::Reject, &comment).await
        }
        Command::Retry { id } => {
            operations::retry(state, caller, id).await?;
            Ok(format!("Request #{id} is queued to run again."))
        }
        Command::Take { id } => {
            operations::take_over(state, caller, id).await?;
            Ok(format!(
                "You handle request #{id} by hand now; resolve it with a note in the portal: {}",
                request_url(state, id)
            ))
        }
    }
}

fn types(state: &AppState, caller: &Caller) -> String {
    let mut lines = vec!["Resource types (show <type> for the parameters):".to_string()];
    for ty in catalog::list_types(state, caller) {
        let auto = ty
            .auto_approve_when
            .map(|rule| format!("; auto-approved when {rule}"))
            .unwrap_or_default();
        let unavailable = ty
            .unavailable
            .map(|_| "; not available on this Slipway yet")
            .unwrap_or_default();
        lines.push(format!(
            "- {} — {} (offered by {}{auto}{unavailable})",
            ty.name, ty.title, ty.owner
        ));
    }
    lines.join("\n")
}

fn rules_of(field: &FieldSpec) -> String {
    let mut rules = Vec::new();
    match &field.kind {
        FieldKind::Text {
            pattern,
            min_length,
            max_length,
        } => {
            rules.push("text".to_string());
            if let Some(p) = pattern {
                rules.push(format!("pattern {p}"));
            }
            if let Some(n) = min_length {
                rules.push(format!("at least {n} characters"));
            }
            if let Some(n) = max_length {
                rules.push(format!("at most {n} characters"));
            }
        }
        FieldKind::Integer { minimum, maximum } => {
            rules.push("integer".to_string());
            if let Some(n) = minimum {
                rules.push(format!("from {n}"));
            }
            if let Some(n) = maximum {
                rules.push(format!("up to {n}"));
            }
        }
        FieldKind::Boolean => rules.push("true or false".to_string()),
        FieldKind::Choice { options } => {
            let values: Vec<&str> = options.iter().map(|o| o.value.as_str()).collect();
            rules.push(format!("one of {}", values.join(", ")));
        }
        FieldKind::TextList { .. } => rules.push("a comma-separated list".to_string()),
    }
    if field.required {
        rules.push("required".to_string());
    }
    if let Some(default) = &field.default {
        rules.push(format!("default {default}"));
    }
    if field.secret {
        rules.push("secret: set it in the portal, never in chat".to_string());
    }
    rules.join(", ")
}

fn show(state: &AppState, caller: &Caller, type_name: &str) -> Result<String, ServiceError> {
    let ty = catalog::resource_type(state, caller, type_name)?;
    let mut lines = vec![format!("{} — {}: {}", ty.name, ty.title, ty.description)];
    for field in ty.fields() {
        lines.push(format!(
            "- {} ({}): {}",
            field.name,
            field.title,
            rules_of(&field)
        ));
    }
    lines.push(format!(
        "Request it here with: request {} key=value …, or in the portal: {}",
        ty.name,
        portal_url(state, &format!("/requests/new/{}", ty.name))
    ));
    Ok(lines.join("\n"))
}

/// The parameters as the form would hold them: the type's defaults, then each
/// given value read the way its form field reads it.
fn params_of(ty: &ResourceType, given: &[(String, String)]) -> Result<Value, String> {
    let (params, secrets) = values_from_text(ty, given);
    match secrets.first() {
        Some(key) => Err(format!(
            "{key} is secret: never type it in chat; request {} in the portal instead",
            ty.name
        )),
        None => Ok(Value::Object(params)),
    }
}

/// The portal's form for the type, filled with what was sent in chat: the
/// human fallback when a request needs more than a chat line.
fn prefilled_form_url(state: &AppState, ty: &ResourceType, given: &[(String, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in given {
        query.append_pair(key, value);
    }
    portal_url(
        state,
        &format!("/requests/new/{}?{}", ty.name, query.finish()),
    )
}

/// A failed pre-check as the form shows it: each field with its title and rule,
/// then quotas and requirements.
pub fn precheck_failed(report: &PrecheckReport, ty: Option<&ResourceType>) -> String {
    let mut lines = vec!["The pre-check did not pass:".to_string()];
    for error in &report.field_errors {
        let title = ty
            .filter(|_| !error.field.is_empty())
            .map(|t| format!(" ({})", t.param_title(&error.field)))
            .unwrap_or_default();
        if error.field.is_empty() {
            lines.push(format!("- {}", error.message));
        } else {
            lines.push(format!("- {}{title}: {}", error.field, error.message));
        }
    }
    for quota in report.quotas.iter().filter(|q| !q.ok) {
        lines.push(format!(
            "- quota: {} ({} used + {} requested > {} {})",
            quota.description, quota.used, quota.requested, quota.limit, quota.unit
        ));
    }
    for dependency in report.dependencies.iter().filter(|d| !d.ok) {
        lines.push(format!("- missing requirement: {}", dependency.description));
    }
    lines.push("Fix it and send the request again.".to_string());
    lines.join("\n")
}

/// Submit keys are at most 100 characters; a Matrix event id is about 44.
fn submit_key(event_id: &str) -> String {
    format!("chat:{}", command::shorten(event_id, 90))
}

async fn request(
    state: &AppState,
    caller: &Caller,
    asker: &Asker<'_>,
    type_name: &str,
    given: &[(String, String)],
) -> Result<String, ServiceError> {
    let ty = catalog::resource_type(state, caller, type_name)?;
    let params = match params_of(&ty, given) {
        Ok(params) => params,
        Err(why) => return Ok(format!("Refused: {why}.")),
    };
    let report = requests::precheck(state, caller, &ty.name, &params, None).await?;
    if !report.passed() {
        return Ok(format!(
            "{}\nOr finish it in the portal, filled with what you sent: {}",
            precheck_failed(&report, Some(&ty)),
            prefilled_form_url(state, &ty, given)
        ));
    }
    let draft = RequestDraft {
        type_name: ty.name.clone(),
        params,
        submit_key: submit_key(asker.event_id),
    };
    let id = match requests::submit(state, caller, &draft).await {
        Ok(id) => id,
        Err(ServiceError::PrecheckFailed(report)) => {
            return Ok(precheck_failed(&report, Some(&ty)));
        }
        Err(error) => return Err(error),
    };
    let request_state = services::detail::request_state(state, caller, id).await?;
    let name = report.resource_name.unwrap_or_default();
    Ok(format!(
        "Pre-check passed. Request #{id} ({} {name}) is submitted: {}. {}",
        ty.title,
        request_state.label(),
        request_url(state, id)
    ))
}

async fn status(state: &AppState, caller: &Caller, id: RequestId) -> Result<String, ServiceError> {
    let glance = services::detail::request_glance(state, caller, id).await?;
    let summary = &glance.summary;
    let mut text = format!(
        "Request #{id}: {} {} — {} (revision {}, by {}, updated {}).",
        summary.type_title,
        summary.resource_name,
        summary.state.label(),
        summary.revision,
        summary.requester,
        summary.updated_at
    );
    if let Some(error) = &glance.last_error {
        text.push_str(&format!(" Last error: {}", command::shorten(error, 300)));
    }
    text.push_str(&format!(" {}", request_url(state, id)));
    Ok(text)
}

async fn mine(state: &AppState, caller: &Caller) -> Result<String, ServiceError> {
    let page = requests::mine(
        state,
        caller,
        &ListFilter::default(),
        PageRequest::first(10),
    )
    .await?;
    if page.items.is_empty() {
        return Ok("You have no requests yet. Try: types".to_string());
    }
    let mut lines = vec!["Your latest requests:".to_string()];
    for r in page.items {
        lines.push(format!(
            "- #{} {} {} — {}",
            r.id,
            r.type_name,
            r.resource_name,
            r.state.label()
        ));
    }
    Ok(lines.join("\n"))
}

/// An approval bound to what the reviewer read: the revision named in the
/// command, else the last review notice the review room was shown. With neither
/// (no review room, or a request in review before the bot started) nothing is
/// approved: the bot shows the revision and asks for it by number, so no one
/// approves a revision that came after the one they read.
async fn approve(
    state: &AppState,
    caller: &Caller,
    audience: Audience,
    id: RequestId,
    revision: Option<i64>,
) -> Result<String, ServiceError> {
    let bound = match revision {
        Some(revision) => Some(named_revision(state, caller, id, revision).await?),
        None => {
            let mut conn = state.db.pool.acquire().await?;
            storage::chat::review_notice(&mut conn, id).await?
        }
    };
    match bound {
        Some(shown) => decide_on(state, caller, id, ReviewDecision::Approve, "", shown).await,
        None => {
            reviews::may_decide(state, caller, id, ReviewDecision::Approve).await?;
            let glance = services::detail::request_glance(state, caller, id).await?;
            let hash = glance.change_set_hash.unwrap_or_default();
            let revision = glance.summary.revision;
            Ok(format!(
                "Request #{id} is at revision {revision} (change set {}). Read it with its diff: {} \
                 — then, to approve exactly that revision: {}approve #{id} r{revision}",
                short_hash(&hash),
                request_url(state, id),
                audience.command_prefix()
            ))
        }
    }
}

/// The revision `revision` of a request the caller may see, with its change set's
/// hash; a revision that is no longer the current one is refused as stale.
async fn named_revision(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
    revision: i64,
) -> Result<(i64, String), ServiceError> {
    let glance = services::detail::request_glance(state, caller, id).await?;
    let current = glance.summary.revision;
    match glance.change_set_hash {
        Some(hash) if current == revision => Ok((revision, hash)),
        _ => Err(ServiceError::Conflict(format!(
            "request #{id} is at revision {current}, not {revision}: read it again (!status #{id})"
        ))),
    }
}

/// Sending back or rejecting is bound to the last review notice, or without one
/// to the current revision (neither applies anything).
async fn decide(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
    decision: ReviewDecision,
    comment: &str,
) -> Result<String, ServiceError> {
    let notice = {
        let mut conn = state.db.pool.acquire().await?;
        storage::chat::review_notice(&mut conn, id).await?
    };
    let shown = match notice {
        Some(shown) => shown,
        None => {
            let glance = services::detail::request_glance(state, caller, id).await?;
            let hash = glance
                .change_set_hash
                .ok_or_else(|| ServiceError::NotFound(format!("request #{id}'s revision")))?;
            (glance.summary.revision, hash)
        }
    };
    decide_on(state, caller, id, decision, comment, shown).await
}

async fn decide_on(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
    decision: ReviewDecision,
    comment: &str,
    (revision, hash): (i64, String),
) -> Result<String, ServiceError> {
    reviews::decide_on(state, caller, id, revision, decision, comment, Some(&hash)).await?;
    let done = match decision {
        ReviewDecision::Approve => "approved",
        ReviewDecision::RequestChanges => "sent back for changes",
        ReviewDecision::Reject => "rejected",
    };
    Ok(format!(
        "Request #{id} {done} (revision {revision}, change set {}).",
        short_hash(&hash)
    ))
}

pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
