//! ChatOps over Matrix: a bot account beside the portal and the REST API, a third
//! thin caller of the same services. Two tasks: the sync loop answers commands,
//! the notifier tells rooms how requests move.
//!
//! Reliability: the sync token is stored after each batch, and each event is
//! claimed in the database before its command runs, so after a restart (of Slipway
//! or of the homeserver) the bot resumes where it was and never runs a command
//! twice. A command whose process dies between the claim and the answer is lost
//! (at most once): the person sees no answer and asks again. Errors and 429s back
//! off, up to the configured pause.

pub mod answer;
pub mod command;
mod leader;
mod listening;
pub mod matrix;
pub mod notify;

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::ChatSettings;
use crate::state::AppState;
use crate::storage::{self, StorageError, now_millis};
use listening::{Listening, Pace};
use matrix::{Invite, MatrixClient, MatrixError, RoomMessage, SyncBatch};

const SYNC_CURSOR: &str = "sync_token";
/// Handled event ids are kept this long; the sync token has long moved past them.
const KEEP_EVENTS_MILLIS: i64 = 7 * 24 * 3600 * 1000;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Invitations waiting to be accepted, at most; more wait for a later sync.
const MAX_PENDING_JOINS: usize = 64;

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
    let rooms = join_rooms(client, settings).await;
    tracing::info!(bot, ?rooms, "the chat bot is connected");
    let notifier = tokio::spawn(notify_loop(
        state.clone(),
        client.clone(),
        rooms.clone(),
        settings.clone(),
        stopped.clone(),
    ));
    let (joins, joiner) = spawn_joiner(client.clone());
    let heard = Heard {
        bot: &bot,
        rooms: &rooms,
        joins: &joins,
    };
    sync_loop(state, settings, client, heard, &mut stopped).await;
    joiner.abort();
    let _ = notifier.await;
}

/// What the sync loop hears with: who the bot is, its configured rooms, and
/// where accepted invitations go to be joined.
#[derive(Clone, Copy)]
struct Heard<'a> {
    bot: &'a str,
    rooms: &'a Rooms,
    joins: &'a mpsc::Sender<String>,
}

/// Accepts invitations one after another, off the sync loop: a join that waits
/// out the homeserver's rate limit must not keep commands from being answered.
fn spawn_joiner(client: MatrixClient) -> (mpsc::Sender<String>, JoinHandle<()>) {
    let (joins, mut pending) = mpsc::channel::<String>(MAX_PENDING_JOINS);
    let joiner = tokio::spawn(async move {
        while let Some(room) = pending.recv().await {
            if let Err(error) = retrying(|| client.join(&room)).await {
                tracing::warn!(room, %error, "the chat bot could not accept an invitation");
            }
        }
    });
    (joins, joiner)
}

/// The server part of a Matrix user id: `example.org` of `@slipway:example.org`.
fn server_of(user: &str) -> Option<&str> {
    user.split_once(':').map(|(_, server)| server)
}

/// Whether the bot accepts an invitation: to a configured room, or from someone
/// on its own homeserver (anyone on any server could otherwise pull it into rooms
/// it would answer in).
fn accepts(invite: &Invite, bot: &str, rooms: &Rooms) -> bool {
    if rooms.is_shared(&invite.room_id) {
        return true;
    }
    let inviter = invite.inviter.as_deref().and_then(server_of);
    inviter.is_some() && inviter == server_of(bot)
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

/// A configured room's id, joined when the bot may.
async fn join_room(client: &MatrixClient, room: &str) -> String {
    match retrying(|| client.join(room)).await {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(room, %error, "the chat bot cannot join a configured room; invite it");
            // Messages and notices name rooms by id: an alias is resolved, so the
            // room is known (and joined) once the bot is invited.
            match room.starts_with('#') {
                true => client.resolve_alias(room).await.unwrap_or_else(|error| {
                    tracing::error!(room, %error, "the chat bot cannot resolve a configured room's alias");
                    room.to_string()
                }),
                false => room.to_string(),
            }
        }
    }
}

async fn sync_loop(
    state: &AppState,
    settings: &ChatSettings,
    client: &MatrixClient,
    heard: Heard<'_>,
    stopped: &mut watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(settings.max_backoff);
    let mut listening = Listening::default();
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
        if let Err(error) = handle_batch(state, client, heard, &mut listening, first, &batch).await
        {
            tracing::error!(%error, "the chat bot could not record its progress");
            if !pause_or_stop(settings.max_backoff, stopped).await {
                return;
            }
        }
    }
}

async fn load_cursor(state: &AppState) -> Result<Option<String>, StorageError> {
    let mut conn = state.db.pool.acquire().await?;
    storage::chat::cursor(&mut conn, SYNC_CURSOR).await
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
) -> Result<(), StorageError> {
    for invite in &batch.invites {
        if !accepts(invite, heard.bot, heard.rooms) {
            tracing::info!(room = %invite.room_id, inviter = ?invite.inviter, "the chat bot passes over an invitation from another homeserver");
            continue;
        }
        // An invitation is in one sync only; the joiner tries again through
        // brief refusals, and a full queue says so.
        if heard.joins.try_send(invite.room_id.clone()).is_err() {
            tracing::warn!(room = %invite.room_id, "too many invitations at once; this one is not accepted");
        } else {
            listening.invited(&invite.room_id, now_millis());
        }
    }
    if !first {
        for message in batch.messages.iter().filter(|m| m.sender != heard.bot) {
            if listening.said_before_invitation(&message.room_id, message.sent_at) {
                tracing::info!(room = %message.room_id, event = %message.event_id, "the chat bot passes over a message from before its invitation");
                continue;
            }
            handle_message(state, client, heard, listening, message).await?;
        }
    }
    let mut tx = state.db.write().await?;
    storage::chat::set_cursor(&mut tx, SYNC_CURSOR, &batch.next_batch).await?;
    if !batch.messages.is_empty() {
        storage::chat::forget_events(&mut tx, now_millis() - KEEP_EVENTS_MILLIS).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn handle_message(
    state: &AppState,
    client: &MatrixClient,
    heard: Heard<'_>,
    listening: &mut Listening,
    message: &RoomMessage,
) -> Result<(), StorageError> {
    let body = command::addressed_text(&message.body, heard.bot);
    let shared = listening
        .is_shared(client, heard.rooms, &message.room_id)
        .await;
    // In a shared room people talk among themselves: only commands are for the
    // bot, and an encrypted message there is not its business.
    let for_the_bot = match message.encrypted {
        true => !shared && listening.first_encrypted(&message.room_id),
        false => !shared || command::looks_like_command(body),
    };
    if !for_the_bot {
        return Ok(());
    }
    let mut tx = state.db.write().await?;
    let claimed = storage::chat::claim_event(&mut tx, &message.event_id).await?;
    tx.commit().await?;
    if !claimed {
        return Ok(());
    }
    let reply = if message.encrypted {
        ENCRYPTED.to_string()
    } else {
        match listening.pace(&message.sender, std::time::Instant::now()) {
            Pace::Allowed => {
                let asker = answer::Asker {
                    chat_user: &message.sender,
                    room_id: &message.room_id,
                    event_id: &message.event_id,
                    shared_room: shared,
                };
                answer::answer(state, &asker, body).await
            }
            Pace::TooFast => format!(
                "Slow down, please: I run at most {} commands a minute from one person. \
                 I answer again in a minute.",
                listening::MAX_COMMANDS_PER_MINUTE
            ),
            Pace::Ignored => return Ok(()),
        }
    };
    if reply == answer::NOT_LINKED
        && !listening.tell_stranger(&message.sender, std::time::Instant::now())
    {
        return Ok(());
    }
    let txn = format!(
        "slipway-reply-{}",
        hex::encode(&Sha256::digest(message.event_id.as_bytes())[..16])
    );
    if let Err(error) = send_with_retries(client, &message.room_id, &txn, &reply).await {
        tracing::warn!(room = %message.room_id, %error, "the chat bot could not answer");
    }
    Ok(())
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
    rooms: Rooms,
    settings: ChatSettings,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(settings.max_backoff);
    loop {
        let pause = match notify::notify_pending(&state, &client, &rooms).await {
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
