//! Chat identity: a person links their chat account to their Slipway account once,
//! with a one-time code the portal shows them; afterwards every message they send
//! acts as them, on the chat channel, with their chat id in the audit log.

use rand::Rng;
use sha2::{Digest, Sha256};
use slipway_core::ids::UserId;
use slipway_core::validate::FieldError;

use super::{Actor, CallMeta, Caller, Channel, ServiceError, ServiceResult, record};
use crate::audit_budget::AuditBudget;
use crate::state::AppState;
use crate::storage::audit::Origin;
use crate::storage::chat::ChatLink;
use crate::storage::{self, now_millis};

/// How long a link code stays good: long enough to switch to the chat window.
pub const CODE_LIFETIME_MILLIS: i64 = 15 * 60 * 1000;
/// No 0/O or 1/I: people type the code from the screen.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_CHARS: usize = 12;
/// A chat id longer than this is not one Matrix issues (its limit is 255 bytes).
const MAX_CHAT_USER: usize = 255;

/// A freshly issued link code, shown once.
#[derive(Debug, Clone)]
pub struct LinkCode {
    /// `ABCD-EFGH-JKLM`.
    pub code: String,
    pub expires_at: i64,
}

/// Codes are compared as typed, minus separators and case.
fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(normalise(code).as_bytes()))
}

fn new_code() -> String {
    let mut rng = rand::rng();
    let chars: Vec<char> = (0..CODE_CHARS)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    chars
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Issues a one-time code that links the caller's chat account: the code is stored
/// only as a hash and expires after [`CODE_LIFETIME_MILLIS`].
pub async fn issue_link_code(state: &AppState, caller: &Caller) -> ServiceResult<LinkCode> {
    // A code nobody could send anywhere would only be a credential lying about.
    if !chat_is_on(state) {
        return Err(ServiceError::Conflict(CHAT_OFF.into()));
    }
    let code = new_code();
    let expires_at = now_millis() + CODE_LIFETIME_MILLIS;
    let mut tx = state.db.write().await?;
    storage::chat::insert_code(&mut tx, caller.id, &code_hash(&code), expires_at).await?;
    record(
        &mut tx,
        state.db.engine,
        &Actor::User(caller.clone()),
        "chat.link_code_issued",
        ("user", caller.id.to_string()),
        None,
        String::new(),
    )
    .await?;
    tx.commit().await?;
    Ok(LinkCode { code, expires_at })
}

/// What the portal says where a chat link code would be offered.
pub const CHAT_OFF: &str =
    "ChatOps is not set up on this server: there is no chat bot to link an account to";

/// Whether this server's settings name a chat homeserver for the bot.
pub fn chat_is_on(state: &AppState) -> bool {
    state.settings.chat.is_some()
}

/// The chat account linked to the caller, if any.
pub async fn linked_account(state: &AppState, caller: &Caller) -> ServiceResult<Option<String>> {
    let mut conn = state.db.pool.acquire().await?;
    let link = storage::chat::link_of_user(&mut conn, caller.id).await?;
    Ok(link.map(|l| l.chat_user))
}

/// Ends the caller's chat link: from now on the chat account is a stranger to
/// the bot (a lost or taken-over chat account stops acting as them at once).
pub async fn unlink(state: &AppState, caller: &Caller) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    let Some(chat_user) = storage::chat::unlink_user(&mut tx, caller.id).await? else {
        return Err(ServiceError::NotFound(format!(
            "a chat account linked to {}",
            caller.username
        )));
    };
    record(
        &mut tx,
        state.db.engine,
        &Actor::User(caller.clone()),
        "chat.unlinked",
        ("user", caller.id.to_string()),
        None,
        chat_user,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The caller a linked chat account acts as: the chat channel, the chat id as the
/// client address and the chat event as the trace. `None` for an unlinked account.
pub async fn caller_for(
    state: &AppState,
    chat_user: &str,
    event_id: &str,
) -> ServiceResult<Option<Caller>> {
    let mut conn = state.db.pool.acquire().await?;
    let Some(link) = storage::chat::link_of_chat_user(&mut conn, chat_user).await? else {
        return Ok(None);
    };
    let user = match super::auth::acting_user(state, &mut conn, link.user_id).await {
        Ok(user) => user,
        Err(ServiceError::Unauthenticated) => return Ok(None),
        Err(refused) => return Err(refused),
    };
    Ok(Some(Caller::new(
        user,
        Channel::Chat,
        chat_meta(chat_user, event_id),
    )))
}

fn chat_meta(chat_user: &str, event_id: &str) -> CallMeta {
    // The homeserver is the client; the person's address is not known here.
    CallMeta {
        trace_id: Some(event_id.to_string()),
        client_addr: None,
        channel_user: Some(chat_user.to_string()),
    }
}

/// Whether `code` has the shape of a link code (however it is typed): words
/// after `link` that do not are not one.
pub fn looks_like_code(code: &str) -> bool {
    normalise(code).len() == CODE_CHARS
}

/// Who acts in a link attempt or a code used up, before any account is known:
/// the link rule, within the chat message (its sender's chat id and event id).
fn link_rule(chat_user: &str, event_id: &str) -> Actor {
    Actor::PolicyInCall {
        rule: "chat-link".into(),
        origin: Origin {
            channel: Channel::Chat.as_str().to_string(),
            trace_id: Some(event_id.to_string()),
            channel_user: Some(chat_user.to_string()),
            ..Origin::default()
        },
    }
}

/// Uses up a link code `chat_user` said where others read it (a shared room):
/// anyone there could send it to the bot from their own chat account and act as
/// its owner. Answers whether it was a code that could still link; one that
/// could is audited against its owner's account.
pub async fn burn_code(
    state: &AppState,
    code: &str,
    chat_user: &str,
    event_id: &str,
) -> ServiceResult<bool> {
    if !looks_like_code(code) {
        return Ok(false);
    }
    burn_codes(state, &[code.to_string()], chat_user, event_id).await
}

/// The most code-shaped words of one message that are looked up: far more
/// than any message a person writes holds, and a bound on the work a message
/// built of nothing else asks for.
const MAX_CODES_IN_MESSAGE: usize = 4096;

/// Every word of `text` that has a link code's shape, as [`normalise`] reads
/// it: twelve characters of the code's alphabet, in one run of letters and
/// digits or over runs that follow each other (`ABCD-EFGH-JKLM`, `abcd efgh
/// jklm`, `ABCDEFGHJKLM`), and no part of a longer word. Each once.
pub fn codes_in(text: &str) -> Vec<String> {
    let runs: Vec<&str> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| !run.is_empty())
        .collect();
    let mut found = std::collections::BTreeSet::new();
    for start in 0..runs.len() {
        if found.len() == MAX_CODES_IN_MESSAGE {
            tracing::warn!("a chat message holds more code-shaped words than are looked up");
            break;
        }
        // Runs are added whole, so a candidate starts and ends where words do;
        // one passes twelve characters at the twelfth run at the latest.
        let mut candidate = String::new();
        for run in &runs[start..] {
            candidate.push_str(run);
            if candidate.len() >= CODE_CHARS {
                break;
            }
        }
        let candidate = candidate.to_ascii_uppercase();
        if candidate.len() == CODE_CHARS && candidate.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
            found.insert(candidate);
        }
    }
    found.into_iter().collect()
}

/// Uses up every link code in `codes` (as [`codes_in`] finds them in what
/// `chat_user` said where others read it: a shared room, or one open to people
/// not in it yet), wherever in the message it stood: a bare code pasted into a
/// sentence is read as well as `link <code>`. Answers whether any of them could
/// still link; each that could is audited against its owner's account.
///
/// Ordinary chatter has code-shaped words ("we need the new db" reads as
/// `WENEEDTHENEW`), so the hashes are looked up with a read first, and a write
/// transaction is opened only for those of a live code: a shared room's talk
/// writes nothing. The update in it stays the judge (a code used or expired
/// between the two is not used up twice).
pub async fn burn_codes(
    state: &AppState,
    codes: &[String],
    chat_user: &str,
    event_id: &str,
) -> ServiceResult<bool> {
    let mut hashes: Vec<String> = codes.iter().map(|code| code_hash(code)).collect();
    hashes.sort();
    hashes.dedup();
    if hashes.is_empty() {
        return Ok(false);
    }
    let live = {
        let mut conn = state.db.pool.acquire().await?;
        storage::chat::live_codes(&mut conn, &hashes).await?
    };
    if live.is_empty() {
        return Ok(false);
    }
    let mut tx = state.db.write().await?;
    let owners = storage::chat::consume_codes(&mut tx, &live).await?;
    for owner in &owners {
        record(
            &mut tx,
            state.db.engine,
            &link_rule(chat_user, event_id),
            "chat.link_code_burned",
            ("user", owner.to_string()),
            None,
            "a link code was said where others read it; it is used up".into(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(!owners.is_empty())
}

/// Refused link attempts audited per minute at most: anyone the homeserver lets
/// write to the bot can send codes, from as many accounts as they like, and each
/// refusal would otherwise add a row to an audit trail that is never pruned.
/// Beyond the budget they are only logged.
const REFUSALS_AUDITED_PER_MINUTE: u32 = 60;

static REFUSALS_AUDITED: AuditBudget = AuditBudget::per_minute(REFUSALS_AUDITED_PER_MINUTE);

/// Audits a refused link attempt in `tx`, within this minute's budget.
async fn audit_refusal(
    state: &AppState,
    tx: &mut sqlx::AnyConnection,
    (chat_user, event_id): (&str, &str),
    account: Option<UserId>,
    why: &str,
) -> ServiceResult<()> {
    if !REFUSALS_AUDITED.take(now_millis()) {
        tracing::warn!(
            chat_user,
            event_id,
            why,
            "more refused chat links this minute than are audited; this one is only logged"
        );
        return Ok(());
    }
    let account = account.map(|id| id.to_string()).unwrap_or_default();
    record(
        tx,
        state.db.engine,
        &link_rule(chat_user, event_id),
        "chat.link_refused",
        ("user", account),
        None,
        why.to_string(),
    )
    .await
}

/// Links `chat_user` to the account that issued `code`, which is used up. `room_id`
/// is where the bot will tell them about their requests.
pub async fn link(
    state: &AppState,
    chat_user: &str,
    room_id: &str,
    code: &str,
    event_id: &str,
) -> ServiceResult<Caller> {
    if chat_user.is_empty() || chat_user.len() > MAX_CHAT_USER {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "chat_user",
            format!("must be 1 to {MAX_CHAT_USER} bytes"),
        )]));
    }
    let unknown = || {
        ServiceError::Invalid(vec![FieldError::new(
            "code",
            "is unknown, expired or already used; get a new one on your account page",
        )])
    };
    let attempt = (chat_user, event_id);
    let mut tx = state.db.write().await?;
    let owner = match looks_like_code(code) {
        true => storage::chat::consume_code(&mut tx, &code_hash(code)).await?,
        false => None,
    };
    let Some(user_id) = owner else {
        let why = "the code is unknown, expired or already used";
        audit_refusal(state, &mut tx, attempt, None, why).await?;
        tx.commit().await?;
        return Err(unknown());
    };
    // The account as it may act now: a disabled one links nothing. Its code is
    // not used up (the attempt is undone): an account waiting for its identity
    // provider's confirmation links with it once confirmed.
    let user = match super::auth::acting_user(state, &mut tx, user_id).await {
        Ok(user) => user,
        Err(refused @ (ServiceError::Forbidden(_) | ServiceError::Unauthenticated)) => {
            tx.rollback().await?;
            let mut tx = state.db.write().await?;
            let why = match &refused {
                ServiceError::Forbidden(why) => format!("the code's account may not act: {why}"),
                _ => "the code's account no longer exists".to_string(),
            };
            audit_refusal(state, &mut tx, attempt, Some(user_id), &why).await?;
            tx.commit().await?;
            return Err(refused);
        }
        Err(error) => return Err(error),
    };
    storage::chat::link(
        &mut tx,
        &ChatLink {
            chat_user: chat_user.to_string(),
            user_id,
            room_id: room_id.to_string(),
        },
    )
    .await?;
    let caller = Caller::new(user, Channel::Chat, chat_meta(chat_user, event_id));
    record(
        &mut tx,
        state.db.engine,
        &Actor::User(caller.clone()),
        "chat.linked",
        ("user", user_id.to_string()),
        Some(chat_user.to_string()),
        format!("chat account {chat_user} linked"),
    )
    .await?;
    tx.commit().await?;
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_from_the_unambiguous_alphabet() {
        let code = new_code();
        assert_eq!(code.len(), CODE_CHARS + 2);
        assert_eq!(normalise(&code).len(), CODE_CHARS);
        assert!(normalise(&code).bytes().all(|b| CODE_ALPHABET.contains(&b)));
    }

    #[test]
    fn every_code_shaped_word_of_a_message_is_found() {
        let found = |text: &str| codes_in(text);
        assert_eq!(found("ABCD-EFGH-JKLM"), ["ABCDEFGHJKLM"]);
        assert_eq!(
            found("here is mine: abcd efgh jklm, thanks!"),
            ["ABCDEFGHJKLM"]
        );
        assert_eq!(found("link AB-CDEF-GHJK-LM now"), ["ABCDEFGHJKLM"]);
        assert_eq!(found("code\u{2028}ABCDEFGHJKLM."), ["ABCDEFGHJKLM"]);
        // Part of a longer word, or off the alphabet (0, 1, I, O), is no code.
        assert!(found("XABCDEFGHJKLM ABCDEFGHJKL0 ABCD-EFGH-IJKL").is_empty());
        assert!(found("unrelated chatter about the deploy").is_empty());
        assert!(found("").is_empty());
        let twice = found("ABCD-EFGH-JKLM or abcdefghjklm");
        assert_eq!(twice, ["ABCDEFGHJKLM"], "each once");
    }

    #[test]
    fn a_message_of_nothing_but_codes_is_looked_up_within_a_bound() {
        let many = (0..20_000)
            .map(|_| new_code())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(codes_in(&many).len(), MAX_CODES_IN_MESSAGE);
    }

    #[test]
    fn a_code_matches_however_it_is_typed() {
        assert_eq!(code_hash("ABCD-EFGH-JKLM"), code_hash(" abcd efgh jklm "));
        assert_ne!(code_hash("ABCD-EFGH-JKLM"), code_hash("ABCD-EFGH-JKLN"));
    }
}
