//! ChatOps: linked chat accounts, one-time link codes, and the adapter's cursors.

use slipway_core::ids::{RequestId, UserId};
use sqlx::{AnyConnection, Row};

use super::{StorageError, now_millis};

/// A chat account linked to a Slipway account.
pub struct ChatLink {
    pub chat_user: String,
    pub user_id: UserId,
    pub room_id: String,
}

pub async fn insert_code(
    conn: &mut AnyConnection,
    user: UserId,
    code_hash: &str,
    expires_at: i64,
) -> Result<(), StorageError> {
    // A new code replaces the user's earlier one, used or not: one code at a
    // time may link an account. One statement on the unique user index, so two
    // calls at the same instant leave one row on either engine.
    sqlx::query(
        "INSERT INTO chat_link_codes (code_hash, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash, \
         created_at = excluded.created_at, expires_at = excluded.expires_at, used_at = NULL",
    )
    .bind(code_hash)
    .bind(user.0)
    .bind(now_millis())
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks an unexpired, unused code used and returns whose it was; `None` for a code
/// that is unknown, expired or already used (the caller need not know which).
pub async fn consume_code(
    conn: &mut AnyConnection,
    code_hash: &str,
) -> Result<Option<UserId>, StorageError> {
    let now = now_millis();
    let user: Option<i64> = sqlx::query_scalar(
        "UPDATE chat_link_codes SET used_at = $1 \
         WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
    )
    .bind(now)
    .bind(code_hash)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(user.map(UserId))
}

/// How many hashes or event ids one statement names: well within either
/// engine's limit on a statement's parameters.
const CODES_PER_STATEMENT: usize = 200;

/// `$from, $from+1, …` for `count` parameters.
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which of `code_hashes` are of codes that could still link (unused and
/// unexpired): a read, so that a message without a live code (the chatter of a
/// shared room, whose words may have a code's shape) writes nothing.
pub async fn live_codes(
    conn: &mut AnyConnection,
    code_hashes: &[String],
) -> Result<Vec<String>, StorageError> {
    let now = now_millis();
    let mut live = Vec::new();
    for chunk in code_hashes.chunks(CODES_PER_STATEMENT) {
        let sql = format!(
            "SELECT code_hash FROM chat_link_codes \
             WHERE used_at IS NULL AND expires_at > $1 AND code_hash IN ({})",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql).bind(now);
        for hash in chunk {
            query = query.bind(hash);
        }
        live.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(live)
}

/// [`consume_code`] for many hashes at once (every code-shaped word of a
/// message): whose codes were used up, one entry per code.
pub async fn consume_codes(
    conn: &mut AnyConnection,
    code_hashes: &[String],
) -> Result<Vec<UserId>, StorageError> {
    let now = now_millis();
    let mut owners = Vec::new();
    for chunk in code_hashes.chunks(CODES_PER_STATEMENT) {
        let sql = format!(
            "UPDATE chat_link_codes SET used_at = $1 \
             WHERE used_at IS NULL AND expires_at > $1 AND code_hash IN ({}) RETURNING user_id",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql).bind(now);
        for hash in chunk {
            query = query.bind(hash);
        }
        owners.extend(query.fetch_all(&mut *conn).await?.into_iter().map(UserId));
    }
    Ok(owners)
}

/// Links `chat_user` to `user`, replacing any earlier link of either.
pub async fn link(conn: &mut AnyConnection, link: &ChatLink) -> Result<(), StorageError> {
    sqlx::query("DELETE FROM chat_links WHERE chat_user = $1 OR user_id = $2")
        .bind(&link.chat_user)
        .bind(link.user_id.0)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO chat_links (chat_user, user_id, room_id, linked_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&link.chat_user)
    .bind(link.user_id.0)
    .bind(&link.room_id)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn link_from_row(row: &sqlx::any::AnyRow) -> Result<ChatLink, StorageError> {
    Ok(ChatLink {
        chat_user: row.try_get("chat_user")?,
        user_id: UserId(row.try_get("user_id")?),
        room_id: row.try_get("room_id")?,
    })
}

pub async fn link_of_chat_user(
    conn: &mut AnyConnection,
    chat_user: &str,
) -> Result<Option<ChatLink>, StorageError> {
    let row =
        sqlx::query("SELECT chat_user, user_id, room_id FROM chat_links WHERE chat_user = $1")
            .bind(chat_user)
            .fetch_optional(&mut *conn)
            .await?;
    row.as_ref().map(link_from_row).transpose()
}

pub async fn link_of_user(
    conn: &mut AnyConnection,
    user: UserId,
) -> Result<Option<ChatLink>, StorageError> {
    let row = sqlx::query("SELECT chat_user, user_id, room_id FROM chat_links WHERE user_id = $1")
        .bind(user.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(link_from_row).transpose()
}

/// Every linked chat account (their servers are checked against the allowed
/// ones at the bot's start).
pub async fn linked_chat_users(conn: &mut AnyConnection) -> Result<Vec<String>, StorageError> {
    Ok(sqlx::query_scalar("SELECT chat_user FROM chat_links")
        .fetch_all(&mut *conn)
        .await?)
}

/// Removes the user's chat link; answers the chat account it linked, if any.
pub async fn unlink_user(
    conn: &mut AnyConnection,
    user: UserId,
) -> Result<Option<String>, StorageError> {
    // A code given out earlier and not used yet would link a chat account anew.
    sqlx::query("DELETE FROM chat_link_codes WHERE user_id = $1")
        .bind(user.0)
        .execute(&mut *conn)
        .await?;
    let removed: Option<String> =
        sqlx::query_scalar("DELETE FROM chat_links WHERE user_id = $1 RETURNING chat_user")
            .bind(user.0)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(removed)
}

pub async fn cursor(conn: &mut AnyConnection, name: &str) -> Result<Option<String>, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT value FROM chat_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Stores a cursor as it is (the sync token, which only the homeserver can order).
pub async fn set_cursor(
    conn: &mut AnyConnection,
    name: &str,
    value: &str,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO chat_cursors (name, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(value)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores a numeric cursor (a position in the audit log) unless it would move
/// back: a writer that read an older position (a notifier whose term has ended)
/// cannot undo a newer one's progress. Compared as numbers, not as text: by
/// length, then by digits (a position is written without leading zeros); a
/// stored value that is not digits is replaced (a CAST of it would fail).
pub async fn advance_cursor(
    conn: &mut AnyConnection,
    name: &str,
    position: i64,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO chat_cursors (name, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at \
         WHERE trim(chat_cursors.value, '0123456789') <> '' \
            OR length(chat_cursors.value) < length(excluded.value) \
            OR (length(chat_cursors.value) = length(excluded.value) AND chat_cursors.value < excluded.value)",
    )
    .bind(name)
    .bind(position.to_string())
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Claims an event for handling; `false` when it was handled before.
pub async fn claim_event(conn: &mut AnyConnection, event_id: &str) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "INSERT INTO chat_events (event_id, handled_at) VALUES ($1, $2) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims many events at once (those the pace held back, which are never run):
/// one statement per [`CODES_PER_STATEMENT`] events, not a transaction each.
pub async fn claim_events(
    conn: &mut AnyConnection,
    event_ids: &[String],
) -> Result<(), StorageError> {
    let now = now_millis();
    for chunk in event_ids.chunks(CODES_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|n| format!("(${}, $1)", n + 2))
            .collect();
        let sql = format!(
            "INSERT INTO chat_events (event_id, handled_at) VALUES {} \
             ON CONFLICT (event_id) DO NOTHING",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(now);
        for event_id in chunk {
            query = query.bind(event_id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Which of `event_ids` were claimed before (a read).
pub async fn handled_events(
    conn: &mut AnyConnection,
    event_ids: &[&str],
) -> Result<std::collections::HashSet<String>, StorageError> {
    let mut handled = std::collections::HashSet::new();
    for chunk in event_ids.chunks(CODES_PER_STATEMENT) {
        let sql = format!(
            "SELECT event_id FROM chat_events WHERE event_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for event_id in chunk {
            query = query.bind(*event_id);
        }
        handled.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(handled)
}

/// Forgets handled events older than `before`: the sync token has long passed them.
pub async fn forget_events(conn: &mut AnyConnection, before: i64) -> Result<u64, StorageError> {
    let done = sqlx::query("DELETE FROM chat_events WHERE handled_at < $1")
        .bind(before)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Records that `room` was shown `revision` of `request` for review, with its
/// change set's hash (a later notice in the same room replaces it).
pub async fn set_review_notice(
    conn: &mut AnyConnection,
    (request, room): (RequestId, &str),
    revision: i64,
    change_set_hash: &str,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO chat_review_notices (request_id, room_id, revision, change_set_hash, posted_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id, room_id) DO UPDATE SET \
         revision = excluded.revision, change_set_hash = excluded.change_set_hash, \
         posted_at = excluded.posted_at",
    )
    .bind(request.0)
    .bind(room)
    .bind(revision)
    .bind(change_set_hash)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The revision and change-set hash the last review notice of `request` in
/// `room` showed; none where that room was shown none.
pub async fn review_notice(
    conn: &mut AnyConnection,
    (request, room): (RequestId, &str),
) -> Result<Option<(i64, String)>, StorageError> {
    let row = sqlx::query(
        "SELECT revision, change_set_hash FROM chat_review_notices \
         WHERE request_id = $1 AND room_id = $2",
    )
    .bind(request.0)
    .bind(room)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok((r.try_get("revision")?, r.try_get("change_set_hash")?)))
        .transpose()
}

/// An audit event the notifier follows.
pub struct StateChange {
    pub position: i64,
    pub request_id: RequestId,
    pub to_state: String,
    pub actor: String,
    pub detail: String,
}

/// Sealed request transitions after `position`, in chain order (the order they
/// committed in), at most `limit`.
pub async fn state_changes_after(
    conn: &mut AnyConnection,
    position: i64,
    limit: i64,
) -> Result<Vec<StateChange>, StorageError> {
    // Walked along `audit_position` from the cursor: `target_kind || ''` keeps a
    // planner without statistics (SQLite's, before `PRAGMA optimize` has run) off
    // `audit_target`, which would read every request event ever written and sort
    // them, every poll.
    let rows = sqlx::query(
        "SELECT position, target_id, after_value, actor, detail FROM audit_events \
         WHERE position > $1 AND position IS NOT NULL AND target_kind || '' = 'request' \
           AND before_value IS NOT NULL AND after_value IS NOT NULL \
         ORDER BY position LIMIT $2",
    )
    .bind(position)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let target: String = row.try_get("target_id")?;
        let Ok(id) = target.parse::<i64>() else {
            continue;
        };
        changes.push(StateChange {
            position: row.try_get("position")?,
            request_id: RequestId(id),
            to_state: row.try_get("after_value")?,
            actor: row.try_get("actor")?,
            detail: row.try_get("detail")?,
        });
    }
    Ok(changes)
}

/// The newest sealed position, where a notifier without a cursor starts.
pub async fn last_position(conn: &mut AnyConnection) -> Result<i64, StorageError> {
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM audit_events WHERE position IS NOT NULL \
         ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(last.unwrap_or(0))
}
