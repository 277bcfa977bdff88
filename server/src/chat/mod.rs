//! ChatOps over Matrix: a bot account beside the portal and the REST API, a third
//! thin caller of the same services. Two tasks: the sync loop answers commands,
//! the notifier tells rooms how requests move.
//!
//! Reliability: the sync token is stored after each batch, and each event is
//! claimed in the database before its command runs, so after a restart (of Slipway
//! or of the homeserver) the bot resumes where it was and never runs a command
//! twice. A command whose process dies between the claim and the answer is lost
//! (at most once): the person sees no answer and asks again. A command held back
//! by the pace is claimed too (in one statement for the batch), so it never runs
//! later. Errors and 429s back off, up to the configured pause.

pub mod answer;
pub mod command;
pub mod formatted;
mod leader;
mod listening;
pub mod matrix;
pub mod notify;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::ChatSettings;
use crate::services::{self, ServiceError};
use crate::state::AppState;
use crate::storage::{self, StorageError, now_millis};
use answer::Audience;
use command::Reading;
use listening::{Listening, Pace};
use matrix::{Invite, MatrixClient, MatrixError, RoomMessage, SyncBatch};

const SYNC_CURSOR: &str = "sync_token";
/// Handled event ids are kept this long; the sync token has long moved past them.
const KEEP_EVENTS_MILLIS: i64 = 7 * 24 * 3600 * 1000;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How long the joiner pauses before it tries again an invitation the homeserver
/// could not take (down, or refusing the bot's account as a whole).
const JOIN_AGAIN_AFTER: Duration = Duration::from_secs(15);

const ENCRYPTED: &str = "I cannot read encrypted messages. Start a chat with me \
with encryption turned off (in Element: a new direct message, then Room settings → \
Security → Encrypted off), or use the Slipway portal.";

/// The shared rooms, as room ids once joined.
#[derive(Debug, Clone, Default)]
pub struct Rooms {
    /// Hears every team's requests waiting for review.
    pub review: Option<String>,
    pub platform: Option<String>,
    /// Team → the room that hears that team's requests waiting for review.
    pub teams: BTreeMap<String, String>,
}

impl Rooms {
    /// Every configured room, as its id or, until it is resolved, its alias.
    fn all_mut(&mut self) -> impl Iterator<Item = &mut String> {
        let shared = self.review.iter_mut().chain(self.platform.iter_mut());
        shared.chain(self.teams.values_mut())
    }

    /// The configured aliases whose rooms' ids are not known yet (each once).
    fn unresolved(&self) -> Vec<String> {
        let shared = self.review.iter().chain(self.platform.iter());
        let mut aliases: Vec<String> = shared
            .chain(self.teams.values())
            .filter(|room| room.starts_with('#'))
            .cloned()
            .collect();
        aliases.sort();
        aliases.dedup();
        aliases
    }

    /// The room `alias` stands for is `id`, wherever it is configured.
    fn resolved(&mut self, alias: &str, id: &str) {
        for room in self.all_mut().filter(|room| *room == alias) {
            *room = id.to_string();
        }
    }

    fn is_shared(&self, room: &str) -> bool {
        self.review.as_deref() == Some(room)
            || self.platform.as_deref() == Some(room)
            || self.teams.values().any(|r| r == room)
    }

    /// The rooms a request waiting for review is posted to: the review room, and
    /// the rooms of the teams whose reviewers review it (the request's team and
    /// the one that offers its type), each once. A team's room never hears
    /// another team's request.
    pub fn for_review(&self, team: Option<&str>, offering_team: &str) -> Vec<&str> {
        let mut rooms: Vec<&str> = self.review.as_deref().into_iter().collect();
        for team in team.into_iter().chain([offering_team]) {
            if let Some(room) = self.teams.get(team)
                && !rooms.contains(&room.as_str())
            {
                rooms.push(room);
            }
        }
        rooms
    }
}

/// Starts the bot; it stops when `stopped` turns true.
pub fn spawn(
    state: AppState,
    settings: ChatSettings,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        match MatrixClient::new(&settings.homeserver, settings.token.clone()) {
            Ok(client) => run(state, settings, client, stopped).await,
            Err(error) => tracing::error!(%error, "the chat bot cannot start its HTTP client"),
        }
    })
}

/// Doubling pauses between failed tries, capped; reset by a success.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff {
            next: FIRST_BACKOFF.min(max),
            max,
        }
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF.min(self.max);
    }

    /// How long to pause after `error`: what a 429 asks for, else the next step.
    fn after(&mut self, error: &MatrixError) -> Duration {
        if let MatrixError::RateLimited(wait) = error {
            return *wait;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

/// Sleeps `pause`; `false` when the bot is told to stop meanwhile.
async fn pause_or_stop(pause: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    let stop = tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = async { stopped.wait_for(|stop| *stop).await.is_ok() } => true,
    };
    !stop && !*stopped.borrow()
}

/// The right to run the bot, as a replica holds it while its bot runs.
#[doc(hidden)]
pub use leader::Leadership as BotLock;

/// Waits for the bot's lock as a replica's bot does; `None` when told to stop
/// first. For tests, which take it as two replicas would.
#[doc(hidden)]
pub async fn take_bot_lock(
    state: &AppState,
    stopped: &mut watch::Receiver<bool>,
) -> Option<BotLock> {
    leader::acquire(state, stopped).await
}

/// How long a bot whose term ended may take to finish what it is doing.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// Runs the bot while this replica holds the chat lock, and stands by again when
/// its hold may have lapsed, until told to stop.
async fn run(
    state: AppState,
    settings: ChatSettings,
    client: MatrixClient,
    mut stopped: watch::Receiver<bool>,
) {
    while let Some(mut leadership) = leader::acquire(&state, &mut stopped).await {
        let (end_term, term_over) = watch::channel(false);
        let watch_term = async {
            let lost = tokio::select! {
                _ = leader::lost(&mut leadership) => true,
                _ = stopped.wait_for(|stop| *stop) => false,
            };
            let _ = end_term.send(true);
            lost
        };
        let serving = async {
            let mut over = term_over.clone();
            let serving = serve(&state, &settings, &client, term_over);
            tokio::pin!(serving);
            tokio::select! {
                () = &mut serving => {}
                _ = async { over.wait_for(|over| *over).await.is_ok() } => {
                    // The bot stops between messages; one busy sending (waiting
                    // out a rate limit) is dropped after a short grace, so a
                    // replica that lost the lock does not answer beside the new
                    // holder for minutes.
                    if tokio::time::timeout(TERM_GRACE, &mut serving).await.is_err() {
                        tracing::warn!("the chat bot was busy when its term ended; it is stopped");
                    }
                }
            }
        };
        let (lost, ()) = tokio::join!(watch_term, serving);
        if !lost {
            return;
        }
        tracing::warn!("the chat bot's database session ended; standing by for the lock");
    }
}

async fn serve(
    state: &AppState,
    settings: &ChatSettings,
    client: &MatrixClient,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(settings.max_backoff);
    let bot = loop {
        match client.whoami().await {
            Ok(bot) => break bot,
            Err(error) => {
                tracing::warn!(%error, "the chat bot cannot reach its homeserver yet");
                if !pause_or_stop(backoff.after(&error), &mut stopped).await {
                    return;
                }
            }
        }
    };
    warn_of_links_not_allowed(state, &bot, &settings.allowed_servers).await;
    let rooms = join_rooms(client, settings).await;
    let names = command::bot_names(&bot, display_name(client, &bot).await.as_deref());
    tracing::info!(bot, ?names, ?rooms, "the chat bot is connected");
    let unresolved = !rooms.unresolved().is_empty();
    let (resolved, configured) = watch::channel(rooms.clone());
    let _resolver = unresolved.then(|| {
        TermTask(tokio::spawn(resolve_aliases_later(
            client.clone(),
            resolved,
        )))
    });
    let linked = notify::LinkedRooms::new(&bot);
    let membership_news = linked.news();
    let mut notifier = TermTask(tokio::spawn(notify_loop(
        state.clone(),
        client.clone(),
        configured.clone(),
        linked,
        settings.clone(),
        stopped.clone(),
    )));
    let invitations = Arc::new(Invitations::default());
    let joiner = TermTask(tokio::spawn(join_invitations(
        client.clone(),
        invitations.clone(),
    )));
    let heard = Heard {
        bot: &bot,
        names: &names,
        rooms: &rooms,
        invitations: &invitations,
        membership_news: &membership_news,
        allowed: &settings.allowed_servers,
    };
    sync_loop(state, settings, client, (heard, &configured), &mut stopped).await;
    drop(joiner);
    // The notifier stops at its next pause; one busy sending finishes first,
    // within the term's grace (past it, this future is dropped, and it with it).
    let _ = (&mut notifier.0).await;
}

/// A task that lives as long as the bot's term: stopped when the term's serving
/// ends however it ends, finished or dropped after the grace. A dropped
/// `JoinHandle` leaves its task running, and a notifier of an ended term would
/// tell rooms beside the next holder of the lock.
struct TermTask(JoinHandle<()>);

impl Drop for TermTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The bot's display name, which a client's mention of it puts in the text;
/// read once at start (a rename is heard after a restart).
async fn display_name(client: &MatrixClient, bot: &str) -> Option<String> {
    match client.display_name(bot).await {
        Ok(name) => name,
        Err(error) => {
            tracing::warn!(%error, "the chat bot cannot read its display name; mentions by its id and localpart still reach it");
            None
        }
    }
}

/// What the sync loop hears with: who the bot is and the names it is addressed
/// by, its configured rooms, and the invitations waiting to be joined.
#[derive(Clone, Copy)]
struct Heard<'a> {
    bot: &'a str,
    names: &'a [String],
    rooms: &'a Rooms,
    invitations: &'a Invitations,
    membership_news: &'a notify::MembershipNews,
    /// The homeservers whose accounts may link and command, besides the bot's.
    allowed: &'a [String],
}

/// Invitations accepted and not joined yet, each once. A set rather than a
/// bounded queue: an invitation comes in one sync only, so one that found the
/// queue full would be lost for good. Only invitations to configured rooms or
/// from an allowed homeserver get here, and a room invited to twice is
/// waiting once.
#[derive(Default)]
struct Invitations {
    /// In the order they came; a room tried again goes to the back, so one
    /// that keeps failing does not hold the others up.
    waiting: Mutex<VecDeque<String>>,
    added: Notify,
}

impl Invitations {
    fn add(&self, room: &str) {
        let mut waiting = self.rooms();
        if !waiting.iter().any(|r| r == room) {
            waiting.push_back(room.to_string());
        }
        drop(waiting);
        self.added.notify_one();
    }

    /// The oldest waiting invitation, taken out of the queue.
    fn take(&self) -> Option<String> {
        self.rooms().pop_front()
    }

    /// Waits until an invitation is waiting, and takes it.
    async fn next(&self) -> String {
        loop {
            if let Some(room) = self.take() {
                return room;
            }
            self.added.notified().await;
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        // The set stays whole whatever a panicking holder did: a plain insert
        // or removal cannot leave it half-changed.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Accepts invitations one after another, off the sync loop: a join that waits
/// out the homeserver's rate limit must not keep commands from being answered.
/// One the homeserver could not take now waits again, after a pause.
async fn join_invitations(client: MatrixClient, invitations: Arc<Invitations>) {
    loop {
        let room = invitations.next().await;
        match retrying(|| client.join(&room)).await {
            Ok(_) => {}
            Err(error) if error.is_transient() => {
                tracing::warn!(room, %error, "the chat bot could not accept an invitation yet; it tries again");
                invitations.add(&room);
                tokio::time::sleep(JOIN_AGAIN_AFTER).await;
            }
            Err(error) => {
                tracing::warn!(room, %error, "the chat bot could not accept an invitation");
            }
        }
    }
}

/// The server part of a Matrix user id: `example.org` of `@slipway:example.org`.
fn server_of(user: &str) -> Option<&str> {
    user.split_once(':').map(|(_, server)| server)
}

/// Whether `user` is on a homeserver whose accounts may link and command: the
/// bot's own, or one of `allowed` (the setting adds servers: listing a
/// partner's must not lock out the bot's own people). Anyone on a homeserver
/// that federates with the bot's can write to it; who they are is only as
/// sure as their homeserver is trusted.
fn from_allowed_server(user: &str, bot: &str, allowed: &[String]) -> bool {
    let Some(server) = server_of(user) else {
        return false;
    };
    let own = server_of(bot).is_some_and(|own| own.eq_ignore_ascii_case(server));
    own || allowed.iter().any(|a| a.eq_ignore_ascii_case(server))
}

/// The homeservers whose accounts may command: the bot's own first, then the
/// listed ones, each once.
fn allowed_servers<'a>(bot: &'a str, allowed: &'a [String]) -> Vec<&'a str> {
    let mut servers: Vec<&str> = server_of(bot).into_iter().collect();
    for server in allowed {
        if !servers.iter().any(|s| s.eq_ignore_ascii_case(server)) {
            servers.push(server);
        }
    }
    servers
}

/// How many linked chat accounts are on a homeserver not allowed to command
/// (linked before `--matrix-allowed-servers` left their server out, or while
/// the setting replaced the bot's own server).
#[doc(hidden)]
pub async fn links_of_servers_not_allowed(
    state: &AppState,
    bot: &str,
    allowed: &[String],
) -> Result<usize, StorageError> {
    let mut conn = state.db.pool.acquire().await?;
    let linked = storage::chat::linked_chat_users(&mut conn).await?;
    Ok(linked
        .iter()
        .filter(|user| !from_allowed_server(user, bot, allowed))
        .count())
}

/// Warns, once a term, of linked accounts that can no longer command: nothing
/// else tells the operator that their people are turned away.
async fn warn_of_links_not_allowed(state: &AppState, bot: &str, allowed: &[String]) {
    match links_of_servers_not_allowed(state, bot, allowed).await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(
            count,
            "linked chat accounts are on homeservers --matrix-allowed-servers does not list; \
             the bot answers them that it takes no commands from their server until it is listed"
        ),
        Err(error) => {
            tracing::warn!(%error, "the chat bot could not count the linked accounts of homeservers not allowed");
        }
    }
}

/// Whether the bot accepts an invitation: to a configured room, or from someone
/// on an allowed homeserver (anyone on any server could otherwise pull it into
/// rooms it would answer in).
fn accepts(invite: &Invite, bot: &str, rooms: &Rooms, allowed: &[String]) -> bool {
    if rooms.is_shared(&invite.room_id) {
        return true;
    }
    let inviter = invite.inviter.as_deref();
    inviter.is_some_and(|inviter| from_allowed_server(inviter, bot, allowed))
}

/// Said, once in a while, to an account of a homeserver not allowed to command.
fn other_server(bot: &str, allowed: &[String]) -> String {
    let servers = allowed_servers(bot, allowed).join(", ");
    format!(
        "I take commands only from accounts on {servers}, and yours is on another \
         homeserver: use the Slipway portal."
    )
}

/// Joins the configured rooms (the bot must be invited to a private one first).
async fn join_rooms(client: &MatrixClient, settings: &ChatSettings) -> Rooms {
    let mut rooms = Rooms::default();
    for (wanted, slot) in [
        (&settings.review_room, &mut rooms.review),
        (&settings.platform_room, &mut rooms.platform),
    ] {
        if let Some(room) = wanted {
            *slot = Some(join_room(client, room).await);
        }
    }
    for (team, room) in &settings.team_review_rooms {
        let id = join_room(client, room).await;
        rooms.teams.insert(team.clone(), id);
    }
    rooms
}

/// A configured room's id, joined when the bot may; an alias that cannot be
/// resolved now stays as it is, and is resolved later (see
/// [`resolve_aliases_later`]).
async fn join_room(client: &MatrixClient, room: &str) -> String {
    match retrying(|| client.join(room)).await {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(room, %error, "the chat bot cannot join a configured room; invite it");
            // Messages and notices name rooms by id: an alias is resolved, so the
            // room is known (and joined) once the bot is invited.
            match room.starts_with('#') {
                true => client.resolve_alias(room).await.unwrap_or_else(|error| {
                    tracing::error!(room, %error, "the chat bot cannot resolve a configured room's alias yet; it tries again");
                    room.to_string()
                }),
                false => room.to_string(),
            }
        }
    }
}

/// How long the bot waits before it asks again for the rooms of configured
/// aliases it could not resolve.
const RESOLVE_AGAIN_AFTER: Duration = Duration::from_secs(30);

/// Resolves, again and again, the configured aliases that could not be
/// resolved at start (the homeserver down, the alias not made yet), and hands
/// each room id found to the sync loop and the notifier: a notice to an alias
/// fails, and without this every one would be dropped until a restart.
async fn resolve_aliases_later(client: MatrixClient, rooms: watch::Sender<Rooms>) {
    loop {
        tokio::time::sleep(RESOLVE_AGAIN_AFTER).await;
        let mut now = rooms.borrow().clone();
        let left = resolve_aliases(&client, &mut now).await;
        rooms.send_replace(now);
        if left == 0 {
            return;
        }
    }
}

/// Resolves the aliases in `rooms` whose ids are not known, and joins each room
/// found where the bot may already (its invitation may have come while the
/// alias was not known, and been passed over); answers how many are left.
async fn resolve_aliases(client: &MatrixClient, rooms: &mut Rooms) -> usize {
    let mut left = 0;
    for alias in rooms.unresolved() {
        match client.resolve_alias(&alias).await {
            Ok(id) => {
                tracing::info!(
                    alias,
                    room = id,
                    "the chat bot resolved a configured room's alias"
                );
                if let Err(error) = client.join(&id).await {
                    tracing::info!(room = id, %error, "the chat bot joins the room once it is invited");
                }
                rooms.resolved(&alias, &id);
            }
            Err(error) => {
                tracing::warn!(alias, %error, "the chat bot still cannot resolve a configured room's alias");
                left += 1;
            }
        }
    }
    left
}

/// Syncs until told to stop. `configured` brings the configured rooms as
/// their aliases are resolved; each batch is heard with them as they are then.
async fn sync_loop(
    state: &AppState,
    settings: &ChatSettings,
    client: &MatrixClient,
    (heard, configured): (Heard<'_>, &watch::Receiver<Rooms>),
    stopped: &mut watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(settings.max_backoff);
    let mut listening = Listening::default();
    tokio::select! {
        _ = reread_pending_invites(state, client, heard, &mut listening) => {}
        _ = stopped.wait_for(|stop| *stop) => return,
    }
    while !*stopped.borrow() {
        let since = match load_cursor(state).await {
            Ok(since) => since,
            Err(error) => {
                tracing::error!(%error, "the chat bot cannot read its sync token");
                if !pause_or_stop(settings.max_backoff, stopped).await {
                    return;
                }
                continue;
            }
        };
        let synced = tokio::select! {
            synced = client.sync(since.as_deref(), settings.sync_wait, heard.bot) => synced,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let batch = match synced {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "chat sync failed; trying again");
                if !pause_or_stop(backoff.after(&error), stopped).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        let first = since.is_none();
        let rooms = configured.borrow().clone();
        let heard = Heard {
            rooms: &rooms,
            ..heard
        };
        if let Err(error) = handle_batch(state, client, heard, &mut listening, first, &batch).await
        {
            tracing::error!(%error, "the chat bot could not handle a sync batch; it reads it again");
            if !pause_or_stop(settings.max_backoff, stopped).await {
                return;
            }
        }
    }
}

/// At start, the invitations heard before a stop and not joined yet (a later
/// sync does not bring them again). Not needed on the first sync ever, which
/// brings every pending one; a homeserver that cannot answer now is logged, and
/// the bot goes on with what new syncs bring.
async fn reread_pending_invites(
    state: &AppState,
    client: &MatrixClient,
    heard: Heard<'_>,
    listening: &mut Listening,
) {
    if !matches!(load_cursor(state).await, Ok(Some(_))) {
        return;
    }
    match client.pending_invites(heard.bot).await {
        Ok(invites) => accept_invites(heard, listening, &invites),
        Err(error) => {
            tracing::warn!(%error, "the chat bot could not read the invitations waiting for it; new ones are still heard");
        }
    }
}

/// Queues the invitations the bot accepts for joining.
fn accept_invites(heard: Heard<'_>, listening: &mut Listening, invites: &[Invite]) {
    for invite in invites {
        if !accepts(invite, heard.bot, heard.rooms, heard.allowed) {
            tracing::info!(room = ?invite.room_id, inviter = ?invite.inviter, "the chat bot passes over an invitation from a homeserver not allowed");
            continue;
        }
        heard.invitations.add(&invite.room_id);
        listening.invited(&invite.room_id, now_millis());
    }
}

async fn load_cursor(state: &AppState) -> Result<Option<String>, StorageError> {
    let mut conn = state.db.pool.acquire().await?;
    storage::chat::cursor(&mut conn, SYNC_CURSOR).await
}

/// Handles one sync batch as the sync loop of a bot just started would (nothing
/// learnt yet of its rooms and senders), and stores its token. For tests, which
/// hand the bot a batch as a homeserver's sync may bring it.
#[doc(hidden)]
pub async fn hear_batch(
    state: &AppState,
    client: &MatrixClient,
    bot: &str,
    rooms: &Rooms,
    batch: &SyncBatch,
) -> Result<(), ServiceError> {
    let names = command::bot_names(bot, None);
    let invitations = Invitations::default();
    let membership_news = notify::LinkedRooms::new(bot).news();
    let heard = Heard {
        bot,
        names: &names,
        rooms,
        invitations: &invitations,
        membership_news: &membership_news,
        allowed: &[],
    };
    handle_batch(
        state,
        client,
        heard,
        &mut Listening::default(),
        false,
        batch,
    )
    .await
}

/// Accepts invitations, answers new messages, and stores the token. The first
/// sync ever only catches up: old messages are history, not commands.
async fn handle_batch(
    state: &AppState,
    client: &MatrixClient,
    heard: Heard<'_>,
    listening: &mut Listening,
    first: bool,
    batch: &SyncBatch,
) -> Result<(), ServiceError> {
    accept_invites(heard, listening, &batch.invites);
    listening.members_changed(&batch.membership_changed);
    heard.membership_news.changed(&batch.membership_changed);
    let used_up = use_up_codes_said_aloud(state, client, heard, listening, &batch.messages).await?;
    let mut held_back = Vec::new();
    let handled = match first {
        true => Ok(()),
        false => {
            let messages = (&batch.messages[..], &used_up);
            handle_messages(state, client, heard, listening, messages, &mut held_back).await
        }
    };
    if handled.is_err() && held_back.is_empty() {
        return handled;
    }
    // The messages held back by the pace are claimed in one statement, with
    // the token, and also when a later message failed: a batch read again
    // (after that failure, or by the next replica to hold the lock) must not
    // run one of them then, unasked, nor a second copy the person re-sent.
    let mut tx = state.db.write().await?;
    storage::chat::claim_events(&mut tx, &held_back).await?;
    if handled.is_ok() {
        storage::chat::set_cursor(&mut tx, SYNC_CURSOR, &batch.next_batch).await?;
        if !batch.messages.is_empty() {
            storage::chat::forget_events(&mut tx, now_millis() - KEEP_EVENTS_MILLIS).await?;
        }
    }
    tx.commit().await?;
    handled
}

/// Handles the batch's messages from others, in order; pushes to `held_back`
/// the events the pace held back, to be claimed with the batch. Messages
/// handled before (a batch read again) are passed over before the pace
/// counts them.
async fn handle_messages(
    state: &AppState,
    client: &MatrixClient,
    heard: Heard<'_>,
    listening: &mut Listening,
    (messages, used_up): (&[RoomMessage], &HashSet<String>),
    held_back: &mut Vec<String>,
) -> Result<(), ServiceError> {
    let from_others: Vec<&RoomMessage> =
        messages.iter().filter(|m| m.sender != heard.bot).collect();
    let handled_before = handled_before(state, &from_others).await?;
    for message in from_others {
        if handled_before.contains(&message.event_id) {
            continue;
        }
        if listening.said_before_invitation(&message.room_id, message.sent_at) {
            tracing::info!(room = %message.room_id, event = %message.event_id, "the chat bot passes over a message from before its invitation");
            continue;
        }
        let outcome = handle_message(state, client, heard, listening, message, used_up).await?;
        if outcome == Outcome::HeldBack {
            held_back.push(message.event_id.clone());
        }
    }
    Ok(())
}

/// Uses up every link code said where others read in the batch, before any
/// command of it runs. Messages are handled room by room, and a direct chat
/// handled first must not link with a code that a shared room has read (its
/// owner would be told nothing). Every message counts, also one passed over as
/// history, from before an invitation or over its sender's pace: the others
/// read it all the same; and every code-shaped word of it, in its body or in
/// what its HTML shows, not only one after `link`. Answers the messages whose
/// sender is told that their code is used up, instead of an answer.
async fn use_up_codes_said_aloud(
    state: &AppState,
    client: &MatrixClient,
    heard: Heard<'_>,
    listening: &mut Listening,
    messages: &[RoomMessage],
) -> Result<HashSet<String>, ServiceError> {
    let mut used_up = HashSet::new();
    for message in messages.iter().filter(|m| m.sender != heard.bot) {
        let codes: Vec<String> = message.texts().flat_map(services::chat::codes_in).collect();
        // Read as where others read: a direct chat's words are found out below.
        let link_word = command::link_code(&command::read(&message.body, heard.names, true));
        if codes.is_empty() && link_word.is_none() {
            continue;
        }
        let audience = listening
            .audience(client, heard.rooms, &message.room_id)
            .await;
        // A direct chat is its sender's own; a room whose members could not be
        // read links no one and uses nothing up (see `answer::link`).
        if !matches!(audience, Audience::Shared | Audience::Open(_)) {
            continue;
        }
        let (sender, event) = (&message.sender, &message.event_id);
        let could_link = services::chat::burn_codes(state, &codes, sender, event).await?;
        // `link …` said to the bot is always answered; any other message only
        // when it held a code that could still link (said in passing, the
        // sender may not know they gave it away).
        let reading = command::read(&message.body, heard.names, audience.addressed_only());
        let asked_to_link = link_word.is_some() && matches!(reading, Reading::Command(_));
        if could_link || asked_to_link {
            used_up.insert(message.event_id.clone());
        }
    }
    Ok(used_up)
}

/// What the bot makes of a message, given who reads its room.
#[derive(Debug, PartialEq, Eq)]
enum Meaning<'a> {
    Read(Reading<'a>),
    /// Words that would be a command in a direct chat and chatter in a shared
    /// room, where the bot could not tell which the room is: it says so, rather
    /// than pass over a command in silence.
    Unplaced,
}

fn meaning_of<'a>(body: &'a str, names: &[String], audience: Audience) -> Meaning<'a> {
    match command::read(body, names, audience.addressed_only()) {
        Reading::Chatter
            if audience == Audience::Unknown && command::starts_like_command(body, names) =>
        {
            Meaning::Unplaced
        }
        reading => Meaning::Read(reading),
    }
}

/// Which of `messages` were claimed before: one read for the batch.
async fn handled_before(
    state: &AppState,
    messages: &[&RoomMessage],
) -> Result<HashSet<String>, StorageError> {
    if messages.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<&str> = messages.iter().map(|m| m.event_id.as_str()).collect();
    let mut conn = state.db.pool.acquire().await?;
    storage::chat::handled_events(&mut conn, &ids).await
}

/// What became of a message the sync loop heard.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Answered, run, or passed over for good (chatter, a stranger's).
    Done,
    /// Over its sender's pace: not run, and to be claimed with the batch.
    HeldBack,
}

async fn handle_message(
    state: &AppState,
    client: &MatrixClient,
    heard: Heard<'_>,
    listening: &mut Listening,
    message: &RoomMessage,
    used_up: &HashSet<String>,
) -> Result<Outcome, ServiceError> {
    let audience = listening
        .audience(client, heard.rooms, &message.room_id)
        .await;
    if message.encrypted {
        answer_encrypted(state, client, listening, message, audience).await?;
        return Ok(Outcome::Done);
    }
    let meaning = meaning_of(&message.body, heard.names, audience);
    let gave_code_away = used_up.contains(&message.event_id);
    if meaning == Meaning::Read(Reading::Chatter) && !gave_code_away {
        return Ok(Outcome::Done);
    }
    let heard_in = (message, audience);
    // Neither linked nor run, nor written down: told why once in a while.
    if !gave_code_away && !from_allowed_server(&message.sender, heard.bot, heard.allowed) {
        if listening.tell_stranger(&message.sender, Instant::now()) {
            let why = other_server(heard.bot, heard.allowed);
            say(client, listening, heard_in, Said::OtherServer, why).await;
        }
        return Ok(Outcome::Done);
    }
    // The pace before the claim: a flood past it costs no write transaction
    // per message; its held-back events are claimed in one with the batch.
    let now = Instant::now();
    if !within_pace(client, listening, heard_in, now).await {
        return Ok(Outcome::HeldBack);
    }
    if !claim(state, &message.event_id).await? {
        return Ok(Outcome::Done);
    }
    let asker = answer::Asker {
        chat_user: &message.sender,
        room_id: &message.room_id,
        event_id: &message.event_id,
        audience,
    };
    let reading = (meaning, heard.names);
    let Some(reply) = reply_to(state, &asker, message, reading, gave_code_away).await else {
        return Ok(Outcome::Done);
    };
    if reply == answer::NOT_LINKED && !listening.tell_stranger(&message.sender, now) {
        return Ok(Outcome::Done);
    }
    say(client, listening, heard_in, Said::Answer, reply).await;
    Ok(Outcome::Done)
}

/// Counts a command against its sender's pace; `false` when it is held back
/// (the first one over it in a minute is answered "slow down").
async fn within_pace(
    client: &MatrixClient,
    listening: &mut Listening,
    (message, audience): (&RoomMessage, Audience),
    now: Instant,
) -> bool {
    match listening.pace(&message.sender, now) {
        Pace::Allowed => true,
        Pace::TooFast => {
            let heard_in = (message, audience);
            say(client, listening, heard_in, Said::SlowDown, slow_down()).await;
            false
        }
        Pace::Ignored => false,
    }
}

fn slow_down() -> String {
    format!(
        "Slow down, please: I run at most {} commands a minute from one person. \
         I answer again in a minute.",
        listening::MAX_COMMANDS_PER_MINUTE
    )
}

/// What the bot answers a message it claimed, if anything. `names` are the
/// bot's: the message is read as addressed to it when its formatting is
/// checked.
async fn reply_to(
    state: &AppState,
    asker: &answer::Asker<'_>,
    message: &RoomMessage,
    (meaning, names): (Meaning<'_>, &[String]),
    gave_code_away: bool,
) -> Option<String> {
    if gave_code_away {
        // Its code was used up before the batch's commands ran.
        return Some(answer::CODE_USED_UP.to_string());
    }
    if message.formatting_differs(names) {
        return Some(answer::FORMATTING_DIFFERS.to_string());
    }
    match meaning {
        Meaning::Unplaced => Some(answer::COMMAND_UNCHECKED.to_string()),
        Meaning::Read(reading) => answer::reply(state, asker, reading).await,
    }
}

/// An encrypted message, which the bot cannot read, is answered once per room
/// of two (a direct chat, or one open to others: the answer tells nothing of
/// anyone); where others talk it is not the bot's business.
async fn answer_encrypted(
    state: &AppState,
    client: &MatrixClient,
    listening: &mut Listening,
    message: &RoomMessage,
    audience: Audience,
) -> Result<(), ServiceError> {
    let of_two = matches!(audience, Audience::Direct | Audience::Open(_));
    if !of_two || !listening.first_encrypted(&message.room_id) {
        return Ok(());
    }
    if claim(state, &message.event_id).await? {
        send_reply(client, message, Said::Encrypted, ENCRYPTED).await;
    }
    Ok(())
}

/// Claims a message for handling; `false` when it was handled before.
async fn claim(state: &AppState, event_id: &str) -> Result<bool, StorageError> {
    let mut tx = state.db.write().await?;
    let claimed = storage::chat::claim_event(&mut tx, event_id).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Which of the bot's replies to a message one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    /// The command's answer (or help, or why it was not run).
    Answer,
    /// Over the pace.
    SlowDown,
    /// From a homeserver not allowed to command.
    OtherServer,
    /// Encrypted, so not read.
    Encrypted,
}

/// The transaction id of a reply to `event_id`: the same for every send of
/// one reply (so a repeated send is one message), another for another reply to
/// the same message, which the homeserver would otherwise take for a repeat
/// and drop. Answers keep the ids they had before replies were told apart.
fn reply_txn(event_id: &str, said: Said) -> String {
    let kind = match said {
        Said::Answer => "reply",
        Said::SlowDown => "slow-down",
        Said::OtherServer => "other-server",
        Said::Encrypted => "encrypted",
    };
    let digest = hex::encode(&Sha256::digest(event_id.as_bytes())[..16]);
    format!("slipway-{kind}-{digest}")
}

/// Replies in the message's room, saying first, in a room open to others, why
/// the bot holds back there (once per room, see [`Listening::open_note`]).
async fn say(
    client: &MatrixClient,
    listening: &mut Listening,
    (message, audience): (&RoomMessage, Audience),
    said: Said,
    reply: String,
) {
    let note = listening.open_note(&message.room_id, audience);
    send_reply(client, message, said, &answer::with_open_note(note, reply)).await;
}

/// Answers a message, once however often it is sent (see [`reply_txn`]); a
/// failure is logged, the person asks again.
async fn send_reply(client: &MatrixClient, message: &RoomMessage, said: Said, reply: &str) {
    let txn = reply_txn(&message.event_id, said);
    if let Err(error) = send_with_retries(client, &message.room_id, &txn, reply).await {
        tracing::warn!(room = %message.room_id, %error, "the chat bot could not answer");
    }
}

const SEND_TRIES: u32 = 5;
/// How long one message may wait out rate limits in all. A 429 is the homeserver
/// saying "later", not "failed", so it does not count as a try; only a limit
/// this long (an operator's mistake, not load) gives the answer up.
const RATE_LIMIT_PATIENCE: Duration = Duration::from_secs(600);

/// Sends, waiting out rate limits and brief outages; the same transaction id on
/// every try keeps it one message.
pub(crate) async fn send_with_retries(
    client: &MatrixClient,
    room: &str,
    txn: &str,
    text: &str,
) -> Result<(), MatrixError> {
    retrying(|| client.send_text(room, txn, text)).await
}

/// Runs a homeserver call until it succeeds, waiting out rate limits (which do
/// not count as failures) and retrying brief outages up to [`SEND_TRIES`] times.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, MatrixError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MatrixError>>,
{
    let mut backoff = Backoff::new(Duration::from_secs(10));
    let (mut failures, mut limited_for) = (0, Duration::ZERO);
    loop {
        let error = match call().await {
            Ok(done) => return Ok(done),
            Err(error) => error,
        };
        let pause = match &error {
            MatrixError::RateLimited(wait) if limited_for + *wait <= RATE_LIMIT_PATIENCE => {
                limited_for += *wait;
                *wait
            }
            MatrixError::RateLimited(_) => return Err(error),
            _ if error.is_transient() && failures + 1 < SEND_TRIES => {
                failures += 1;
                backoff.after(&error)
            }
            _ => return Err(error),
        };
        tokio::time::sleep(pause).await;
    }
}

async fn notify_loop(
    state: AppState,
    client: MatrixClient,
    configured: watch::Receiver<Rooms>,
    mut linked: notify::LinkedRooms,
    settings: ChatSettings,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(settings.max_backoff);
    loop {
        // As they are now: an alias resolved since the last poll is heard.
        let rooms = configured.borrow().clone();
        let pause = match notify::notify_pending(&state, &client, &rooms, &mut linked).await {
            Ok(_) => {
                backoff.reset();
                settings.notify_every
            }
            Err(notify::NotifyError::Matrix(error)) => {
                tracing::warn!(%error, "chat notification failed; trying again");
                backoff.after(&error)
            }
            Err(error) => {
                tracing::error!(%error, "chat notifications cannot read the database");
                settings.max_backoff
            }
        };
        if !pause_or_stop(pause, &mut stopped).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_s_review_room_hears_only_its_team_s_requests() {
        let mut rooms = Rooms {
            review: None,
            platform: Some("!platform:x".into()),
            teams: BTreeMap::from([
                ("payments".to_string(), "!pay:x".to_string()),
                ("platform".to_string(), "!plat-reviews:x".to_string()),
                ("search".to_string(), "!search:x".to_string()),
            ]),
        };
        assert_eq!(
            rooms.for_review(Some("payments"), "platform"),
            ["!pay:x", "!plat-reviews:x"]
        );
        assert_eq!(
            rooms.for_review(Some("platform"), "platform"),
            ["!plat-reviews:x"]
        );
        assert_eq!(
            rooms.for_review(Some("billing"), "data"),
            Vec::<&str>::new()
        );
        assert_eq!(rooms.for_review(None, "search"), ["!search:x"]);
        assert_eq!(rooms.for_review(Some(""), "data"), Vec::<&str>::new());
        rooms.review = Some("!all:x".into());
        assert_eq!(
            rooms.for_review(Some("search"), "data"),
            ["!all:x", "!search:x"]
        );
        assert!(rooms.is_shared("!search:x") && !rooms.is_shared("!direct:x"));
    }

    #[test]
    fn every_invitation_waits_its_turn_however_many_come_at_once() {
        let invitations = Invitations::default();
        // More at once than the 64 the joiner's queue once held: the rest were lost.
        for n in 0..200 {
            invitations.add(&format!("!{n:03}:hs"));
        }
        invitations.add("!007:hs");
        let mut joined = Vec::new();
        while let Some(room) = invitations.take() {
            joined.push(room);
        }
        let expected: Vec<String> = (0..200).map(|n| format!("!{n:03}:hs")).collect();
        assert_eq!(joined, expected, "each once, none lost");
    }

    #[test]
    fn an_invitation_tried_again_waits_behind_the_others() {
        let invitations = Invitations::default();
        for room in ["!a:hs", "!b:hs", "!c:hs"] {
            invitations.add(room);
        }
        // `!a` failed for now and is tried again: `!b` and `!c` go first.
        let failing = invitations.take();
        assert_eq!(failing.as_deref(), Some("!a:hs"));
        invitations.add("!a:hs");
        let order: Vec<String> = std::iter::from_fn(|| invitations.take()).collect();
        assert_eq!(order, ["!b:hs", "!c:hs", "!a:hs"]);
    }

    #[tokio::test]
    async fn the_joiner_wakes_for_an_invitation_that_comes_while_it_waits() -> Result<(), String> {
        let invitations = Arc::new(Invitations::default());
        let waiting = tokio::spawn({
            let invitations = invitations.clone();
            async move { invitations.next().await }
        });
        tokio::task::yield_now().await;
        invitations.add("!late:hs");
        let room = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .map_err(|_| "the joiner slept through an invitation".to_string())?
            .map_err(|e| e.to_string())?;
        assert_eq!(room, "!late:hs");
        Ok(())
    }

    #[tokio::test]
    async fn a_term_s_tasks_stop_with_it() -> Result<(), String> {
        let (alive, mut gone) = tokio::sync::mpsc::channel::<()>(1);
        let task = TermTask(tokio::spawn(async move {
            let _alive = alive;
            std::future::pending::<()>().await;
        }));
        drop(task);
        let ended = tokio::time::timeout(Duration::from_secs(5), gone.recv())
            .await
            .map_err(|_| "a task of an ended term runs on".to_string())?;
        assert_eq!(ended, None);
        Ok(())
    }

    #[tokio::test]
    async fn a_command_where_the_members_cannot_be_read_is_answered() -> Result<(), reqwest::Error>
    {
        // Nothing listens on port 1: the room's members cannot be read.
        let client =
            MatrixClient::new("http://127.0.0.1:1", crate::config::Secret::new("t".into()))?;
        let audience = Listening::default()
            .audience(&client, &Rooms::default(), "!dm:hs")
            .await;
        assert_eq!(audience, Audience::Unknown);
        let names = command::bot_names("@slipway:hs", None);
        let meaning = |body| meaning_of(body, &names, audience);
        assert_eq!(meaning("approve #12"), Meaning::Unplaced);
        assert_eq!(
            meaning("slipway: mine"),
            Meaning::Read(Reading::Command("mine"))
        );
        assert_eq!(meaning("!mine"), Meaning::Read(Reading::Command("!mine")));
        assert_eq!(meaning("lunch, anyone?"), Meaning::Read(Reading::Chatter));
        // A code is neither used nor used up there (`answer::link` says so).
        assert_eq!(
            meaning("link ABCD-EFGH-JKLM"),
            Meaning::Read(Reading::CodeSaidAloud("ABCD-EFGH-JKLM".into()))
        );
        // Where the room is known, words are what they are.
        let shared = meaning_of("approve #12", &names, Audience::Shared);
        assert_eq!(shared, Meaning::Read(Reading::Chatter));
        let direct = meaning_of("approve #12", &names, Audience::Direct);
        assert_eq!(direct, Meaning::Read(Reading::Command("approve #12")));
        Ok(())
    }

    #[tokio::test]
    async fn an_alias_not_resolved_at_start_is_resolved_later()
    -> Result<(), Box<dyn std::error::Error>> {
        use axum::extract::Path;
        use axum::http::StatusCode;
        use serde_json::json;
        use std::sync::atomic::{AtomicUsize, Ordering};
        // The directory fails the first time it is asked (the homeserver was
        // down at start), then answers; the bot is not invited yet.
        let asked = Arc::new(AtomicUsize::new(0));
        let directory = move |Path(alias): Path<String>| {
            let first = asked.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                match (first, alias.as_str()) {
                    (false, "#reviews:hs") => (
                        StatusCode::OK,
                        axum::Json(json!({"room_id": "!reviews:hs"})),
                    ),
                    _ => (
                        StatusCode::BAD_GATEWAY,
                        axum::Json(json!({"errcode": "M_UNKNOWN"})),
                    ),
                }
            }
        };
        let refused = || async {
            (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"errcode": "M_FORBIDDEN"})),
            )
        };
        let app = axum::Router::new()
            .route(
                "/_matrix/client/v3/directory/room/{alias}",
                axum::routing::get(directory),
            )
            .route(
                "/_matrix/client/v3/join/{room}",
                axum::routing::post(refused),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let served = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = MatrixClient::new(
            &format!("http://{addr}"),
            crate::config::Secret::new("t".into()),
        )?;
        let mut rooms = Rooms {
            review: Some("#reviews:hs".into()),
            platform: Some("!platform:hs".into()),
            teams: BTreeMap::from([("payments".to_string(), "#reviews:hs".to_string())]),
        };
        assert_eq!(rooms.unresolved(), ["#reviews:hs"]);
        assert_eq!(resolve_aliases(&client, &mut rooms).await, 1);
        assert_eq!(rooms.review.as_deref(), Some("#reviews:hs"));
        assert_eq!(resolve_aliases(&client, &mut rooms).await, 0);
        assert_eq!(rooms.review.as_deref(), Some("!reviews:hs"));
        assert_eq!(
            rooms.teams.get("payments").map(String::as_str),
            Some("!reviews:hs")
        );
        assert_eq!(rooms.platform.as_deref(), Some("!platform:hs"));
        assert!(rooms.unresolved().is_empty() && rooms.is_shared("!reviews:hs"));
        served.abort();
        Ok(())
    }

    #[test]
    fn only_allowed_homeservers_link_and_command() {
        let own = |user| from_allowed_server(user, "@slipway:example.org", &[]);
        assert!(own("@alice:example.org") && own("@alice:EXAMPLE.org"));
        assert!(!own("@eve:evil.org") && !own("@eve:example.org.evil") && !own("no-server"));
        // The setting adds servers: the bot's own stays allowed beside them.
        let listed = ["partner.org:8448".to_string()];
        let allowed = |user| from_allowed_server(user, "@slipway:example.org", &listed);
        assert!(allowed("@bob:partner.org:8448") && allowed("@alice:example.org"));
        assert!(!allowed("@bob:partner.org") && !allowed("@eve:evil.org"));
        let told = other_server("@slipway:example.org", &listed);
        assert!(
            told.contains("accounts on example.org, partner.org:8448,"),
            "{told}"
        );
        let twice = ["example.org".to_string(), "partner.org:8448".to_string()];
        assert_eq!(
            other_server("@slipway:example.org", &twice),
            told,
            "each server once"
        );
        let invite = |inviter: &str| Invite {
            room_id: "!dm:x".into(),
            inviter: Some(inviter.into()),
        };
        let rooms = Rooms::default();
        assert!(accepts(
            &invite("@bob:partner.org:8448"),
            "@slipway:example.org",
            &rooms,
            &listed
        ));
        assert!(!accepts(
            &invite("@eve:evil.org"),
            "@slipway:example.org",
            &rooms,
            &listed
        ));
        let told = other_server("@slipway:example.org", &[]);
        assert!(told.contains("accounts on example.org,"), "{told}");
    }

    #[test]
    fn each_reply_to_one_message_is_a_message_of_its_own() {
        let kinds = [
            Said::Answer,
            Said::SlowDown,
            Said::OtherServer,
            Said::Encrypted,
        ];
        let txns: HashSet<String> = kinds.iter().map(|k| reply_txn("$e", *k)).collect();
        assert_eq!(txns.len(), kinds.len(), "{txns:?}");
        assert_eq!(
            reply_txn("$e", Said::SlowDown),
            reply_txn("$e", Said::SlowDown)
        );
        assert_ne!(reply_txn("$e", Said::Answer), reply_txn("$f", Said::Answer));
        // Answers keep their earlier ids: one sent just before an upgrade is
        // still the same message when sent again after it.
        let earlier = format!(
            "slipway-reply-{}",
            hex::encode(&Sha256::digest(b"$e")[..16])
        );
        assert_eq!(reply_txn("$e", Said::Answer), earlier);
        assert!(txns.iter().all(|txn| txn.len() <= 64), "{txns:?}");
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_obeys_rate_limits() {
        let mut backoff = Backoff::new(Duration::from_secs(1));
        let refused = MatrixError::Refused {
            status: 502,
            errcode: String::new(),
            message: String::new(),
        };
        let pauses: Vec<Duration> = (0..4).map(|_| backoff.after(&refused)).collect();
        assert_eq!(
            pauses,
            [250, 500, 1000, 1000].map(Duration::from_millis).to_vec()
        );
        let limited = MatrixError::RateLimited(Duration::from_secs(7));
        assert_eq!(backoff.after(&limited), Duration::from_secs(7));
        backoff.reset();
        assert_eq!(backoff.after(&refused), Duration::from_millis(250));
    }
}
