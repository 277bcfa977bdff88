//! What the bot keeps in memory while it listens: which rooms are shared (more
//! people in them than one asker and the bot) or open (others may join or read
//! them), who sends commands too fast, and where it already said that it cannot
//! read encrypted messages. None of it needs to outlive the process: after a
//! restart it is learnt again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::Rooms;
use super::answer::Audience;
use super::matrix::{MatrixClient, MatrixError, Opening};

/// How long a room's member count and opening are trusted before they are
/// asked again (the sync tells of a change sooner: see `members_changed`).
const MEMBERS_FOR: Duration = Duration::from_secs(300);
/// Commands one person may send in a minute; more are not run.
pub const MAX_COMMANDS_PER_MINUTE: u32 = 20;
const PACE_WINDOW: Duration = Duration::from_secs(60);
/// Senders remembered at most; beyond, those whose minute is over are forgotten.
const MAX_SENDERS: usize = 10_000;

/// Whether a sender's message is run.
#[derive(Debug, PartialEq, Eq)]
pub enum Pace {
    Allowed,
    /// The first message over the limit in this minute: told once.
    TooFast,
    /// Later ones in the same minute: passed over without a word.
    Ignored,
}

/// Messages of a room the bot was invited to are answered from a minute before
/// the invitation was seen (a person may invite the bot and speak at once);
/// what was said earlier (a room's whole history, when it is re-invited after
/// a week) was never said to it.
const INVITE_GRACE_MILLIS: i64 = 60_000;
/// How long an invitation's time is kept: its room's history arrives with the
/// first sync after the join.
const INVITES_FOR: Duration = Duration::from_secs(3600);

/// A room of `count` members, the bot among them, and `opening` (read only
/// for a room of two: a room of more is shared whoever else may come).
fn audience_of(count: usize, opening: Option<Opening>) -> Audience {
    match (count > 2, opening) {
        (true, _) => Audience::Shared,
        (false, Some(opening)) => Audience::Open(opening),
        (false, None) => Audience::Direct,
    }
}

/// A room's member count (and, for a room of two, its opening) as last read.
struct MemberCount {
    count: usize,
    opening: Option<Opening>,
    /// When it was read; `None` once the sync showed someone joining or leaving,
    /// or the room's join rule or history visibility changing, since: it is then
    /// kept only as the last known count.
    read_at: Option<Instant>,
}

/// Reads who may read `room`: its members, and for a room of two whether
/// others may join it or read its history (a room of two that is open is no
/// direct chat: whoever comes later reads it).
async fn read_room(client: &MatrixClient, room: &str) -> Result<MemberCount, MatrixError> {
    let count = client.reader_count(room).await?;
    let opening = match count > 2 {
        true => None,
        false => client.opening(room).await?,
    };
    Ok(MemberCount {
        count,
        opening,
        read_at: Some(Instant::now()),
    })
}

impl MemberCount {
    fn audience(&self) -> Audience {
        audience_of(self.count, self.opening)
    }

    fn fresh(&self) -> bool {
        self.read_at.is_some_and(|at| at.elapsed() < MEMBERS_FOR)
    }
}

#[derive(Default)]
pub struct Listening {
    members: HashMap<String, MemberCount>,
    senders: HashMap<String, (Instant, u32)>,
    told_encrypted: HashSet<String>,
    /// Rooms invited to lately: from when their messages count, and when the
    /// invitation was seen.
    invited: HashMap<String, (i64, Instant)>,
    /// People the bot does not know, and when it last told them how to link.
    strangers: HashMap<String, Instant>,
    /// Open rooms already told why the bot holds back there.
    told_open: HashSet<String>,
}

/// How often one person the bot does not know is told how to link: every
/// command of theirs would otherwise cost an answer from the bot's own sending
/// budget, which answers and review notices for everyone share.
const STRANGER_TOLD_EVERY: Duration = Duration::from_secs(600);

impl Listening {
    /// Who reads `room`: people talk among themselves in a configured room or
    /// one with more than two members, and there the bot answers only commands
    /// addressed to it, and links no one. A room of two that others may join or
    /// read is [`Audience::Open`]: no one links there either, and what is the
    /// asker's alone is not said. A room whose members or opening cannot be read
    /// now is judged by its last known count, and without one it is
    /// [`Audience::Unknown`]: answered as shared, but a link code sent there is
    /// neither used to link nor used up on a guess.
    pub async fn audience(&mut self, client: &MatrixClient, rooms: &Rooms, room: &str) -> Audience {
        if rooms.is_shared(room) {
            return Audience::Shared;
        }
        if let Some(known) = self.members.get(room)
            && known.fresh()
        {
            return known.audience();
        }
        match read_room(client, room).await {
            Ok(read) => {
                let audience = read.audience();
                self.members.insert(room.to_string(), read);
                audience
            }
            // A stale count that said shared is taken as shared (the safe side);
            // one that said direct or open may be out of date, since others may
            // have joined meanwhile: then the room is not known.
            Err(error) => match self.members.get(room).map(|known| known.count) {
                Some(count) if audience_of(count, None) == Audience::Shared => {
                    tracing::warn!(room, %error, count, "the chat bot cannot read a room's members; it goes by the last count");
                    Audience::Shared
                }
                _ => {
                    tracing::warn!(room, %error, "the chat bot cannot read a room's members; it answers there as in a shared room and links no one");
                    Audience::Unknown
                }
            },
        }
    }

    /// The sync showed people joining or leaving `rooms`, or their join rule or
    /// history visibility changing: they are read again before the bot next
    /// answers there (a direct chat someone joined, or opened to the public, is
    /// no longer direct from that moment, not minutes later).
    pub fn members_changed<'a>(&mut self, rooms: impl IntoIterator<Item = &'a String>) {
        for room in rooms {
            if let Some(known) = self.members.get_mut(room) {
                known.read_at = None;
            }
        }
    }

    /// Counts a command of `sender` sent at `now`.
    pub fn pace(&mut self, sender: &str, now: Instant) -> Pace {
        if self.senders.len() >= MAX_SENDERS {
            self.senders
                .retain(|_, (since, _)| now.duration_since(*since) < PACE_WINDOW);
        }
        let (since, count) = self.senders.entry(sender.to_string()).or_insert((now, 0));
        if now.duration_since(*since) >= PACE_WINDOW {
            (*since, *count) = (now, 0);
        }
        *count += 1;
        match *count {
            n if n <= MAX_COMMANDS_PER_MINUTE => Pace::Allowed,
            n if n == MAX_COMMANDS_PER_MINUTE + 1 => Pace::TooFast,
            _ => Pace::Ignored,
        }
    }

    /// The bot accepted an invitation to `room`, seen at `now_ms`.
    pub fn invited(&mut self, room: &str, now_ms: i64) {
        self.invited
            .retain(|_, (_, seen)| seen.elapsed() < INVITES_FOR);
        self.invited.insert(
            room.to_string(),
            (now_ms - INVITE_GRACE_MILLIS, Instant::now()),
        );
    }

    /// Whether a message was said in a room before the bot was invited to it.
    pub fn said_before_invitation(&self, room: &str, sent_at: i64) -> bool {
        self.invited
            .get(room)
            .is_some_and(|(from, _)| sent_at < *from)
    }

    /// Whether to tell `sender`, whom the bot does not know, how to link now
    /// (once in [`STRANGER_TOLD_EVERY`]).
    pub fn tell_stranger(&mut self, sender: &str, now: Instant) -> bool {
        if self.strangers.len() >= MAX_SENDERS {
            self.strangers
                .retain(|_, told| now.duration_since(*told) < STRANGER_TOLD_EVERY);
        }
        match self.strangers.get(sender) {
            Some(told) if now.duration_since(*told) < STRANGER_TOLD_EVERY => false,
            _ => {
                self.strangers.insert(sender.to_string(), now);
                true
            }
        }
    }

    /// Why the bot holds back in `room`, to say before its answer there: the
    /// first time it answers in a room open to others (once while the process
    /// lives, as the notifier's note; again once the room was private or shared
    /// in between). Said with every answer, it buried the answers, "slow down"
    /// among them.
    pub fn open_note(&mut self, room: &str, audience: Audience) -> Option<Opening> {
        match audience {
            Audience::Open(opening) => self.told_open.insert(room.to_string()).then_some(opening),
            Audience::Direct | Audience::Shared => {
                self.told_open.remove(room);
                None
            }
            // Not known now: neither said nor forgotten.
            Audience::Unknown => None,
        }
    }

    /// True the first time an encrypted message arrives in `room`.
    pub fn first_encrypted(&mut self, room: &str) -> bool {
        self.told_encrypted.insert(room.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_sender_is_told_once_a_minute() {
        let mut listening = Listening::default();
        let start = Instant::now();
        for _ in 0..MAX_COMMANDS_PER_MINUTE {
            assert_eq!(listening.pace("@a:hs", start), Pace::Allowed);
        }
        assert_eq!(listening.pace("@a:hs", start), Pace::TooFast);
        assert_eq!(listening.pace("@a:hs", start), Pace::Ignored);
        assert_eq!(
            listening.pace("@b:hs", start),
            Pace::Allowed,
            "others are not held up"
        );
        let later = start + PACE_WINDOW;
        assert_eq!(listening.pace("@a:hs", later), Pace::Allowed);
    }

    #[test]
    fn senders_are_forgotten_once_their_minute_is_over() {
        let mut listening = Listening::default();
        let start = Instant::now();
        for n in 0..MAX_SENDERS {
            listening.pace(&format!("@{n}:hs"), start);
        }
        listening.pace("@new:hs", start + PACE_WINDOW);
        assert_eq!(listening.senders.len(), 1);
    }

    #[test]
    fn a_rooms_history_from_before_the_invitation_is_not_heard() {
        let mut listening = Listening::default();
        let now = 1_700_000_000_000;
        assert!(
            !listening.said_before_invitation("!r:hs", 0),
            "a room joined long ago"
        );
        listening.invited("!r:hs", now);
        assert!(listening.said_before_invitation("!r:hs", now - 8 * 86_400_000));
        assert!(
            !listening.said_before_invitation("!r:hs", now - 5_000),
            "said with the invitation"
        );
        assert!(!listening.said_before_invitation("!r:hs", now + 1_000));
        assert!(!listening.said_before_invitation("!other:hs", 0));
    }

    #[test]
    fn a_stranger_is_told_how_to_link_once_in_a_while() {
        let mut listening = Listening::default();
        let start = Instant::now();
        assert!(listening.tell_stranger("@eve:hs", start));
        assert!(!listening.tell_stranger("@eve:hs", start + Duration::from_secs(5)));
        assert!(listening.tell_stranger("@mallory:hs", start));
        assert!(listening.tell_stranger("@eve:hs", start + STRANGER_TOLD_EVERY));
    }

    /// A homeserver that cannot be reached: nothing listens on port 1.
    fn unreachable() -> Result<MatrixClient, reqwest::Error> {
        MatrixClient::new("http://127.0.0.1:1", crate::config::Secret::new("t".into()))
    }

    #[tokio::test]
    async fn a_room_whose_members_cannot_be_read_is_not_taken_for_shared_or_direct()
    -> Result<(), reqwest::Error> {
        let client = unreachable()?;
        let mut listening = Listening::default();
        let rooms = Rooms::default();
        assert_eq!(
            listening.audience(&client, &rooms, "!new:hs").await,
            Audience::Unknown
        );
        let long_ago = Instant::now()
            .checked_sub(MEMBERS_FOR * 2)
            .unwrap_or_else(Instant::now);
        let counted = |count, at| MemberCount {
            count,
            opening: None,
            read_at: Some(at),
        };
        listening
            .members
            .insert("!dm:hs".into(), counted(2, long_ago));
        listening
            .members
            .insert("!team:hs".into(), counted(5, long_ago));
        assert_eq!(
            listening.audience(&client, &rooms, "!dm:hs").await,
            Audience::Unknown,
            "a direct chat counted long ago may have been joined since"
        );
        assert_eq!(
            listening.audience(&client, &rooms, "!team:hs").await,
            Audience::Shared
        );
        let configured = Rooms {
            platform: Some("!platform:hs".into()),
            ..Rooms::default()
        };
        assert_eq!(
            listening
                .audience(&client, &configured, "!platform:hs")
                .await,
            Audience::Shared,
            "a configured room is shared without asking"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_room_someone_joined_is_counted_again() -> Result<(), reqwest::Error> {
        // The homeserver is unreachable: a count read again shows as Unknown,
        // a count kept shows as what it said.
        let client = unreachable()?;
        let mut listening = Listening::default();
        let rooms = Rooms::default();
        let just_now = |count| MemberCount {
            count,
            opening: None,
            read_at: Some(Instant::now()),
        };
        for (room, count) in [("!dm:hs", 2), ("!other-dm:hs", 2), ("!team:hs", 5)] {
            listening.members.insert(room.into(), just_now(count));
        }
        let changed = ["!dm:hs".to_string(), "!team:hs".to_string()];
        listening.members_changed(&changed);
        assert_eq!(
            listening.audience(&client, &rooms, "!dm:hs").await,
            Audience::Unknown,
            "a direct chat someone joined is not taken for direct on its old count"
        );
        assert_eq!(
            listening.audience(&client, &rooms, "!other-dm:hs").await,
            Audience::Direct,
            "a room no one joined keeps its count"
        );
        assert_eq!(
            listening.audience(&client, &rooms, "!team:hs").await,
            Audience::Shared,
            "a shared room's last count still says shared"
        );
        Ok(())
    }

    #[test]
    fn a_room_of_two_open_to_others_is_no_direct_chat() {
        assert_eq!(audience_of(2, None), Audience::Direct);
        assert_eq!(audience_of(1, None), Audience::Direct);
        let peekable = audience_of(2, Some(Opening::WorldReadable));
        assert_eq!(peekable, Audience::Open(Opening::WorldReadable));
        let joinable = audience_of(2, Some(Opening::Joinable));
        assert_eq!(joinable, Audience::Open(Opening::Joinable));
        assert_eq!(audience_of(3, Some(Opening::Joinable)), Audience::Shared);
    }

    #[tokio::test]
    async fn an_open_room_counted_long_ago_is_not_known() -> Result<(), reqwest::Error> {
        let client = unreachable()?;
        let mut listening = Listening::default();
        let long_ago = Instant::now()
            .checked_sub(MEMBERS_FOR * 2)
            .unwrap_or_else(Instant::now);
        let open = MemberCount {
            count: 2,
            opening: Some(Opening::Joinable),
            read_at: Some(long_ago),
        };
        listening.members.insert("!open:hs".into(), open);
        let fresh = MemberCount {
            count: 2,
            opening: Some(Opening::WorldReadable),
            read_at: Some(Instant::now()),
        };
        listening.members.insert("!peek:hs".into(), fresh);
        let rooms = Rooms::default();
        assert_eq!(
            listening.audience(&client, &rooms, "!open:hs").await,
            Audience::Unknown,
            "others may have joined it since"
        );
        assert_eq!(
            listening.audience(&client, &rooms, "!peek:hs").await,
            Audience::Open(Opening::WorldReadable)
        );
        Ok(())
    }

    #[test]
    fn an_open_room_is_told_why_once_until_it_was_private() {
        let mut listening = Listening::default();
        let open = Audience::Open(Opening::Joinable);
        assert_eq!(listening.open_note("!a:hs", open), Some(Opening::Joinable));
        assert_eq!(listening.open_note("!a:hs", open), None, "said once");
        assert_eq!(listening.open_note("!a:hs", Audience::Unknown), None);
        assert_eq!(listening.open_note("!a:hs", open), None);
        let peekable = Audience::Open(Opening::WorldReadable);
        assert_eq!(
            listening.open_note("!b:hs", peekable),
            Some(Opening::WorldReadable),
            "each room its own"
        );
        assert_eq!(listening.open_note("!a:hs", Audience::Direct), None);
        assert_eq!(
            listening.open_note("!a:hs", open),
            Some(Opening::Joinable),
            "opened again"
        );
    }

    #[test]
    fn encrypted_messages_are_answered_once_per_room() {
        let mut listening = Listening::default();
        assert!(listening.first_encrypted("!a:hs"));
        assert!(!listening.first_encrypted("!a:hs"));
        assert!(listening.first_encrypted("!b:hs"));
    }
}
