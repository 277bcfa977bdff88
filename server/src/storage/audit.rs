//! The append-only, hash-chained audit log.
//!
//! Writing and chaining are two steps. [`append`] only inserts the event, inside the
//! caller's transaction, so it commits or rolls back with the change it records and
//! takes no lock and reads nothing. [`seal`] then gives committed events, in order,
//! their place in the chain (`position`, 1, 2, 3, …), the previous event's hash and
//! their own: `sha256(prev_hash + "\n" + json(content))`. Sealers take turns (a
//! write transaction; on PostgreSQL an advisory lock only sealers take), so the chain
//! never forks, however many replicas write. The database refuses every update but
//! that one and every delete; [`verify`] streams the chain in place order and names
//! the first event that was edited, removed or reordered, or left unsealed.

use futures_util::TryStreamExt as _;
use sha2::{Digest, Sha256};
use slipway_core::ids::UserId;
use slipway_core::views::{AuditEntry, AuditFilter};
use sqlx::{AnyConnection, Row};

use super::{Engine, StorageError, Window, format_millis, now_millis};

const GENESIS: &str = "genesis";

/// Taken by sealers only (never by request writers), inside their transaction.
const SEAL_LOCK: i64 = 7105001;

/// An unsealed event this much older than the newest sealed one was left out.
pub const UNSEALED_GRACE_MILLIS: i64 = 5 * 60 * 1000;

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

/// Feeds serialised JSON straight into the digest, without an intermediate string.
struct DigestWriter<'a>(&'a mut Sha256);

impl std::io::Write for DigestWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `sha256(prev_hash + "\n" + json(content))` as 64 lower-case hex digits.
fn chain_hash_hex(prev_hash: &str, content: &HashedContent<'_>) -> [u8; 64] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    // Serialising our own plain struct into a digest cannot fail.
    let _ = serde_json::to_writer(DigestWriter(&mut hasher), content);
    let mut hex_digits = [0u8; 64];
    // 32 bytes always fit 64 digits.
    let _ = hex::encode_to_slice(hasher.finalize(), &mut hex_digits);
    hex_digits
}

fn chain_hash(prev_hash: &str, content: &HashedContent<'_>) -> String {
    String::from_utf8_lossy(&chain_hash_hex(prev_hash, content)).into_owned()
}

/// Appends one event inside the caller's transaction, so the event commits or
/// rolls back with the change it records. No lock and no read: its place in the
/// chain and its hash come later, from [`seal`].
pub async fn append(
    conn: &mut AnyConnection,
    _engine: Engine,
    event: &NewEvent<'_>,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO audit_events (at, actor_id, actor, action, target_kind, target_id, \
         before_value, after_value, detail, channel, client_addr, trace_id, token_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(now_millis())
    .bind(event.actor_id.map(|id| id.0))
    .bind(event.actor)
    .bind(event.action)
    .bind(event.target_kind)
    .bind(&event.target_id)
    .bind(event.before.as_deref())
    .bind(event.after.as_deref())
    .bind(&event.detail)
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
    hash: Option<String>,
    channel: Option<String>,
    client_addr: Option<String>,
    trace_id: Option<String>,
    token_id: Option<i64>,
    position: Option<i64>,
}

const EVENT_COLUMNS: &str = "seq, at, actor, action, target_kind, target_id, before_value, \
                             after_value, detail, prev_hash, hash, channel, client_addr, \
                             trace_id, token_id, position";

/// One row as verify reads it: borrowed from the row, nothing copied.
struct EventRef<'r> {
    seq: i64,
    at: i64,
    actor: &'r str,
    action: &'r str,
    target_kind: &'r str,
    target_id: &'r str,
    before: Option<&'r str>,
    after: Option<&'r str>,
    detail: &'r str,
    prev_hash: Option<&'r str>,
    hash: Option<&'r str>,
    channel: Option<&'r str>,
    client_addr: Option<&'r str>,
    trace_id: Option<&'r str>,
    token_id: Option<i64>,
    position: Option<i64>,
}

impl EventRef<'_> {
    fn content(&self) -> HashedContent<'_> {
        HashedContent {
            at: self.at,
            actor: self.actor,
            action: self.action,
            target_kind: self.target_kind,
            target_id: self.target_id,
            before: self.before,
            after: self.after,
            detail: self.detail,
            channel: self.channel,
            client_addr: self.client_addr,
            trace_id: self.trace_id,
            token_id: self.token_id,
        }
    }
}

// By index, in EVENT_COLUMNS order: verify reads a million of these.
fn event_ref(row: &sqlx::any::AnyRow) -> Result<EventRef<'_>, StorageError> {
    Ok(EventRef {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        target_kind: row.try_get(4)?,
        target_id: row.try_get(5)?,
        before: row.try_get(6)?,
        after: row.try_get(7)?,
        detail: row.try_get(8)?,
        prev_hash: row.try_get(9)?,
        hash: row.try_get(10)?,
        channel: row.try_get(11)?,
        client_addr: row.try_get(12)?,
        trace_id: row.try_get(13)?,
        token_id: row.try_get(14)?,
        position: row.try_get(15)?,
    })
}

// By index, in EVENT_COLUMNS order: verify reads a million of these.
fn event_from_row(row: &sqlx::any::AnyRow) -> Result<StoredEvent, StorageError> {
    Ok(StoredEvent {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        target_kind: row.try_get(4)?,
        target_id: row.try_get(5)?,
        before: row.try_get(6)?,
        after: row.try_get(7)?,
        detail: row.try_get(8)?,
        hash: row.try_get(10)?,
        channel: row.try_get(11)?,
        client_addr: row.try_get(12)?,
        trace_id: row.try_get(13)?,
        token_id: row.try_get(14)?,
        position: row.try_get(15)?,
    })
}

impl StoredEvent {
    fn content(&self) -> HashedContent<'_> {
        HashedContent {
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            target_kind: &self.target_kind,
            target_id: &self.target_id,
            before: self.before.as_deref(),
            after: self.after.as_deref(),
            detail: &self.detail,
            channel: self.channel.as_deref(),
            client_addr: self.client_addr.as_deref(),
            trace_id: self.trace_id.as_deref(),
            token_id: self.token_id,
        }
    }

    fn into_entry(self) -> AuditEntry {
        AuditEntry {
            seq: self.seq,
            position: self.position,
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

fn blank(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Newest first. `target` filters on "kind:id" or just "kind". Only the filters
/// given reach the SQL, so each is served by its index in seq order.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
    window: Window,
) -> Result<Vec<AuditEntry>, StorageError> {
    let (kind, id) = match blank(&filter.target) {
        Some(target) => match target.split_once(':') {
            Some((k, i)) => (Some(k.to_string()), Some(i.to_string())),
            None => (Some(target), None),
        },
        None => (None, None),
    };
    let mut conditions = Vec::new();
    let mut values: Vec<String> = Vec::new();
    for (column, value) in [
        ("actor", blank(&filter.actor)),
        ("action", blank(&filter.action)),
        ("target_kind", kind),
        ("target_id", id),
    ] {
        if let Some(value) = value {
            values.push(value);
            conditions.push(format!("{column} = ${}", values.len()));
        }
    }
    let mut next = values.len() + 1;
    if window.before.is_some() {
        conditions.push(format!("seq < ${next}"));
        next += 1;
    }
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events {where_clause} ORDER BY seq DESC LIMIT ${next}"
    );
    let mut query = sqlx::query(&sql);
    for value in &values {
        query = query.bind(value.as_str());
    }
    if let Some(before) = window.before {
        query = query.bind(before);
    }
    let rows = query.bind(window.limit).fetch_all(&mut *conn).await?;
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

/// A place in the chain and the hash there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainPoint {
    pub position: i64,
    pub hash: String,
}

/// The newest sealed event's place and hash; none while nothing is sealed.
pub async fn head(conn: &mut AnyConnection) -> Result<Option<ChainPoint>, StorageError> {
    let row = sqlx::query(
        "SELECT position, hash FROM audit_events WHERE position IS NOT NULL \
         ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(ChainPoint {
            position: row.try_get(0)?,
            hash: row.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
        })
    })
    .transpose()
}

/// Whether some committed event still waits for its seal (an index-only probe).
pub async fn has_unsealed(conn: &mut AnyConnection) -> Result<bool, StorageError> {
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM audit_events WHERE position IS NULL LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(seq.is_some())
}

/// Seals up to `limit` committed events, oldest first, after the chain's head: each
/// gets the next place, the head's hash as its `prev_hash`, and its own hash. Run it
/// in a write transaction ([`super::Db::write`]); returns how many it sealed.
pub async fn seal(
    conn: &mut AnyConnection,
    engine: Engine,
    limit: i64,
) -> Result<u64, StorageError> {
    if engine == Engine::Postgres {
        // Sealers take turns, across replicas; request writers never wait for this.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SEAL_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    // Read under the lock, so it is the previous sealer's last word.
    let (mut position, mut prev) = match head(conn).await? {
        Some(point) => (point.position, point.hash),
        None => (0, GENESIS.to_string()),
    };
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE position IS NULL ORDER BY seq LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut sealed = Vec::with_capacity(rows.len());
    for row in &rows {
        let event = event_from_row(row)?;
        position += 1;
        let hash = chain_hash(&prev, &event.content());
        sealed.push((
            event.seq,
            position,
            std::mem::replace(&mut prev, hash.clone()),
            hash,
        ));
    }
    if sealed.is_empty() {
        return Ok(0);
    }
    // The whole batch in one statement and one parameter (a JSON array): no
    // statement per event, and no thousands of bound parameters (which SQLite looks
    // up by name, one linear scan each).
    let batch = serde_json::Value::Array(
        sealed
            .iter()
            .map(|(seq, position, prev_hash, hash)| {
                serde_json::json!({"s": seq, "p": position, "ph": prev_hash, "h": hash})
            })
            .collect(),
    )
    .to_string();
    let values = match engine {
        Engine::Postgres => {
            "jsonb_to_recordset($1::jsonb) AS v(s BIGINT, p BIGINT, ph TEXT, h TEXT)"
        }
        Engine::Sqlite => {
            "(SELECT json_extract(value, '$.s') AS s, json_extract(value, '$.p') AS p, \
              json_extract(value, '$.ph') AS ph, json_extract(value, '$.h') AS h \
              FROM json_each($1)) AS v"
        }
    };
    let done = sqlx::query(&format!(
        "UPDATE audit_events SET position = v.p, prev_hash = v.ph, hash = v.h \
         FROM {values} WHERE audit_events.seq = v.s AND audit_events.position IS NULL"
    ))
    .bind(batch)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if done != sealed.len() as u64 {
        return Err(StorageError::Corrupt(format!(
            "sealing audit events: {done} of {} rows took their place",
            sealed.len()
        )));
    }
    Ok(sealed.len() as u64)
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// `events` sealed events read and found whole.
    Intact { events: i64 },
    /// The first place where the chain is broken: `position` in the chain, `seq`
    /// the row found there (none when the row is missing).
    Broken {
        position: i64,
        seq: Option<i64>,
        reason: String,
    },
}

/// How far a verification reads and what it must find.
#[derive(Debug, Clone)]
pub struct VerifyFrom<'a> {
    /// Start after this trusted point instead of at genesis: the event there must
    /// still have that hash, and only later events are read.
    pub start: Option<&'a ChainPoint>,
    /// A trusted point the chain must reach and pass through with the same hash
    /// (the newest signed checkpoint): a chain that ends before it lost its tail.
    pub reach: Option<&'a ChainPoint>,
    /// How much older than the newest sealed event an unsealed one may be before it
    /// counts as left out of the chain.
    pub unsealed_grace_millis: i64,
}

impl Default for VerifyFrom<'_> {
    fn default() -> Self {
        VerifyFrom {
            start: None,
            reach: None,
            unsealed_grace_millis: UNSEALED_GRACE_MILLIS,
        }
    }
}

/// The outcome, and where the chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub status: ChainStatus,
    /// The last sealed event read (or the start point when none followed it).
    pub head: Option<ChainPoint>,
}

fn broken(position: i64, seq: Option<i64>, reason: String) -> ChainReport {
    ChainReport {
        status: ChainStatus::Broken {
            position,
            seq,
            reason,
        },
        head: None,
    }
}

/// Recomputes every hash from genesis (no checkpoint), streaming.
pub async fn verify_chain(conn: &mut AnyConnection) -> Result<ChainStatus, StorageError> {
    Ok(verify(conn, &VerifyFrom::default()).await?.status)
}

/// Streams the sealed events in place order (constant memory) and recomputes each
/// hash; stops at the first broken place.
pub async fn verify(
    conn: &mut AnyConnection,
    from: &VerifyFrom<'_>,
) -> Result<ChainReport, StorageError> {
    let (mut expected, mut prev) = match from.start {
        Some(start) => {
            let found: Option<(i64, Option<String>)> =
                sqlx::query_as("SELECT seq, hash FROM audit_events WHERE position = $1")
                    .bind(start.position)
                    .fetch_optional(&mut *conn)
                    .await?;
            match found {
                None => {
                    return Ok(broken(
                        start.position,
                        None,
                        "the event a signed checkpoint vouches for is missing (removed)".into(),
                    ));
                }
                Some((seq, hash)) if hash.as_deref() != Some(start.hash.as_str()) => {
                    return Ok(broken(
                        start.position,
                        Some(seq),
                        "its hash is not the one a signed checkpoint vouches for (the chain was rewritten)".into(),
                    ));
                }
                Some(_) => (start.position + 1, start.hash.clone()),
            }
        }
        None => (1, GENESIS.to_string()),
    };
    let mut events = 0i64;
    let mut newest_at = None;
    {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE position >= $1 ORDER BY position"
        );
        let mut rows = sqlx::query(&sql).bind(expected).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let e = event_ref(&row)?;
            let position = e.position.unwrap_or_default();
            if position != expected {
                return Ok(broken(
                    expected,
                    None,
                    format!(
                        "no event has this place; the next sealed one (seq {}) is at {position} (an event was removed or reordered)",
                        e.seq
                    ),
                ));
            }
            let (Some(prev_hash), Some(hash)) = (e.prev_hash, e.hash) else {
                return Ok(broken(
                    position,
                    Some(e.seq),
                    "has a place in the chain but no hash (its seal was cleared)".into(),
                ));
            };
            if prev_hash != prev {
                return Ok(broken(
                    position,
                    Some(e.seq),
                    "does not follow the previous event (a row was removed or reordered)".into(),
                ));
            }
            if chain_hash_hex(&prev, &e.content()) != hash.as_bytes() {
                return Ok(broken(
                    position,
                    Some(e.seq),
                    "content does not match its hash (the row was edited)".into(),
                ));
            }
            if let Some(reach) = from.reach
                && reach.position == position
                && reach.hash != hash
            {
                return Ok(broken(
                    position,
                    Some(e.seq),
                    "its hash is not the one a signed checkpoint vouches for (the chain was rewritten)".into(),
                ));
            }
            newest_at = Some(e.at);
            prev.clear();
            prev.push_str(hash);
            expected += 1;
            events += 1;
        }
    }
    let last = expected - 1;
    if let Some(reach) = from.reach
        && reach.position > last
    {
        return Ok(broken(
            last + 1,
            None,
            format!(
                "the chain ends at {last}, but a signed checkpoint vouches for {} events: the newest events were removed (a truncated tail)",
                reach.position
            ),
        ));
    }
    // An event older than the newest sealed one by more than the grace, still
    // without a seal, was left out of the chain: committed with its seal withheld,
    // or its seal cleared and the chain rebuilt around it.
    let newest_at = match newest_at {
        Some(at) => Some(at),
        None if last > 0 => {
            sqlx::query_scalar("SELECT at FROM audit_events WHERE position = $1")
                .bind(last)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    if let Some(newest_at) = newest_at {
        let stale: Option<(i64, i64)> = sqlx::query_as(
            "SELECT seq, at FROM audit_events WHERE position IS NULL AND at < $1 \
             ORDER BY seq LIMIT 1",
        )
        .bind(newest_at - from.unsealed_grace_millis)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((seq, at)) = stale {
            return Ok(broken(
                last + 1,
                Some(seq),
                format!(
                    "event seq {seq} of {} is not sealed, though events after it were sealed long ago",
                    format_millis(at)
                ),
            ));
        }
    }
    Ok(ChainReport {
        status: ChainStatus::Intact { events },
        head: (last > 0).then_some(ChainPoint {
            position: last,
            hash: prev,
        }),
    })
}

/// A signed statement that the chain had `hash` at `position` at time `at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub position: i64,
    pub hash: String,
    /// Milliseconds since the epoch, when it was signed.
    pub at: i64,
    /// The Ed25519 verifying key, 64 hex digits.
    pub public_key: String,
    /// The Ed25519 signature, 128 hex digits.
    pub signature: String,
}

impl Checkpoint {
    pub fn point(&self) -> ChainPoint {
        ChainPoint {
            position: self.position,
            hash: self.hash.clone(),
        }
    }
}

/// Stores a checkpoint; false when one for that place is already stored.
pub async fn insert_checkpoint(
    conn: &mut AnyConnection,
    checkpoint: &Checkpoint,
) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "INSERT INTO audit_checkpoints (position, hash, at, public_key, signature) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (position) DO NOTHING",
    )
    .bind(checkpoint.position)
    .bind(&checkpoint.hash)
    .bind(checkpoint.at)
    .bind(&checkpoint.public_key)
    .bind(&checkpoint.signature)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The stored checkpoint of the furthest place.
pub async fn latest_checkpoint(
    conn: &mut AnyConnection,
) -> Result<Option<Checkpoint>, StorageError> {
    let row: Option<(i64, String, i64, String, String)> = sqlx::query_as(
        "SELECT position, hash, at, public_key, signature FROM audit_checkpoints \
         ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(
        row.map(|(position, hash, at, public_key, signature)| Checkpoint {
            position,
            hash,
            at,
            public_key,
            signature,
        }),
    )
}
