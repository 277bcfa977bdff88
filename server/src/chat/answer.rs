//! From a chat message to its answer: parse, find who asks, call the services as
//! them on the chat channel, and say the outcome in a few lines. Every rule is the
//! services'; this file only translates.

use serde_json::Value;
use slipway_core::catalog::{FieldKind, FieldSpec, ResourceType};
use slipway_core::ids::RequestId;
use slipway_core::listing::{ListFilter, PageRequest};
use slipway_core::precheck::PrecheckReport;
use slipway_core::state::{Action, next_state};
use slipway_core::validate::{FieldError, values_from_text};
use slipway_core::views::{RequestDraft, ReviewDecision};

use super::command::{self, Command, ParseError, Reading};
use super::matrix::Opening;
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
    /// The asker and the bot only, in a room nobody else may join or read
    /// without an invitation.
    Direct,
    /// The asker and the bot only so far, but the room lets others join it
    /// without an invitation, or anyone read its history: whoever comes later
    /// reads what is said now. Every message is for the bot (nobody else talks
    /// here), and it answers as where others read.
    Open(Opening),
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

    /// Whether people talk among themselves here, so that only a command
    /// addressed to the bot is one.
    pub fn addressed_only(self) -> bool {
        matches!(self, Audience::Shared | Audience::Unknown)
    }

    /// What a command typed here starts with: where people talk among
    /// themselves, `!`, so that the bot can tell it from their talk.
    pub fn command_prefix(self) -> &'static str {
        match self.addressed_only() {
            true => "!",
            false => "",
        }
    }
}

/// Why a room of two is no private chat: the one wording of answers and
/// notices.
pub fn not_private_because(opening: Opening) -> &'static str {
    match opening {
        Opening::Joinable => "people may join this room without an invitation",
        Opening::WorldReadable => "anyone may read this room's history without joining",
    }
}

/// Why the bot holds back here what is the asker's alone, in a room of two that
/// is open to more, so that the asker knows what to change: said before the
/// first answer there (see `Listening::open_note`).
pub fn open_room_note(opening: Opening) -> String {
    format!(
        "This room is not private: {}. So I answer here as in a room others \
         read, and tell what is yours alone (your requests, pre-check details, reviewers' \
         comments) only in a direct chat that is invite-only and whose history is not \
         open to everyone.",
        not_private_because(opening)
    )
}

/// The answer, after the note on why the room is not private when there is
/// one to say.
pub fn with_open_note(note: Option<Opening>, reply: String) -> String {
    match note {
        Some(opening) => format!("{}\n{reply}", open_room_note(opening)),
        None => reply,
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
pub(crate) const CODE_USED_UP: &str = "Others read this room, and now that code: it is used up. Get a new \
one on your account page and send me `link <code>` in a direct chat, just you and me: I tell \
you there how your requests go.";

/// Said to a message whose HTML shows other words than its plain body, which
/// is what the bot would run, or holds markup a client may hide: a forwarded
/// message could look harmless and approve as whoever forwarded it.
pub(crate) const FORMATTING_DIFFERS: &str = "This message's formatted text and its plain \
text differ, or its formatting may hide part of it, so I did not run it: what you see \
might not be what I would run. Send the command again as plain text (in Element: /plain \
before it).";

/// Said where the bot could not tell who reads the room: it neither links (the
/// room may be shared) nor uses the code up (it may be a direct chat).
const ROOM_UNCHECKED: &str = "I could not check who else is in this room just now (the chat \
server did not answer), so I linked nothing and your code is still good: send it again in a \
minute.";

/// Said to words that would be a command in a direct chat and chatter in a
/// shared room, where the bot could not tell which the room is: neither run nor
/// passed over in silence.
pub(crate) const COMMAND_UNCHECKED: &str = "I could not check who else is in this room just \
now (the chat server did not answer), so I did not run that: send it again in a minute.";

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
    outcome.unwrap_or_else(|error| match error {
        // Only a request's own answer knows its type's rules: none are named.
        ServiceError::PrecheckFailed(report) if asker.audience.others_may_read() => {
            precheck_failed_aloud(&report, None, &[])
        }
        error => describe_error(&error, asker.event_id),
    })
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
        Audience::Shared | Audience::Open(_) => {
            services::chat::burn_code(state, code, asker.chat_user, asker.event_id).await?;
            return Ok(CODE_USED_UP.to_string());
        }
        Audience::Unknown => return Ok(ROOM_UNCHECKED.to_string()),
    }
    let caller =
        services::chat::link(state, asker.chat_user, asker.room_id, code, asker.event_id).await?;
    // A display name is the person's own words: on one line, like any name echoed.
    Ok(format!(
        "Linked: in Slipway you are {} ({}). I will tell you here how your requests go.",
        command::shorten(&caller.username, ECHOED_NAME_CHARS),
        command::shorten(&caller.display_name, ECHOED_NAME_CHARS)
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
        Audience::Shared | Audience::Open(_) => {
            let used_up =
                services::chat::burn_code(state, code, asker.chat_user, asker.event_id).await?;
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
            let outcome = approve(state, caller, asker, id, revision).await;
            refusal_aloud(state, caller, asker, id, Action::Approve, outcome).await
        }
        Command::RequestChanges { id, comment } => {
            let decision = ReviewDecision::RequestChanges;
            let outcome = decide(state, caller, asker, (id, decision), &comment).await;
            refusal_aloud(state, caller, asker, id, Action::RequestChanges, outcome).await
        }
        Command::Reject { id, comment } => {
            let decision = ReviewDecision::Reject;
            let outcome = decide(state, caller, asker, (id, decision), &comment).await;
            refusal_aloud(state, caller, asker, id, Action::Reject, outcome).await
        }
        Command::Retry { id } => {
            let outcome = operations::retry(state, caller, id)
                .await
                .map(|()| format!("Request #{id} is queued to run again."));
            refusal_aloud(state, caller, asker, id, Action::Retry, outcome).await
        }
        Command::Take { id } => {
            let outcome = operations::take_over(state, caller, id).await.map(|()| {
                format!(
                    "You handle request #{id} by hand now; resolve it with a note in the portal: {}",
                    request_url(state, id)
                )
            });
            refusal_aloud(state, caller, asker, id, Action::TakeOver, outcome).await
        }
    }
}

/// Said where others read instead of a refusal that tells about the request.
/// One sentence for every such refusal, so the room cannot tell a missing right
/// from the request's state.
pub const REFUSAL_HELD_BACK: &str = "Refused. Why tells about the request, and others read \
this room: send me the same in a direct chat, just you and me, or open";

/// A refusal of a step on a request, as a room others read may hear it. The
/// policy's refusals tell how the asker stands to the request (the teams it
/// belongs to and is offered by, who asked for it), and the state machine's
/// where it stands: what `status` keeps for a direct chat, so they are held
/// back there too. Kept as they are: a request the asker may not see at all
/// (its refusal says only that it is not theirs) and the conflicts of a step
/// that is possible from where the request stands (a revision that moved on,
/// an approval already given, a run still stopping).
async fn refusal_aloud(
    state: &AppState,
    caller: &Caller,
    asker: &Asker<'_>,
    id: RequestId,
    action: Action,
    outcome: Result<String, ServiceError>,
) -> Result<String, ServiceError> {
    let error = match outcome {
        Err(error @ (ServiceError::Forbidden(_) | ServiceError::Conflict(_)))
            if asker.audience.others_may_read() =>
        {
            error
        }
        other => return other,
    };
    let held_back = match services::detail::request_state(state, caller, id).await {
        Ok(now) => matches!(error, ServiceError::Forbidden(_)) || next_state(now, action).is_err(),
        // Not the asker's to see, or gone: the refusal says no more than that.
        Err(ServiceError::Forbidden(_) | ServiceError::NotFound(_)) => false,
        Err(_) => true,
    };
    if held_back {
        Ok(format!("{REFUSAL_HELD_BACK} {}", request_url(state, id)))
    } else {
        Err(error)
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
    lines.extend(report.field_errors.iter().map(|e| field_error_line(e, ty)));
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

fn field_error_line(error: &FieldError, ty: Option<&ResourceType>) -> String {
    match ty.filter(|_| !error.field.is_empty()) {
        Some(ty) => format!(
            "- {} ({}): {}",
            error.field,
            ty.param_title(&error.field),
            error.message
        ),
        None if error.field.is_empty() => format!("- {}", error.message),
        None => format!("- {}: {}", error.field, error.message),
    }
}

/// Said in every failed pre-check where others read, whatever was held back
/// (so that the room cannot tell whether anything was).
pub const PRECHECK_HELD_BACK: &str = "Others read this room, so I name here only what the \
type's rules find in the values you sent. The rest of the pre-check (quotas, names in use, \
requirements, your teams) I show in a direct chat, just you and me, and the portal shows it \
in the form.";

/// A failed pre-check as a room others read may hear it: only the errors of a
/// field against the type's rules, which the values sent alone decide
/// (`rule_errors`: the validator's own verdict on them; it reads nothing else).
/// A team's usage in the quotas, which request or asset holds a name, whether a
/// required asset exists and the asker's teams are the asker's to read, in a
/// direct chat or the portal.
pub fn precheck_failed_aloud(
    report: &PrecheckReport,
    ty: Option<&ResourceType>,
    rule_errors: &[FieldError],
) -> String {
    let said: Vec<String> = report
        .field_errors
        .iter()
        .filter(|e| !e.field.is_empty() && rule_errors.contains(e))
        .map(|e| field_error_line(e, ty))
        .collect();
    let mut lines = vec![if said.is_empty() {
        "The pre-check did not pass.".to_string()
    } else {
        "The pre-check did not pass:".to_string()
    }];
    lines.extend(said);
    lines.push(PRECHECK_HELD_BACK.to_string());
    lines.join("\n")
}

/// The answer to a request whose pre-check failed: in full to the asker alone,
/// where others read only what [`precheck_failed_aloud`] may say; both with
/// the portal's form, filled with what was sent.
fn precheck_answer(
    state: &AppState,
    audience: Audience,
    ty: &ResourceType,
    report: &PrecheckReport,
    (params, given): (&Value, &[(String, String)]),
) -> String {
    let said = if audience.others_may_read() {
        // The catalog's validator, as the pre-check's (the type as offered to
        // the asker narrows its choices to their teams).
        let rule_errors = state
            .catalog
            .validator(&ty.name)
            .map(|validator| validator.check(params))
            .unwrap_or_default();
        precheck_failed_aloud(report, Some(ty), &rule_errors)
    } else {
        precheck_failed(report, Some(ty))
    };
    format!(
        "{said}\nOr finish it in the portal, filled with what you sent: {}",
        prefilled_form_url(state, ty, given)
    )
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
        let sent = (&params, given);
        return Ok(precheck_answer(state, asker.audience, &ty, &report, sent));
    }
    let draft = RequestDraft {
        type_name: ty.name.clone(),
        params,
        submit_key: submit_key(asker.event_id),
    };
    let id = match requests::submit(state, caller, &draft).await {
        Ok(id) => id,
        // Something changed since the pre-check (a name taken, a quota filled).
        Err(ServiceError::PrecheckFailed(report)) => {
            let sent = (&draft.params, given);
            return Ok(precheck_answer(state, asker.audience, &ty, &report, sent));
        }
        Err(error) => return Err(error),
    };
    let request_state = services::detail::request_state(state, caller, id).await?;
    let name = command::shorten(
        report.resource_name.as_deref().unwrap_or_default(),
        ECHOED_NAME_CHARS,
    );
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
    // Names people chose are echoed on one line: a name or a requester's
    // display text must not add a line that reads as the bot's.
    let mut text = format!(
        "Request #{id}: {} {} — {} (revision {}, by {}, updated {}).",
        summary.type_title,
        command::shorten(&summary.resource_name, ECHOED_NAME_CHARS),
        summary.state.label(),
        summary.revision,
        command::shorten(&summary.requester, ECHOED_NAME_CHARS),
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
            command::shorten(&r.resource_name, ECHOED_NAME_CHARS),
            r.state.label()
        ));
    }
    Ok(lines.join("\n"))
}

/// An approval bound to what the reviewer read: the revision named in the
/// command, else the last review notice shown in the room the command was
/// typed in. With neither (a direct chat, a room the notice never reached, a
/// request in review before the bot started) nothing is approved: the bot shows
/// the revision and asks for it by number, so no one approves a revision that
/// came after the one they read, or one another room was shown.
async fn approve(
    state: &AppState,
    caller: &Caller,
    asker: &Asker<'_>,
    id: RequestId,
    revision: Option<i64>,
) -> Result<String, ServiceError> {
    let bound = match revision {
        // The decision's rights first: a revision number is for those who review.
        Some(revision) => {
            reviews::may_decide(state, caller, id, ReviewDecision::Approve).await?;
            Some(named_revision(state, caller, id, revision).await?)
        }
        None => {
            let mut conn = state.db.pool.acquire().await?;
            storage::chat::review_notice(&mut conn, (id, asker.room_id)).await?
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
                asker.audience.command_prefix()
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

/// Sending back or rejecting is bound to the last review notice shown in the
/// room, or without one to the current revision (neither applies anything).
async fn decide(
    state: &AppState,
    caller: &Caller,
    asker: &Asker<'_>,
    (id, decision): (RequestId, ReviewDecision),
    comment: &str,
) -> Result<String, ServiceError> {
    let notice = {
        let mut conn = state.db.pool.acquire().await?;
        storage::chat::review_notice(&mut conn, (id, asker.room_id)).await?
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

/// The most of a resource name or a requester's name an answer or a notice
/// echoes (names are far shorter; a longer one is cut, not refused).
pub const ECHOED_NAME_CHARS: usize = 200;

pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use slipway_core::precheck::{DependencyCheck, QuotaCheck};

    use super::*;
    use crate::catalog_source::{self, LoadedCatalog};

    fn shipped() -> LoadedCatalog {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog"));
        match catalog_source::load(dir) {
            Ok(catalog) => catalog,
            Err(error) => panic!("{error}"),
        }
    }

    /// What a payments member's `request k8s-namespace` may meet: a rule broken,
    /// the team's quota full, the name held by a request in flight, a team not
    /// theirs, a requirement missing.
    fn failed_everywhere(rule_errors: &[FieldError]) -> PrecheckReport {
        let mut field_errors = rule_errors.to_vec();
        field_errors.push(FieldError::new(
            "",
            "the resource name payments-x-prod is already taken by request #17",
        ));
        field_errors.push(FieldError::new(
            "team",
            "alice is not a member of team ledger: you can only ask for your own teams",
        ));
        field_errors.push(FieldError::new(
            "",
            "asset #9 already has request #23 in flight; one action at a time",
        ));
        PrecheckReport {
            resource_name: Some("payments-x-prod".into()),
            field_errors,
            quotas: vec![QuotaCheck {
                description: "CPU limit (cores) for team payments".into(),
                used: 120,
                requested: 64,
                limit: 128,
                unit: "cores".into(),
                ok: false,
            }],
            dependencies: vec![DependencyCheck {
                type_name: "k8s-namespace".into(),
                description: "a namespace payments-ledger-prod".into(),
                found: None,
                ok: false,
            }],
            risks: Vec::new(),
        }
    }

    #[test]
    fn where_others_read_a_failed_precheck_names_only_the_rules_broken() {
        let catalog = shipped();
        let Some(ty) = catalog.resource_type("k8s-namespace") else {
            panic!("k8s-namespace missing");
        };
        let Some(validator) = catalog.validator("k8s-namespace") else {
            panic!("no validator");
        };
        let sent = json!({"name": "x", "team": "payments", "environment": "prod",
                          "cpu_limit": 99, "memory_limit_gi": 8});
        let rule_errors = validator.check(&sent);
        assert!(
            rule_errors.iter().any(|e| e.field == "cpu_limit")
                && rule_errors.iter().any(|e| e.field == "name"),
            "{rule_errors:?}"
        );
        let report = failed_everywhere(&rule_errors);
        let aloud = precheck_failed_aloud(&report, Some(ty), &rule_errors);
        assert!(
            aloud.contains("- cpu_limit (CPU limit (cores)): "),
            "{aloud}"
        );
        assert!(aloud.contains("- name (Name): "), "{aloud}");
        let Some(named) = aloud.strip_suffix(PRECHECK_HELD_BACK) else {
            panic!("{aloud}");
        };
        for private in [
            "quota",
            "120",
            "used",
            "#17",
            "#23",
            "#9",
            "taken",
            "in flight",
            "alice",
            "ledger",
            "requirement",
        ] {
            assert!(!named.contains(private), "{private:?} said aloud: {aloud}");
        }
        // The asker alone reads it all.
        let direct = precheck_failed(&report, Some(ty));
        for said in [
            "- cpu_limit (CPU limit (cores)): ",
            "- quota: CPU limit (cores) for team payments (120 used + 64 requested > 128 cores)",
            "- the resource name payments-x-prod is already taken by request #17",
            "- team (Team): alice is not a member of team ledger",
            "- asset #9 already has request #23 in flight",
            "- missing requirement: a namespace payments-ledger-prod",
        ] {
            assert!(direct.contains(said), "{said:?} missing: {direct}");
        }
    }

    #[test]
    fn where_others_read_nothing_tells_whether_more_was_held_back() {
        // Only data the asker may read failed: the room hears no more than that
        // the pre-check did not pass, in the same words as ever.
        let report = failed_everywhere(&[]);
        let aloud = precheck_failed_aloud(&report, None, &[]);
        assert_eq!(
            aloud,
            format!("The pre-check did not pass.\n{PRECHECK_HELD_BACK}")
        );
        // An error the rules did not find is not said, whatever field it is on.
        let on_a_field = FieldError::new("team", "is taken by asset #4");
        let mut report = failed_everywhere(&[]);
        report.field_errors.push(on_a_field);
        let rule = FieldError::new("name", "must match ^[a-z]+$");
        report.field_errors.push(rule.clone());
        let aloud = precheck_failed_aloud(&report, None, std::slice::from_ref(&rule));
        assert_eq!(
            aloud,
            format!(
                "The pre-check did not pass:\n- name: must match ^[a-z]+$\n{PRECHECK_HELD_BACK}"
            )
        );
        // A field-less error is never a rule's on one value, even if listed as one.
        let whole = FieldError::new("", "the resource name x is already taken by asset #2");
        let aloud = precheck_failed_aloud(&report, None, &[whole]);
        assert!(!aloud.contains("asset #2"), "{aloud}");
    }

    #[test]
    fn only_a_direct_chat_is_read_by_the_asker_alone() {
        assert!(!Audience::Direct.others_may_read());
        assert!(Audience::Shared.others_may_read());
        assert!(Audience::Unknown.others_may_read());
        for opening in [Opening::Joinable, Opening::WorldReadable] {
            let open = Audience::Open(opening);
            assert!(open.others_may_read());
            assert!(!open.addressed_only(), "nobody else talks there yet");
            assert_eq!(open.command_prefix(), "");
        }
    }

    #[test]
    fn an_answer_in_an_open_room_says_why_it_holds_back() {
        let said = with_open_note(Some(Opening::WorldReadable), "Refused.".into());
        assert!(said.starts_with(
            "This room is not private: anyone may read this room's history without joining."
        ));
        assert!(said.ends_with("\nRefused."), "{said}");
        let joinable = with_open_note(Some(Opening::Joinable), String::new());
        assert!(
            joinable.contains("people may join this room without an invitation"),
            "{joinable}"
        );
        assert_eq!(with_open_note(None, "x".into()), "x");
    }
}
