//! The few calls of the Matrix client-server API the bot needs, over plain HTTP:
//! who am I, sync, join, send a text message.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Secret;

/// What a homeserver call can end in.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("the homeserver asks to slow down for {0:?}")]
    RateLimited(Duration),
    #[error("the homeserver answered {status}: {errcode} {message}")]
    Refused {
        status: u16,
        errcode: String,
        message: String,
    },
    #[error("the homeserver cannot be reached: {0}")]
    Transport(#[from] reqwest::Error),
    /// Past what the bot reads of one answer; tried again later, as a fault.
    #[error("the homeserver's answer is larger than {0} bytes")]
    TooLarge(usize),
}

impl MatrixError {
    /// Whether trying again later may help (the homeserver restarting, overloaded,
    /// or the bot's account refused as a whole until an operator fixes it: a
    /// token revoked or rotated, terms to consent to). Only a refusal about one
    /// room (not in it, gone) is for good: a notice the account could not send
    /// while its token was bad must wait for a good one, not be dropped.
    pub fn is_transient(&self) -> bool {
        match self {
            MatrixError::RateLimited(_) | MatrixError::Transport(_) | MatrixError::TooLarge(_) => {
                true
            }
            MatrixError::Refused {
                status, errcode, ..
            } => {
                *status >= 500
                    || *status == 401
                    || matches!(
                        errcode.as_str(),
                        "M_UNKNOWN_TOKEN"
                            | "M_MISSING_TOKEN"
                            | "M_USER_DEACTIVATED"
                            | "M_CONSENT_NOT_GIVEN"
                            | "M_USER_LOCKED"
                            | "M_USER_SUSPENDED"
                    )
            }
        }
    }
}

/// A client of one homeserver, as one account.
#[derive(Clone)]
pub struct MatrixClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

/// One message from a room's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomMessage {
    pub room_id: String,
    pub event_id: String,
    pub sender: String,
    pub body: String,
    /// What its HTML `formatted_body` shows, when it has one: a client displays
    /// that, and the bot runs `body` only where the two say the same.
    pub shown: Option<super::formatted::Shown>,
    /// An end-to-end encrypted message: the bot cannot read it (its body is
    /// empty) and says so once.
    pub encrypted: bool,
    /// When the homeserver received it (milliseconds since the epoch; 0 when the
    /// event does not say).
    pub sent_at: i64,
}

impl RoomMessage {
    /// Whether the message shows one text and runs another (see
    /// [`super::formatted`]), read as addressed to a bot of `names`: it is
    /// not run.
    pub fn formatting_differs(&self, names: &[String]) -> bool {
        self.shown
            .as_ref()
            .is_some_and(|shown| super::formatted::differs(&self.body, shown, names))
    }

    /// The texts others read in the message: its body and what its HTML shows.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.body.as_str()).chain(self.shown.as_ref().map(|s| s.text.as_str()))
    }
}

/// Why a room's messages may be read by more than its members: its join rule
/// lets people in without an invitation, or its history is open to anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// `public`, `restricted` (members of another room join at will) or
    /// `knock_restricted`, or a rule Slipway does not know.
    Joinable,
    /// History visibility `world_readable`: anyone may read it without joining.
    WorldReadable,
}

/// A room's opening from its join rule and history visibility, `None` for
/// either state event when the room has none (the spec's defaults then: join
/// rule `invite`, history `shared`). `None` when only its members read it.
pub fn opening_of(join_rules: Option<&Value>, history: Option<&Value>) -> Option<Opening> {
    let history = history.and_then(|c| c.get("history_visibility"));
    if history.and_then(Value::as_str) == Some("world_readable") {
        return Some(Opening::WorldReadable);
    }
    // Content without a rule is read as `invite`, as homeservers do; a rule
    // that is not a string, or one not known, counts as open (the safe side).
    match join_rules.and_then(|c| c.get("join_rule")) {
        None => None,
        Some(rule) => match rule.as_str() {
            Some("invite" | "knock" | "private") => None,
            _ => Some(Opening::Joinable),
        },
    }
}

/// An invitation to a room, and who sent it (when the invite shows it).
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub room_id: String,
    pub inviter: Option<String>,
}

/// What a sync brought: rooms the account was invited to and new text messages,
/// in timeline order per room.
#[derive(Debug, Default)]
pub struct SyncBatch {
    pub next_batch: String,
    pub invites: Vec<Invite>,
    pub messages: Vec<RoomMessage>,
    /// Rooms someone joined or left since the last sync (or whose timeline was
    /// cut short, so that a change may be in the part not read): what the bot
    /// knows of who reads them is out of date.
    pub membership_changed: BTreeSet<String>,
}

#[derive(Deserialize)]
struct SyncResponse {
    next_batch: String,
    #[serde(default)]
    rooms: Rooms,
}

#[derive(Deserialize, Default)]
struct Rooms {
    #[serde(default)]
    join: BTreeMap<String, JoinedRoom>,
    #[serde(default)]
    invite: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
struct JoinedRoom {
    #[serde(default)]
    timeline: Timeline,
}

#[derive(Deserialize, Default)]
struct Timeline {
    #[serde(default)]
    events: Vec<Value>,
    /// More events came since the last sync than the page holds; the ones before
    /// `events` are read back from `prev_batch`.
    #[serde(default)]
    limited: bool,
    #[serde(default)]
    prev_batch: Option<String>,
}

/// Pages of a room's gap read back after a limited sync, at most: a bot that was
/// away for long answers the newest thousand messages of a room and logs the rest.
const MAX_GAP_PAGES: usize = 10;
const GAP_FILTER: &str = r#"{"types":["m.room.message","m.room.encrypted","m.room.member","m.room.join_rules","m.room.history_visibility"]}"#;

/// The bot reads text messages (and notices encrypted ones it cannot read), a
/// bounded number per room and sync, membership changes (a room's messages
/// from before the bot joined it are history, never commands), and changes of
/// who else may join or read a room.
const SYNC_FILTER: &str = r#"{"presence":{"types":[]},"account_data":{"types":[]},"room":{"ephemeral":{"types":[]},"state":{"types":[]},"timeline":{"types":["m.room.message","m.room.encrypted","m.room.member","m.room.join_rules","m.room.history_visibility"],"limit":100}}}"#;
/// The same with a few events per room, for a sync whose answer was too large
/// (rooms full of the largest messages): the rest of each room is read back as
/// a gap, page by page. Asked again in full, the same answer would be too large
/// for ever, and the bot deaf.
const SMALL_SYNC_FILTER: &str = r#"{"presence":{"types":[]},"account_data":{"types":[]},"room":{"ephemeral":{"types":[]},"state":{"types":[]},"timeline":{"types":["m.room.message","m.room.encrypted","m.room.member","m.room.join_rules","m.room.history_visibility"],"limit":5}}}"#;

/// A sync's answer, read.
fn sync_response(body: Value) -> Result<SyncResponse, MatrixError> {
    serde_json::from_value(body).map_err(|e| MatrixError::Refused {
        status: 200,
        errcode: "M_BAD_JSON".into(),
        message: format!("a sync answer Slipway cannot read: {e}"),
    })
}

/// Invitations only: no room's timeline, state or anything else.
const INVITES_FILTER: &str = r#"{"presence":{"types":[]},"account_data":{"types":[]},"room":{"ephemeral":{"types":[]},"state":{"types":[]},"timeline":{"limit":0},"account_data":{"types":[]}}}"#;

/// Whether the event edits an earlier message (`m.replace`): the edit is not a
/// new command, and Element's edit body (`* approve #12`) is no command at all.
/// An encrypted edit shows the relation in the clear too.
fn is_edit(content: &Value) -> bool {
    content
        .pointer("/m.relates_to/rel_type")
        .and_then(Value::as_str)
        == Some("m.replace")
}

/// A timeline event as a message, if it is a text message with a body or an
/// encrypted one; edits of earlier messages are not read.
fn message_of(room_id: &str, event: &Value) -> Option<RoomMessage> {
    let content = event.get("content")?;
    if is_edit(content) {
        return None;
    }
    let encrypted = match event.get("type")?.as_str()? {
        "m.room.encrypted" => true,
        "m.room.message" if content.get("msgtype")?.as_str()? == "m.text" => false,
        _ => return None,
    };
    let body = match encrypted {
        true => String::new(),
        false => content.get("body")?.as_str()?.to_string(),
    };
    Some(RoomMessage {
        room_id: room_id.to_string(),
        event_id: event.get("event_id")?.as_str()?.to_string(),
        sender: event.get("sender")?.as_str()?.to_string(),
        body,
        shown: shown_html(content),
        encrypted,
        sent_at: event
            .get("origin_server_ts")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    })
}

/// What a message's HTML shows, when it has HTML (a `formatted_body` in the
/// only format the spec defines). Only a reply may hide a quoted fallback.
fn shown_html(content: &Value) -> Option<super::formatted::Shown> {
    use super::formatted::Sent;
    if content.get("format").and_then(Value::as_str) != Some("org.matrix.custom.html") {
        return None;
    }
    let html = content.get("formatted_body")?.as_str()?;
    let replied_to = content.pointer("/m.relates_to/m.in_reply_to/event_id");
    let sent = match replied_to.and_then(Value::as_str) {
        Some(_) => Sent::AsReply,
        None => Sent::Alone,
    };
    Some(super::formatted::visible_text(html, sent))
}

/// Who sent an invitation: the sender of the membership event that invites the
/// bot itself (another server may put other members' events in the stripped
/// state, one "sent" by someone of the bot's own homeserver among them).
fn inviter_of(invite: &Value, bot: &str) -> Option<String> {
    invite
        .pointer("/invite_state/events")?
        .as_array()?
        .iter()
        .rfind(|e| {
            e.get("type").and_then(Value::as_str) == Some("m.room.member")
                && e.get("state_key").and_then(Value::as_str) == Some(bot)
                && e.pointer("/content/membership").and_then(Value::as_str) == Some("invite")
        })?
        .get("sender")?
        .as_str()
        .map(str::to_string)
}

/// Whether the event changes who may read the room: a membership event other
/// than a member changing their name or picture (from "join" to "join"; one
/// that does not say what it changed from counts as a change), or a change of
/// its join rule or history visibility.
fn changes_readers(event: &Value) -> bool {
    let membership = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    match event.get("type").and_then(Value::as_str) {
        Some("m.room.member") => {
            membership("/content/membership") != Some("join")
                || membership("/unsigned/prev_content/membership") != Some("join")
        }
        Some("m.room.join_rules" | "m.room.history_visibility") => true,
        _ => false,
    }
}

/// Whether the event is the bot joining the room (not a change of its name or
/// picture, which is a membership event from "join" to "join").
fn is_own_join(event: &Value, bot: &str) -> bool {
    event.get("type").and_then(Value::as_str) == Some("m.room.member")
        && event.get("state_key").and_then(Value::as_str) == Some(bot)
        && event.pointer("/content/membership").and_then(Value::as_str) == Some("join")
        && event
            .pointer("/unsigned/prev_content/membership")
            .and_then(Value::as_str)
            != Some("join")
}

/// A room's messages after the bot's last join in `events`: a room joined since
/// the last sync (at start, or invited while the bot was down) comes with its
/// history, which was never said to the bot.
fn messages_after_own_join(room: &str, events: &[Value], bot: &str) -> Vec<RoomMessage> {
    let start = events
        .iter()
        .rposition(|e| is_own_join(e, bot))
        .map_or(0, |joined| joined + 1);
    events[start..]
        .iter()
        .filter_map(|event| message_of(room, event))
        .collect()
}

impl SyncResponse {
    /// The batch, with each room's events before the page (`gaps`, oldest first)
    /// ahead of the page's own.
    fn into_batch(self, mut gaps: BTreeMap<String, Vec<Value>>, bot: &str) -> SyncBatch {
        let mut messages = Vec::new();
        let mut membership_changed = BTreeSet::new();
        for (room, joined) in &self.rooms.join {
            let mut events = gaps.remove(room).unwrap_or_default();
            events.extend(joined.timeline.events.iter().cloned());
            if joined.timeline.limited || events.iter().any(changes_readers) {
                membership_changed.insert(room.clone());
            }
            messages.extend(messages_after_own_join(room, &events, bot));
        }
        SyncBatch {
            next_batch: self.next_batch,
            invites: self
                .rooms
                .invite
                .iter()
                .map(|(room, invite)| Invite {
                    room_id: room.clone(),
                    inviter: inviter_of(invite, bot),
                })
                .collect(),
            messages,
            membership_changed,
        }
    }

    /// The rooms whose page was cut short, with where their gap ends.
    fn limited_rooms(&self) -> Vec<(String, String)> {
        self.rooms
            .join
            .iter()
            .filter(|(_, joined)| joined.timeline.limited)
            .filter_map(|(room, joined)| {
                let from = joined.timeline.prev_batch.clone()?;
                Some((room.clone(), from))
            })
            .collect()
    }
}

/// `retry_after_ms` of a 429 answer (the header is the newer way; both are read).
fn retry_after(headers: &reqwest::header::HeaderMap, body: &Value) -> Duration {
    let from_body = body.get("retry_after_ms").and_then(Value::as_u64);
    let from_header = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| secs.saturating_mul(1000));
    // A zero wait would make the caller spin; 50 ms is the least it pauses.
    Duration::from_millis(from_body.or(from_header).unwrap_or(1000).clamp(50, 300_000))
}

/// The most of a homeserver's answer read: a sync of the bot's few rooms since
/// its last one is far smaller, and a homeserver that is faulty (or not one)
/// must not make the bot hold hundreds of megabytes.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// The answer's body, or `None` past [`MAX_ANSWER_BYTES`] (not read further).
async fn read_capped(response: &mut reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

impl MatrixClient {
    pub fn new(homeserver: &str, token: Secret) -> Result<MatrixClient, reqwest::Error> {
        // Every call ends within a bound (a sync sets its own, longer one): a
        // homeserver that hangs must not hold the bot.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(MatrixClient {
            http,
            base: homeserver.trim_end_matches('/').to_string(),
            token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/_matrix/client/v3{path}", self.base)
    }

    /// Sends and reads the JSON answer; a refusal keeps the homeserver's errcode.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, MatrixError> {
        let mut response = request.bearer_auth(self.token.expose()).send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body: Value = match read_capped(&mut response).await? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            None => return Err(MatrixError::TooLarge(MAX_ANSWER_BYTES)),
        };
        if status.as_u16() == 429 {
            return Err(MatrixError::RateLimited(retry_after(&headers, &body)));
        }
        if !status.is_success() {
            let text = |key: &str| {
                body.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            return Err(MatrixError::Refused {
                status: status.as_u16(),
                errcode: text("errcode"),
                message: text("error"),
            });
        }
        Ok(body)
    }

    /// The account's user id (`@slipway:example.org`).
    pub async fn whoami(&self) -> Result<String, MatrixError> {
        let body = self
            .call(self.http.get(self.url("/account/whoami")))
            .await?;
        Ok(body
            .get("user_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// Waits up to `wait` for events after `since` (all recent ones without it).
    pub async fn sync(
        &self,
        since: Option<&str>,
        wait: Duration,
        bot: &str,
    ) -> Result<SyncBatch, MatrixError> {
        let wait_ms = wait.as_millis().to_string();
        let request = |filter: &'static str| {
            let mut query = vec![("timeout", wait_ms.as_str()), ("filter", filter)];
            if let Some(since) = since {
                query.push(("since", since));
            }
            self.http
                .get(self.url("/sync"))
                .query(&query)
                .timeout(wait + Duration::from_secs(30))
        };
        let answer = match self.call(request(SYNC_FILTER)).await {
            Err(MatrixError::TooLarge(most)) => {
                tracing::warn!(
                    most,
                    "a sync answer was too large; asked again for fewer events per room"
                );
                self.call(request(SMALL_SYNC_FILTER)).await?
            }
            other => other?,
        };
        let response = sync_response(answer)?;
        // The first sync only catches up: what came before it is history.
        let mut gaps = BTreeMap::new();
        if let Some(since) = since {
            for (room, from) in response.limited_rooms() {
                match self.gap(&room, &from, since).await {
                    Ok(gap) => {
                        gaps.insert(room, gap);
                    }
                    // The homeserver asks to slow down: the whole sync waits.
                    Err(error @ MatrixError::RateLimited(_)) => return Err(error),
                    // One room whose history cannot be read back (a federated
                    // room's backfill timing out) must not keep every other
                    // room unanswered: its gap is passed over, loudly.
                    Err(error) => {
                        tracing::error!(room, %error, "a room's messages since the last sync could not be read back; they are passed over");
                    }
                }
            }
        }
        Ok(response.into_batch(gaps, bot))
    }

    /// The invitations waiting for the bot now. An incremental sync brings an
    /// invitation once; one heard just before a stop, and not joined by then,
    /// would otherwise wait for ever. A sync from nothing lists every pending
    /// invitation; its filter keeps every room's events out of the answer.
    pub async fn pending_invites(&self, bot: &str) -> Result<Vec<Invite>, MatrixError> {
        let query = [("timeout", "0"), ("filter", INVITES_FILTER)];
        let request = self
            .http
            .get(self.url("/sync"))
            .query(&query)
            .timeout(Duration::from_secs(60));
        let response = sync_response(self.call(request).await?)?;
        Ok(response.into_batch(BTreeMap::new(), bot).invites)
    }

    /// A room's events from `from` back to the last sync (`to`), oldest first:
    /// more messages came while the bot was away than one sync page holds, and
    /// each of them may be a command.
    async fn gap(&self, room: &str, from: &str, to: &str) -> Result<Vec<Value>, MatrixError> {
        let path = format!("/rooms/{}/messages", encode(room));
        let mut events = Vec::new();
        let mut from = from.to_string();
        for _ in 0..MAX_GAP_PAGES {
            let query = [
                ("dir", "b"),
                ("from", from.as_str()),
                ("to", to),
                ("limit", "100"),
                ("filter", GAP_FILTER),
            ];
            let body = self
                .call(self.http.get(self.url(&path)).query(&query))
                .await?;
            let chunk = body
                .get("chunk")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let end = body.get("end").and_then(Value::as_str).map(str::to_string);
            let done = chunk.is_empty();
            events.extend(chunk);
            match end {
                Some(end) if !done && end != from => from = end,
                _ => {
                    events.reverse();
                    return Ok(events);
                }
            }
        }
        tracing::warn!(
            room,
            kept = events.len(),
            "more messages came while the chat bot was away than it reads back; older ones are not answered"
        );
        events.reverse();
        Ok(events)
    }

    /// Joins a room by id or alias; answers the room's id.
    pub async fn join(&self, room: &str) -> Result<String, MatrixError> {
        let path = format!("/join/{}", encode(room));
        let body = self
            .call(self.http.post(self.url(&path)).json(&json!({})))
            .await?;
        Ok(body
            .get("room_id")
            .and_then(Value::as_str)
            .unwrap_or(room)
            .to_string())
    }

    /// The room id an alias (`#reviews:example.org`) stands for; the bot need
    /// not be in the room to ask.
    pub async fn resolve_alias(&self, alias: &str) -> Result<String, MatrixError> {
        let path = format!("/directory/room/{}", encode(alias));
        let body = self.call(self.http.get(self.url(&path))).await?;
        body.get("room_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| MatrixError::Refused {
                status: 200,
                errcode: "M_BAD_JSON".into(),
                message: format!("the directory names no room for {alias}"),
            })
    }

    /// How many people (the bot among them) may read a room (see [`Self::reader_ids`]).
    pub async fn reader_count(&self, room: &str) -> Result<usize, MatrixError> {
        Ok(self.reader_ids(room).await?.len())
    }

    /// Whether people beyond a room's members may read it (see [`opening_of`]):
    /// a room of two is a private chat only when neither its join rule nor its
    /// history lets others in.
    pub async fn opening(&self, room: &str) -> Result<Option<Opening>, MatrixError> {
        let join_rules = self.state(room, "m.room.join_rules").await?;
        let history = self.state(room, "m.room.history_visibility").await?;
        Ok(opening_of(join_rules.as_ref(), history.as_ref()))
    }

    /// The content of a room's state event of `kind` (empty state key); `None`
    /// when the room has none. Any other refusal is an error: a room whose
    /// state cannot be read is not taken for a private one.
    async fn state(&self, room: &str, kind: &str) -> Result<Option<Value>, MatrixError> {
        let path = format!("/rooms/{}/state/{kind}/", encode(room));
        match self.call(self.http.get(self.url(&path))).await {
            Ok(content) => Ok(Some(content)),
            Err(MatrixError::Refused {
                status: 404,
                errcode,
                ..
            }) if errcode == "M_NOT_FOUND" => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Who (the bot among them) may read a room: those who joined it, and those
    /// invited or knocking, who read its history once they are let in. A direct
    /// chat the person invited a third into is no longer direct, though the
    /// third has not joined yet.
    pub async fn reader_ids(&self, room: &str) -> Result<BTreeSet<String>, MatrixError> {
        let path = format!("/rooms/{}/members", encode(room));
        let request = self
            .http
            .get(self.url(&path))
            .query(&[("not_membership", "leave")]);
        let body = self.call(request).await?;
        let events = body.get("chunk").and_then(Value::as_array);
        Ok(events
            .into_iter()
            .flatten()
            .filter(|event| {
                let membership = event.pointer("/content/membership").and_then(Value::as_str);
                matches!(membership, Some("join" | "invite" | "knock"))
            })
            .filter_map(|event| event.get("state_key").and_then(Value::as_str))
            .map(str::to_string)
            .collect())
    }

    /// A user's display name; `None` when they have set none.
    pub async fn display_name(&self, user: &str) -> Result<Option<String>, MatrixError> {
        let path = format!("/profile/{}/displayname", encode(user));
        match self.call(self.http.get(self.url(&path))).await {
            Ok(body) => Ok(body
                .get("displayname")
                .and_then(Value::as_str)
                .map(str::to_string)),
            Err(MatrixError::Refused { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Sends a text message. `txn_id` makes a repeated send (after a timeout, or a
    /// restart) a single message.
    pub async fn send_text(&self, room: &str, txn_id: &str, body: &str) -> Result<(), MatrixError> {
        let path = format!(
            "/rooms/{}/send/m.room.message/{}",
            encode(room),
            encode(txn_id)
        );
        self.call(
            self.http
                .put(self.url(&path))
                .json(&text_message(body))
                .timeout(Duration::from_secs(30)),
        )
        .await?;
        Ok(())
    }
}

/// A notice that mentions no one: a client notifies the people a message
/// mentions, and the bot's answers and notices quote free text (a requester's
/// parameters, a reviewer's comment) that may name anyone. `m.notice`, as bots
/// write: another bot answering text in the room (an away message, a support
/// bot) does not answer a notice, so the two never talk to each other in a loop.
fn text_message(body: &str) -> Value {
    json!({ "msgtype": "m.notice", "body": body, "m.mentions": {} })
}

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_answer_yields_text_messages_and_invites() -> Result<(), serde_json::Error> {
        let body = json!({
            "next_batch": "s72595_4483_1934",
            "rooms": {
                "join": {
                    "!a:hs": { "timeline": { "events": [
                        { "type": "m.room.message", "event_id": "$1", "sender": "@u:hs",
                          "origin_server_ts": 1_700_000_000_000_i64,
                          "content": { "msgtype": "m.text", "body": "help" } },
                        { "type": "m.room.message", "event_id": "$2", "sender": "@u:hs",
                          "content": { "msgtype": "m.image", "body": "cat.png" } },
                        { "type": "m.room.message", "event_id": "$3", "sender": "@u:hs",
                          "content": { "msgtype": "m.text", "body": 42 } },
                        { "type": "m.room.member", "event_id": "$4", "sender": "@u:hs",
                          "content": { "membership": "join" } },
                        { "type": "m.room.encrypted", "event_id": "$5", "sender": "@u:hs",
                          "content": { "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "…" } }
                    ] } }
                },
                "invite": {
                    "!b:hs": { "invite_state": { "events": [] } },
                    "!c:hs": { "invite_state": { "events": [
                        { "type": "m.room.name", "sender": "@x:other", "content": { "name": "c" } },
                        { "type": "m.room.member", "sender": "@friend:hs", "state_key": "@bot:hs",
                          "content": { "membership": "invite" } }
                    ] } }
                }
            }
        });
        let response = serde_json::from_value::<SyncResponse>(body)?;
        assert!(response.limited_rooms().is_empty());
        let batch = response.into_batch(BTreeMap::new(), "@bot:hs");
        assert_eq!(batch.next_batch, "s72595_4483_1934");
        assert_eq!(
            batch.invites,
            vec![
                Invite {
                    room_id: "!b:hs".into(),
                    inviter: None
                },
                Invite {
                    room_id: "!c:hs".into(),
                    inviter: Some("@friend:hs".into())
                }
            ]
        );
        assert_eq!(
            batch.messages,
            vec![
                RoomMessage {
                    room_id: "!a:hs".into(),
                    event_id: "$1".into(),
                    sender: "@u:hs".into(),
                    body: "help".into(),
                    shown: None,
                    encrypted: false,
                    sent_at: 1_700_000_000_000,
                },
                RoomMessage {
                    room_id: "!a:hs".into(),
                    event_id: "$5".into(),
                    sender: "@u:hs".into(),
                    body: String::new(),
                    shown: None,
                    encrypted: true,
                    sent_at: 0,
                }
            ]
        );
        Ok(())
    }

    #[test]
    fn what_a_room_said_before_the_bot_joined_is_history() -> Result<(), serde_json::Error> {
        let text = |id: &str| {
            json!({ "type": "m.room.message", "event_id": id, "sender": "@u:hs",
                    "content": { "msgtype": "m.text", "body": format!("retry #{id}") } })
        };
        let member = |id: &str, who: &str, prev: Option<&str>| {
            let mut event = json!({ "type": "m.room.member", "event_id": id, "sender": who,
                                    "state_key": who, "content": { "membership": "join" } });
            if let Some(prev) = prev {
                event["unsigned"] = json!({ "prev_content": { "membership": prev } });
            }
            event
        };
        let body = json!({
            "next_batch": "s3",
            "rooms": { "join": {
                "!new:hs": { "timeline": { "events": [
                    text("$1"), member("$2", "@u:hs", Some("invite")), text("$3"),
                    member("$4", "@bot:hs", Some("invite")), text("$5"),
                    // The bot changing its display name is no join.
                    member("$6", "@bot:hs", Some("join")), text("$7")
                ] } },
                "!old:hs": { "timeline": { "events": [text("$8")] } }
            } }
        });
        let gaps = BTreeMap::from([("!new:hs".to_string(), vec![text("$0")])]);
        let ids: Vec<String> = serde_json::from_value::<SyncResponse>(body)?
            .into_batch(gaps, "@bot:hs")
            .messages
            .into_iter()
            .map(|m| m.event_id)
            .collect();
        assert_eq!(ids, ["$5", "$7", "$8"]);
        Ok(())
    }

    #[test]
    fn the_inviter_is_who_invited_the_bot_not_a_decoy() -> Result<(), serde_json::Error> {
        let invite = json!({ "invite_state": { "events": [
            { "type": "m.room.member", "sender": "@admin:hs", "state_key": "@admin:hs",
              "content": { "membership": "invite" } },
            { "type": "m.room.member", "sender": "@mallory:evil", "state_key": "@bot:hs",
              "content": { "membership": "invite" } }
        ] } });
        assert_eq!(
            inviter_of(&invite, "@bot:hs").as_deref(),
            Some("@mallory:evil")
        );
        Ok(())
    }

    #[test]
    fn an_account_refused_as_a_whole_is_tried_again_a_room_refused_is_not() {
        let refused = |status: u16, errcode: &str| MatrixError::Refused {
            status,
            errcode: errcode.into(),
            message: String::new(),
        };
        assert!(refused(401, "M_UNKNOWN_TOKEN").is_transient());
        assert!(refused(403, "M_CONSENT_NOT_GIVEN").is_transient());
        assert!(refused(502, "").is_transient());
        assert!(!refused(403, "M_FORBIDDEN").is_transient());
        assert!(!refused(404, "M_NOT_FOUND").is_transient());
    }

    #[test]
    fn an_empty_sync_answer_is_read() -> Result<(), serde_json::Error> {
        let batch = serde_json::from_value::<SyncResponse>(json!({"next_batch": "x"}))?
            .into_batch(BTreeMap::new(), "@bot:hs");
        assert!(batch.messages.is_empty() && batch.invites.is_empty());
        Ok(())
    }

    #[test]
    fn a_limited_page_names_its_gap_and_the_gap_comes_first() -> Result<(), serde_json::Error> {
        let text = |id: &str| {
            json!({ "type": "m.room.message", "event_id": id, "sender": "@u:hs",
                    "content": { "msgtype": "m.text", "body": id } })
        };
        let body = json!({
            "next_batch": "s2",
            "rooms": { "join": {
                "!busy:hs": { "timeline": { "limited": true, "prev_batch": "t1",
                                            "events": [text("$3")] } },
                "!quiet:hs": { "timeline": { "events": [text("$9")] } }
            } }
        });
        let response = serde_json::from_value::<SyncResponse>(body)?;
        assert_eq!(
            response.limited_rooms(),
            vec![("!busy:hs".to_string(), "t1".to_string())]
        );
        let gaps = BTreeMap::from([("!busy:hs".to_string(), vec![text("$1"), text("$2")])]);
        let ids: Vec<String> = response
            .into_batch(gaps, "@bot:hs")
            .messages
            .into_iter()
            .map(|m| m.event_id)
            .collect();
        assert_eq!(ids, ["$1", "$2", "$3", "$9"]);
        Ok(())
    }

    #[test]
    fn an_edit_is_not_read_as_a_new_command() -> Result<(), serde_json::Error> {
        let body = json!({
            "next_batch": "s4",
            "rooms": { "join": { "!dm:hs": { "timeline": { "events": [
                { "type": "m.room.message", "event_id": "$1", "sender": "@u:hs",
                  "content": { "msgtype": "m.text", "body": "request k8s-namespace name=web" } },
                // Element's edit of $1: a body starting with "* ", the new text aside.
                { "type": "m.room.message", "event_id": "$2", "sender": "@u:hs",
                  "content": { "msgtype": "m.text", "body": "* request k8s-namespace name=api",
                               "m.new_content": { "msgtype": "m.text",
                                                  "body": "request k8s-namespace name=api" },
                               "m.relates_to": { "rel_type": "m.replace", "event_id": "$1" } } },
                { "type": "m.room.encrypted", "event_id": "$3", "sender": "@u:hs",
                  "content": { "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "…",
                               "m.relates_to": { "rel_type": "m.replace", "event_id": "$0" } } },
                // A reply relates to another message too, and is a message of its own.
                { "type": "m.room.message", "event_id": "$4", "sender": "@u:hs",
                  "content": { "msgtype": "m.text", "body": "mine",
                               "m.relates_to": { "m.in_reply_to": { "event_id": "$1" } } } }
            ] } } } }
        });
        let ids: Vec<String> = serde_json::from_value::<SyncResponse>(body)?
            .into_batch(BTreeMap::new(), "@bot:hs")
            .messages
            .into_iter()
            .map(|m| m.event_id)
            .collect();
        assert_eq!(ids, ["$1", "$4"]);
        Ok(())
    }

    #[test]
    fn a_batch_names_the_rooms_whose_members_changed() -> Result<(), serde_json::Error> {
        let member = |who: &str, membership: &str, prev: Option<&str>| {
            let mut event = json!({ "type": "m.room.member", "event_id": format!("${who}"),
                                    "sender": who, "state_key": who,
                                    "content": { "membership": membership } });
            if let Some(prev) = prev {
                event["unsigned"] = json!({ "prev_content": { "membership": prev } });
            }
            event
        };
        let text = json!({ "type": "m.room.message", "event_id": "$t", "sender": "@u:hs",
                           "content": { "msgtype": "m.text", "body": "mine" } });
        let body = json!({
            "next_batch": "s5",
            "rooms": { "join": {
                "!joined:hs": { "timeline": { "events": [member("@eve:hs", "join", None)] } },
                "!left:hs": { "timeline": { "events": [member("@eve:hs", "leave", Some("join"))] } },
                "!renamed:hs": { "timeline": { "events": [member("@u:hs", "join", Some("join"))] } },
                "!quiet:hs": { "timeline": { "events": [text.clone()] } },
                "!cut:hs": { "timeline": { "limited": true, "events": [text] } },
                "!gap:hs": { "timeline": { "events": [] } },
                "!opened:hs": { "timeline": { "events": [
                    { "type": "m.room.join_rules", "event_id": "$j", "sender": "@u:hs",
                      "state_key": "", "content": { "join_rule": "public" } }] } },
                "!peekable:hs": { "timeline": { "events": [
                    { "type": "m.room.history_visibility", "event_id": "$h", "sender": "@u:hs",
                      "state_key": "", "content": { "history_visibility": "world_readable" } }] } }
            } }
        });
        let gaps = BTreeMap::from([(
            "!gap:hs".to_string(),
            vec![member("@eve:hs", "invite", None)],
        )]);
        let changed = serde_json::from_value::<SyncResponse>(body)?
            .into_batch(gaps, "@bot:hs")
            .membership_changed;
        assert_eq!(
            changed.into_iter().collect::<Vec<_>>(),
            [
                "!cut:hs",
                "!gap:hs",
                "!joined:hs",
                "!left:hs",
                "!opened:hs",
                "!peekable:hs"
            ]
        );
        Ok(())
    }

    #[test]
    fn a_room_is_open_when_its_join_rule_or_its_history_lets_others_in() {
        let rule = |r: Value| Some(json!({ "join_rule": r }));
        let seen = |h: &str| Some(json!({ "history_visibility": h }));
        let opening = |j: Option<Value>, h: Option<Value>| opening_of(j.as_ref(), h.as_ref());
        for closed in ["invite", "knock", "private"] {
            assert_eq!(
                opening(rule(json!(closed)), seen("shared")),
                None,
                "{closed}"
            );
        }
        for open in ["public", "restricted", "knock_restricted", "something_new"] {
            let found = opening(rule(json!(open)), seen("joined"));
            assert_eq!(found, Some(Opening::Joinable), "{open}");
        }
        assert_eq!(opening(rule(json!(7)), None), Some(Opening::Joinable));
        // Absent state: the spec's defaults, invite-only and shared history.
        assert_eq!(opening(None, None), None);
        assert_eq!(opening(Some(json!({})), Some(json!({}))), None);
        let peekable = opening(rule(json!("invite")), seen("world_readable"));
        assert_eq!(peekable, Some(Opening::WorldReadable));
        let both = opening(rule(json!("public")), seen("world_readable"));
        assert_eq!(both, Some(Opening::WorldReadable));
    }

    #[test]
    fn an_html_message_keeps_what_it_shows() {
        let event = |content: Value| {
            json!({ "type": "m.room.message", "event_id": "$1", "sender": "@u:hs",
                    "content": content })
        };
        let forwarded = event(json!({ "msgtype": "m.text", "body": "!approve #12",
            "format": "org.matrix.custom.html", "formatted_body": "<p>nice work</p>" }));
        let names = super::super::command::bot_names("@bot:hs", None);
        let differs = |message: &Option<RoomMessage>| {
            message
                .as_ref()
                .is_some_and(|m| m.formatting_differs(&names))
        };
        let message = message_of("!r:hs", &forwarded);
        assert!(differs(&message));
        let texts: Vec<&str> = message.iter().flat_map(RoomMessage::texts).collect();
        assert_eq!(texts, ["!approve #12", "nice work"]);
        let same = event(
            json!({ "msgtype": "m.text", "body": "!changes #12 **more** cpu",
            "format": "org.matrix.custom.html",
            "formatted_body": "!changes #12 <b>more</b> cpu" }),
        );
        let message = message_of("!r:hs", &same);
        assert!(message.is_some() && !differs(&message));
        // A quoted fallback is hidden only in a reply.
        let fallback = |relates_to: Value| {
            event(
                json!({ "msgtype": "m.text", "body": "> <@bot:hs> Request #12\n\n!approve #12",
                "format": "org.matrix.custom.html",
                "formatted_body": "<mx-reply><blockquote>Request #12</blockquote></mx-reply>!approve #12",
                "m.relates_to": relates_to }),
            )
        };
        let reply = message_of(
            "!r:hs",
            &fallback(json!({ "m.in_reply_to": { "event_id": "$0" } })),
        );
        assert!(reply.is_some() && !differs(&reply));
        let posing = message_of("!r:hs", &fallback(json!({})));
        assert!(differs(&posing));
        // Another format, or none, is not HTML: the body is what shows.
        let other = event(json!({ "msgtype": "m.text", "body": "!approve #12",
            "format": "text/markdown", "formatted_body": "nice work" }));
        assert!(message_of("!r:hs", &other).is_some_and(|m| m.shown.is_none()));
    }

    #[test]
    fn the_bot_s_messages_mention_no_one() {
        let message = text_message("Request #3 waits for review: owner=@carol:hs");
        assert_eq!(message.get("m.mentions"), Some(&json!({})));
        assert_eq!(message["msgtype"], "m.notice");
        assert_eq!(
            message["body"],
            "Request #3 waits for review: owner=@carol:hs"
        );
    }

    /// A homeserver whose sync answer is past what the bot reads (rooms full of
    /// the largest messages) is asked again for fewer events per room, instead of
    /// the same answer for ever; the rest of each room is read back as a gap.
    #[tokio::test]
    async fn a_sync_answer_too_large_is_asked_again_smaller()
    -> Result<(), Box<dyn std::error::Error>> {
        use axum::extract::Query;
        use std::collections::HashMap;
        let sync = |Query(query): Query<HashMap<String, String>>| async move {
            let filter = query.get("filter").cloned().unwrap_or_default();
            if filter.contains("\"limit\":100") {
                return "x".repeat(MAX_ANSWER_BYTES + 1);
            }
            json!({"next_batch": "s2", "rooms": {"join": {}}}).to_string()
        };
        let app = axum::Router::new().route("/_matrix/client/v3/sync", axum::routing::get(sync));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let served = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = MatrixClient::new(
            &format!("http://{addr}"),
            crate::config::Secret::new("t".into()),
        )?;
        let batch = client.sync(Some("s1"), Duration::ZERO, "@bot:hs").await?;
        assert_eq!(batch.next_batch, "s2");
        served.abort();
        Ok(())
    }

    #[test]
    fn rate_limits_say_how_long_to_wait() {
        let headers = reqwest::header::HeaderMap::new();
        assert_eq!(
            retry_after(
                &headers,
                &json!({"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2500})
            ),
            Duration::from_millis(2500)
        );
        assert_eq!(retry_after(&headers, &json!({})), Duration::from_secs(1));
        assert_eq!(
            retry_after(&headers, &json!({"retry_after_ms": u64::MAX})),
            Duration::from_secs(300)
        );
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("3"),
        );
        assert_eq!(retry_after(&headers, &json!({})), Duration::from_secs(3));
    }
}
