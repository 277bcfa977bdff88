//! The append-only, hash-chained audit log. Each event's hash covers the previous
//! event's hash and its own content, so editing or deleting a row breaks the chain
//! from that row on, and [`verify_chain`] names the first broken row.

use sha2::{Digest, Sha256};
use slipway_core::ids::UserId;
use slipway_core::views::{AuditEntry, AuditFilter};
use sqlx::{AnyConnection, Row};

use super::{Engine, StorageError, Window, format_millis, now_millis};

const GENESIS: &str = "genesis";

/// Where a call came from; `None` fields are unknown (an event from before they
/// were recorded, or a caller that has no such thing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub channel: String,
    pub client_addr: Option<String>,
    pub trace_id: Option<String>,
    pub token_id: Option<i64>,
}

pub struct NewEvent<'a> {
    pub origin: &'a Origin,
    pub actor_id: Option<UserId>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub detail: String,
}

#[derive(serde::Serialize)]
struct HashedContent<'a> {
    at: i64,
    actor: &'a str,
    action: &'a str,
    target_kind: &'a str,
    target_id: &'a str,
    before: Option<&'a str>,
    after: Option<&'a str>,
    detail: &'a str,
    // Absent on events written before they were recorded, so those hash as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_addr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<i64>,
}

fn chain_hash(prev_hash: &str, content: &HashedContent<'_>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(super::to_json(content).as_bytes());
    hex::encode(hasher.finalize())
}

/// Appends one event inside the caller's transaction, so the event commits or
/// rolls back with the change it records.
pub async fn append(
    conn: &mut AnyConnection,
    engine: Engine,
    event: &NewEvent<'_>,
) -> Result<(), StorageError> {
    if engine == Engine::Postgres {
        // Serialises appenders across replicas so the chain never forks.
        sqlx::query("SELECT pg_advisory_xact_lock(7105001)")
            .execute(&mut *conn)
            .await?;
    }
    let prev_hash: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let prev_hash = prev_hash.unwrap_or_else(|| GENESIS.to_string());
    let at = now_millis();
    let content = HashedContent {
        at,
        actor: event.actor,
        action: event.action,
        target_kind: event.target_kind,
        target_id: &event.target_id,
        before: event.before.as_deref(),
        after: event.after.as_deref(),
        detail: &event.detail,
        channel: Some(&event.origin.channel),
        client_addr: event.origin.client_addr.as_deref(),
        trace_id: event.origin.trace_id.as_deref(),
        token_id: event.origin.token_id,
    };
    let hash = chain_hash(&prev_hash, &content);
    sqlx::query(
        "INSERT INTO audit_events (at, actor_id, actor, action, target_kind, target_id, \
         before_value, after_value, detail, prev_hash, hash, channel, client_addr, trace_id, \
         token_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(at)
    .bind(event.actor_id.map(|id| id.0))
    .bind(event.actor)
    .bind(event.action)
    .bind(event.target_kind)
    .bind(&event.target_id)
    .bind(event.before.as_deref())
    .bind(event.after.as_deref())
    .bind(&event.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .bind(&event.origin.channel)
    .bind(event.origin.client_addr.as_deref())
    .bind(event.origin.trace_id.as_deref())
    .bind(event.origin.token_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

struct StoredEvent {
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    target_kind: String,
    target_id: String,
    before: Option<String>,
    after: Option<String>,
    detail: String,
    prev_hash: String,
    hash: String,
    channel: Option<String>,
    client_addr: Option<String>,
    trace_id: Option<String>,
    token_id: Option<i64>,
}

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<StoredEvent, StorageError> {
    Ok(StoredEvent {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target_kind: row.try_get("target_kind")?,
        target_id: row.try_get("target_id")?,
        before: row.try_get("before_value")?,
        after: row.try_get("after_value")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        channel: row.try_get("channel")?,
        client_addr: row.try_get("client_addr")?,
        trace_id: row.try_get("trace_id")?,
        token_id: row.try_get("token_id")?,
    })
}

impl StoredEvent {
    fn into_entry(self) -> AuditEntry {
        AuditEntry {
            seq: self.seq,
            at: format_millis(self.at),
            actor: self.actor,
            action: self.action,
            target: format!("{}:{}", self.target_kind, self.target_id),
            before: self.before,
            after: self.after,
            detail: self.detail,
            hash: self.hash,
            channel: self.channel,
            client_addr: self.client_addr,
            trace_id: self.trace_id,
        }
    }
}

const EVENT_COLUMNS: &str = "seq, at, actor, action, target_kind, target_id, before_value, \
                             after_value, detail, prev_hash, hash, channel, client_addr, \
                             trace_id, token_id";

/// Newest first. `target` filters on "kind:id" or just "kind".
pub async fn list(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
    window: Window,
) -> Result<Vec<AuditEntry>, StorageError> {
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let actor = blank(&filter.actor);
    let action = blank(&filter.action);
    let (kind, id) = match blank(&filter.target) {
        Some(target) => match target.split_once(':') {
            Some((k, i)) => (Some(k.to_string()), Some(i.to_string())),
            None => (Some(target), None),
        },
        None => (None, None),
    };
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events \
         WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
           AND ($3 IS NULL OR target_kind = $3) AND ($4 IS NULL OR target_id = $4) \
           AND ($5 IS NULL OR seq < $5) \
         ORDER BY seq DESC LIMIT $6"
    ))
    .bind(actor)
    .bind(action)
    .bind(kind)
    .bind(id)
    .bind(window.before)
    .bind(window.limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| event_from_row(r).map(StoredEvent::into_entry))
        .collect()
}

/// Oldest first: the history of one target, for timelines.
pub async fn for_target(
    conn: &mut AnyConnection,
    target_kind: &str,
    target_id: &str,
) -> Result<Vec<AuditEntry>, StorageError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE target_kind = $1 AND target_id = $2 \
         ORDER BY seq"
    ))
    .bind(target_kind)
    .bind(target_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| event_from_row(r).map(StoredEvent::into_entry))
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
pub enum ChainStatus {
    Intact { events: i64 },
    Broken { seq: i64, reason: String },
}

/// Recomputes every hash from the start.
pub async fn verify_chain(conn: &mut AnyConnection) -> Result<ChainStatus, StorageError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events ORDER BY seq"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for row in &rows {
        let e = event_from_row(row)?;
        if e.prev_hash != prev {
            return Ok(ChainStatus::Broken {
                seq: e.seq,
                reason: "does not follow the previous event (a row was removed or reordered)"
                    .into(),
            });
        }
        let content = HashedContent {
            at: e.at,
            actor: &e.actor,
            action: &e.action,
            target_kind: &e.target_kind,
            target_id: &e.target_id,
            before: e.before.as_deref(),
            after: e.after.as_deref(),
            detail: &e.detail,
            channel: e.channel.as_deref(),
            client_addr: e.client_addr.as_deref(),
            trace_id: e.trace_id.as_deref(),
            token_id: e.token_id,
        };
        if chain_hash(&prev, &content) != e.hash {
            return Ok(ChainStatus::Broken {
                seq: e.seq,
                reason: "content does not match its hash (the row was edited)".into(),
            });
        }
        prev = e.hash;
        count += 1;
    }
    Ok(ChainStatus::Intact { events: count })
}
