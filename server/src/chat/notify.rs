//! Telling rooms what happened: the notifier follows the sealed audit log (whose
//! order is commit order, without gaps) from a stored position, so every request
//! transition is told once, also across restarts, and no service needs to know
//! that chat exists.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::{in_schema_order, param_text};

use super::Rooms;
use super::answer::{request_url, short_hash};
use super::matrix::{MatrixClient, MatrixError, Opening};
use crate::state::AppState;
use crate::storage::chat::{ChatLink, StateChange};
use crate::storage::requests::RequestRow;
use crate::storage::{self, StorageError};

const CURSOR: &str = "audit_position";
const BATCH: i64 = 50;
/// How long a requester's room's members are trusted before they are asked
/// again: short, since a notice sent after someone joined is read by them, yet
/// a backlog of one person's notices asks once.
const MEMBERS_FOR: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Tells the rooms about every transition sealed since the last call. A first call
/// starts at the end of the log: history is not replayed into chat.
pub async fn notify_pending(
    state: &AppState,
    client: &MatrixClient,
    rooms: &Rooms,
    linked: &mut LinkedRooms,
) -> Result<usize, NotifyError> {
    crate::audit_chain::seal_pending(&state.db).await?;
    let mut conn = state.db.pool.acquire().await?;
    let Some(position) = storage::chat::cursor(&mut conn, CURSOR)
        .await?
        .and_then(|p| p.parse::<i64>().ok())
    else {
        let last = storage::chat::last_position(&mut conn).await?;
        drop(conn);
        save_cursor(state, last).await?;
        return Ok(0);
    };
    // Read first: every sealed event up to it is visible to the query below.
    let head = storage::chat::last_position(&mut conn).await?;
    let changes = storage::chat::state_changes_after(&mut conn, position, BATCH).await?;
    drop(conn);
    for change in &changes {
        match tell(state, client, rooms, linked, change).await {
            Ok(()) => {}
            // A room that refuses the bot (not invited, gone) must not stop every
            // later notice: this one is dropped, loudly.
            Err(NotifyError::Matrix(error)) if !error.is_transient() => {
                tracing::error!(position = change.position, %error, "a chat notice was refused");
            }
            Err(error) => return Err(error),
        }
        save_cursor(state, change.position).await?;
    }
    // Caught up: the events after the last transition (sign-ins, token uses)
    // are passed over once, not read again at every poll of a quiet week.
    let reached = changes.last().map_or(position, |c| c.position);
    if (changes.len() as i64) < BATCH && head > reached {
        save_cursor(state, head).await?;
    }
    Ok(changes.len())
}

/// Moves the position told up to forward only: a notifier of an ended term that
/// is still finishing a batch must not take it back and have notices told again.
async fn save_cursor(state: &AppState, position: i64) -> Result<(), NotifyError> {
    let mut tx = state.db.write().await?;
    storage::chat::advance_cursor(&mut tx, CURSOR, position).await?;
    tx.commit().await?;
    Ok(())
}

/// The transaction id of a notice: derived from the audit position, so a send
/// repeated after a crash is the same message to the homeserver, and from the
/// room, since a homeserver may take one id as one message whatever the room
/// (Synapse keys it by room, others by access token alone), and a review notice
/// goes to several rooms.
fn notice_txn(room: &str, what: &str, position: i64) -> String {
    let room_digest = hex::encode(&Sha256::digest(room.as_bytes())[..8]);
    format!("slipway-{what}-{position}-{room_digest}")
}

/// One room message, sent once (see [`notice_txn`]).
async fn post(
    client: &MatrixClient,
    room: &str,
    change: &StateChange,
    what: &str,
    text: &str,
) -> Result<(), MatrixError> {
    let txn = notice_txn(room, what, change.position);
    super::send_with_retries(client, room, &txn, text).await
}

/// The requesters' linked rooms as the notifier last saw them. A room was a
/// direct chat when it was linked, but others may have joined it since, or it
/// may have been opened (to join without an invitation, or its history to
/// anyone); what is said about a person's requests (reviewers' comments, the
/// resource's name) is said there only while the room is still theirs and the
/// bot's alone.
pub struct LinkedRooms {
    bot: String,
    members: Arc<Mutex<RoomMembers>>,
    /// Open rooms already told why their notices are held back (once while the
    /// process lives; again once the room was private in between).
    told_open: HashSet<String>,
}

/// Who may read a room, and when it was read.
type RoomMembers = HashMap<String, (RoomReaders, Instant)>;

#[derive(Clone)]
struct RoomReaders {
    members: BTreeSet<String>,
    opening: Option<Opening>,
}

/// Whether a linked room may hear its person's notices.
#[derive(Debug, PartialEq, Eq)]
enum Privacy {
    Private,
    /// Someone but the bot and the person has joined it or is invited.
    OthersIn,
    /// Only they are in it, but others may join it or read its history.
    Open(Opening),
}

/// Told once, in place of the notices, in an open room: why they are held
/// back, and nothing of them.
fn held_back_in_open_room(opening: Opening) -> String {
    let why = super::answer::not_private_because(opening);
    format!(
        "I have news of your Slipway requests, but I hold it back here: {why}, so it is \
         no private chat. Start a direct chat with me that is invite-only and whose history \
         is not open to everyone, and link it with a new code from your account page; until \
         then, follow your requests in the portal."
    )
}

/// What the sync loop tells the notifier: rooms whose members changed (someone
/// joined, left or was invited) are read again before their next notice, not
/// after the members' 10 s.
#[derive(Clone)]
pub struct MembershipNews(Arc<Mutex<RoomMembers>>);

impl MembershipNews {
    pub fn changed<'a>(&self, rooms: impl IntoIterator<Item = &'a String>) {
        let mut members = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for room in rooms {
            members.remove(room);
        }
    }
}

impl LinkedRooms {
    pub fn new(bot: &str) -> LinkedRooms {
        LinkedRooms {
            bot: bot.to_string(),
            members: Arc::default(),
            told_open: HashSet::new(),
        }
    }

    /// The handle the sync loop marks changed rooms with.
    pub fn news(&self) -> MembershipNews {
        MembershipNews(self.members.clone())
    }

    fn known(&self, room: &str) -> Option<RoomReaders> {
        let members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members
            .get(room)
            .filter(|(_, at)| at.elapsed() < MEMBERS_FOR)
            .map(|(readers, _)| readers.clone())
    }

    /// Whether no one but the bot and the linked person has joined their room or
    /// is invited to it, and no one else may join it or read its history.
    async fn privacy(
        &mut self,
        client: &MatrixClient,
        link: &ChatLink,
    ) -> Result<Privacy, MatrixError> {
        let room = link.room_id.as_str();
        let readers = match self.known(room) {
            Some(readers) => readers,
            None => {
                let readers = RoomReaders {
                    members: client.reader_ids(room).await?,
                    opening: client.opening(room).await?,
                };
                let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
                members.retain(|_, (_, at)| at.elapsed() < MEMBERS_FOR);
                members.insert(room.to_string(), (readers.clone(), Instant::now()));
                readers
            }
        };
        Ok(privacy_of(&readers, &self.bot, &link.chat_user))
    }
}

fn privacy_of(readers: &RoomReaders, bot: &str, person: &str) -> Privacy {
    match (only_bot_and(&readers.members, bot, person), readers.opening) {
        (false, _) => Privacy::OthersIn,
        (true, Some(opening)) => Privacy::Open(opening),
        (true, None) => Privacy::Private,
    }
}

fn only_bot_and(members: &BTreeSet<String>, bot: &str, person: &str) -> bool {
    members
        .iter()
        .all(|member| member == bot || member == person)
}

async fn tell(
    state: &AppState,
    client: &MatrixClient,
    rooms: &Rooms,
    linked: &mut LinkedRooms,
    change: &StateChange,
) -> Result<(), NotifyError> {
    let Ok(to) = change.to_state.parse::<RequestState>() else {
        return Ok(());
    };
    let mut conn = state.db.pool.acquire().await?;
    let Some(request) = storage::requests::get(&mut conn, change.request_id).await? else {
        return Ok(());
    };
    let requester_link = match storage::chat::link_of_user(&mut conn, request.requester_id).await? {
        Some(link) if still_acting(state, &mut conn, &request).await? => Some(link),
        _ => None,
    };
    let facts = crate::services::facts(state, &request);
    let review_rooms = rooms.for_review(facts.team, facts.offering_team);
    // A backlog told late: a request no longer in review is not offered for one.
    if to == RequestState::InReview && request.state != RequestState::InReview {
        return Ok(());
    }
    if to == RequestState::InReview && !review_rooms.is_empty() {
        let Some(notice) = review_notice(state, &mut conn, &request).await? else {
            return Ok(());
        };
        drop(conn);
        return tell_reviewers(state, client, &review_rooms, change, &notice).await;
    }
    drop(conn);
    // Each room on its own: a requester's room that refuses the bot must not keep
    // the platform room from hearing of a failure.
    let mut refused = None;
    if let (Some(link), Some(text)) = (
        &requester_link,
        requester_notice(state, &request, to, change),
    ) && let Err(error) = tell_requester(client, linked, link, change, &text).await
    {
        if error.is_transient() {
            return Err(error.into());
        }
        refused = Some(error);
    }
    if to == RequestState::Failed
        && let Some(room) = &rooms.platform
    {
        let text = platform_notice(state, &request, change);
        post(client, room, change, "platform", &text).await?;
    }
    match refused {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// Whether the requester's account may still act (not disabled, and, signing in
/// through the identity provider, confirmed by it lately): a person the
/// provider removed hears nothing more of their requests in chat (reviewers'
/// comments among it), as they can no longer ask for anything there.
async fn still_acting(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    request: &RequestRow,
) -> Result<bool, NotifyError> {
    use crate::services::ServiceError;
    match crate::services::auth::acting_user(state, conn, request.requester_id).await {
        Ok(_) => Ok(true),
        Err(ServiceError::Unauthenticated | ServiceError::Forbidden(_)) => Ok(false),
        // The database could not answer (down, a statement timeout): the
        // notice is told at a later poll.
        Err(other) => Err(StorageError::Interrupted(other.to_string()).into()),
    }
}

/// Posts a requester's notice to their linked room while it is still private;
/// one others have joined hears nothing more (logged), until the person links
/// again from a direct chat. One opened to others hears, once, why its notices
/// are held back, and nothing of them.
async fn tell_requester(
    client: &MatrixClient,
    linked: &mut LinkedRooms,
    link: &ChatLink,
    change: &StateChange,
    text: &str,
) -> Result<(), MatrixError> {
    let room = link.room_id.as_str();
    let why = match linked.privacy(client, link).await? {
        Privacy::Private => {
            linked.told_open.remove(room);
            return post(client, room, change, "requester", text).await;
        }
        Privacy::OthersIn => "others have joined the room linked as their direct chat",
        Privacy::Open(opening) => {
            if !linked.told_open.contains(room) {
                let note = held_back_in_open_room(opening);
                post(client, room, change, "held-back", &note).await?;
                linked.told_open.insert(room.to_string());
            }
            "the room linked as their direct chat is open to people not in it"
        }
    };
    tracing::warn!(
        room,
        request = %change.request_id,
        position = change.position,
        why,
        "a requester's notice is held back"
    );
    Ok(())
}

/// Posts a review notice to each of its rooms on its own (one that refuses the bot
/// does not keep the others from hearing), and records it as shown in each room
/// that accepted it, as soon as it did: an approval typed in a room binds to
/// what that room was shown, so a room that waits out a rate limit keeps its
/// older notice (and approving there meets the newer revision as a conflict)
/// without keeping the first room's reviewers from approving what they read.
async fn tell_reviewers(
    state: &AppState,
    client: &MatrixClient,
    rooms: &[&str],
    change: &StateChange,
    notice: &ReviewNotice,
) -> Result<(), NotifyError> {
    let mut refused = None;
    for room in rooms {
        match post(client, room, change, "review", &notice.text).await {
            Ok(()) => {
                let mut tx = state.db.write().await?;
                storage::chat::set_review_notice(
                    &mut tx,
                    (change.request_id, room),
                    notice.revision,
                    &notice.hash,
                )
                .await?;
                tx.commit().await?;
            }
            Err(error) if error.is_transient() => return Err(error.into()),
            Err(error) => refused = Some(error),
        }
    }
    match refused {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// `#12 (k8s-namespace payments-web-prod)`.
fn about(request: &RequestRow) -> String {
    format!(
        "#{} ({} {})",
        request.id,
        request.type_name,
        echoed(&request.resource_name)
    )
}

/// A name people chose (a resource's, a requester's), as a notice quotes it: on
/// one line, so it cannot add a line that reads as the bot's own.
fn echoed(name: &str) -> String {
    super::command::shorten(name, super::answer::ECHOED_NAME_CHARS)
}

/// What the requester hears of a transition, if anything.
fn requester_notice(
    state: &AppState,
    request: &RequestRow,
    to: RequestState,
    change: &StateChange,
) -> Option<String> {
    let (about, url) = (about(request), request_url(state, request.id));
    // Who acted, and their comment, are people's words: echoed safely.
    let (actor, detail) = (echoed(&change.actor), &change.detail);
    match to {
        RequestState::Completed => Some(format!("Request {about} is completed. {url}")),
        RequestState::ChangesRequested => Some(with_comment(
            &format!("{actor} asks for changes to request {about}"),
            detail,
            &format!("Revise it in the portal: {url}"),
        )),
        RequestState::Rejected => Some(with_comment(
            &format!("{actor} rejected request {about}"),
            detail,
            &url,
        )),
        RequestState::Approved => Some(format!("Request {about} is approved by {actor}.")),
        RequestState::Failed => Some(format!(
            "Request {about} failed; the platform team is told. {url}"
        )),
        // The requester cancels their own; one a policy closed is news to them.
        RequestState::Cancelled if change.actor.starts_with("policy:") => Some(format!(
            "Request {about} was {}. {url}",
            super::command::shorten(detail, MAX_COMMENT_CHARS)
        )),
        _ => None,
    }
}

/// The most of a reviewer's comment a notice quotes.
const MAX_COMMENT_CHARS: usize = 1000;

/// `head`, a reviewer's `comment` and `tail` as one notice: a comment of one
/// line after a colon, one of several lines as a quoted block (`> ` before each
/// line), so that a line of it cannot read as a line of the bot's own.
fn with_comment(head: &str, comment: &str, tail: &str) -> String {
    let lines = super::command::shorten_lines(comment, MAX_COMMENT_CHARS);
    match lines.as_slice() {
        [] => format!("{head}. {tail}"),
        [line] => format!("{head}: {line}. {tail}"),
        lines => {
            let quoted: Vec<String> = lines.iter().map(|line| format!("> {line}")).collect();
            format!("{head}:\n{}\n{tail}", quoted.join("\n"))
        }
    }
}

/// A failure as the platform room sees it: why, and what an admin can answer.
fn platform_notice(state: &AppState, request: &RequestRow, change: &StateChange) -> String {
    let error = request.last_error.as_deref().unwrap_or(&change.detail);
    let error = super::command::shorten(error, 500);
    format!(
        "Request {} by {} failed: {error}\nAn admin can answer here: !retry #{id} or !take #{id} (handle it by hand). {}",
        about(request),
        echoed(&request.requester),
        request_url(state, request.id),
        id = request.id
    )
}

/// Parameters as the review page lists them (in the schema's order, values read
/// as words); a secret never leaves Slipway.
fn shown_params(state: &AppState, request: &RequestRow, params: &Value) -> Vec<String> {
    let ty = state.catalog.resource_type(&request.type_name);
    let Some(values) = params.as_object() else {
        return Vec::new();
    };
    let titles = ty.map(|t| t.param_titles()).unwrap_or_default();
    in_schema_order(&titles, values)
        .into_iter()
        .map(|(name, value)| {
            let secret = ty.is_some_and(|t| t.has_secret_value(name));
            let shown = if secret {
                "(secret, not shown)".to_string()
            } else {
                super::command::shorten(&param_text(value), 200)
            };
            format!("  {name}: {shown}")
        })
        .collect()
}

/// The notice a request waiting for review gets, with the revision and change
/// set it shows: an approval from chat is bound to exactly that.
struct ReviewNotice {
    text: String,
    revision: i64,
    hash: String,
}

async fn review_notice(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    request: &RequestRow,
) -> Result<Option<ReviewNotice>, StorageError> {
    let Some(current) =
        storage::requests::revision(conn, request.id, request.current_revision).await?
    else {
        return Ok(None);
    };
    let id: RequestId = request.id;
    let title = state
        .catalog
        .resource_type(&request.type_name)
        .map_or(request.type_name.as_str(), |t| t.title.as_str());
    let mut lines = vec![format!(
        "Request #{id} waits for review: {title} {} (revision {}), requested by {}.",
        echoed(&request.resource_name),
        current.revision,
        echoed(&request.requester)
    )];
    lines.push("Parameters:".to_string());
    lines.extend(shown_params(state, request, &current.params));
    let report = &current.precheck;
    let verdict = if report.passed() {
        "passed"
    } else {
        "did not pass"
    };
    lines.push(format!("Pre-check: {verdict}."));
    for risk in &report.risks {
        // A risk may quote the values sent: on one line, like them.
        lines.push(format!("  risk: {}", super::command::shorten(risk, 300)));
    }
    lines.push(format!(
        "Change set {} — review it with the diff: {}",
        short_hash(&current.change_set_hash),
        request_url(state, id)
    ));
    lines.push(format!(
        "Answer here: !approve #{id} · !changes #{id} <what to change> · !reject #{id} <why>"
    ));
    Ok(Some(ReviewNotice {
        text: lines.join("\n"),
        revision: current.revision,
        hash: current.change_set_hash,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_sent_to_several_rooms_is_a_message_of_its_own_in_each() {
        let review = notice_txn("!reviews:hs", "review", 41);
        let team = notice_txn("!payments:hs", "review", 41);
        assert_ne!(review, team, "one transaction id for two rooms");
        assert_eq!(
            review,
            notice_txn("!reviews:hs", "review", 41),
            "a notice sent again is the same message"
        );
        assert_ne!(review, notice_txn("!reviews:hs", "review", 42));
        assert_ne!(review, notice_txn("!reviews:hs", "requester", 41));
        assert!(
            review.starts_with("slipway-review-41-") && review.len() <= 64,
            "{review}"
        );
    }

    #[test]
    fn a_linked_room_open_to_others_is_not_private() {
        let readers = |opening| RoomReaders {
            members: ["@bot:hs", "@alice:hs"].map(String::from).into(),
            opening,
        };
        let privacy = |opening| privacy_of(&readers(opening), "@bot:hs", "@alice:hs");
        assert_eq!(privacy(None), Privacy::Private);
        assert_eq!(
            privacy(Some(Opening::WorldReadable)),
            Privacy::Open(Opening::WorldReadable)
        );
        assert_eq!(
            privacy(Some(Opening::Joinable)),
            Privacy::Open(Opening::Joinable)
        );
        let mut crowded = readers(Some(Opening::Joinable));
        crowded.members.insert("@mallory:hs".into());
        assert_eq!(
            privacy_of(&crowded, "@bot:hs", "@alice:hs"),
            Privacy::OthersIn
        );
        let note = held_back_in_open_room(Opening::WorldReadable);
        assert!(
            note.contains("anyone may read this room's history"),
            "{note}"
        );
    }

    #[test]
    fn a_comment_is_quoted_so_that_no_line_of_it_reads_as_the_bot_s() {
        let one = with_comment("bob rejected request #3", "too big\u{2028}", "/requests/3");
        assert_eq!(one, "bob rejected request #3: too big. /requests/3");
        let many = with_comment(
            "bob asks for changes to request #3",
            "please:\n- more cpu\r\nRequest #3 is approved by carol.\u{2029}x",
            "Revise it in the portal: /requests/3",
        );
        assert_eq!(
            many,
            "bob asks for changes to request #3:\n> please:\n> - more cpu\n\
             > Request #3 is approved by carol.x\nRevise it in the portal: /requests/3"
        );
        assert_eq!(with_comment("h", "\n", "t"), "h. t");
    }

    #[test]
    fn a_linked_room_is_private_while_only_the_bot_and_its_person_are_in_it() {
        let members =
            |ids: &[&str]| -> BTreeSet<String> { ids.iter().map(|id| id.to_string()).collect() };
        let private = |ids: &[&str]| only_bot_and(&members(ids), "@bot:hs", "@alice:hs");
        assert!(private(&["@bot:hs", "@alice:hs"]));
        assert!(private(&["@bot:hs"]), "she left: nobody else reads it");
        assert!(!private(&["@bot:hs", "@alice:hs", "@mallory:hs"]));
        assert!(
            !private(&["@bot:hs", "@mallory:hs"]),
            "two members, but not hers"
        );
    }
}
