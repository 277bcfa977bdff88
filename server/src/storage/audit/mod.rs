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

use sha2::{Digest, Sha256};
use slipway_core::ids::UserId;
use slipway_core::listing::{ListFilter, ListPage, PageRequest};
use slipway_core::views::{AuditEntry, AuditFilter};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::listing::{Conditions, ListSql};

mod verify;
use super::{Engine, POSTGRES_CLOCK, StorageError, Window, format_millis, now_millis};
pub use verify::{ChainReport, ChainStatus, VerifyFrom, verify, verify_chain};

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
    /// Who the caller is on the channel itself, where that is not a Slipway account:
    /// the Matrix user id of a chat message.
    pub channel_user: Option<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_user: Option<&'a str>,
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
    engine: Engine,
    event: &NewEvent<'_>,
) -> Result<(), StorageError> {
    // On PostgreSQL the database's clock stamps the event: replicas' clocks
    // differ, and the chain is in the order events were written.
    let (at, first) = match engine {
        Engine::Postgres => (POSTGRES_CLOCK.to_string(), 1),
        Engine::Sqlite => ("$1".to_string(), 2),
    };
    let places: Vec<String> = (first..first + 13).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO audit_events (at, actor_id, actor, action, target_kind, target_id, \
         before_value, after_value, detail, channel, client_addr, trace_id, token_id, \
         channel_user) VALUES ({at}, {})",
        places.join(", ")
    );
    let mut query = sqlx::query(&sql);
    if engine == Engine::Sqlite {
        query = query.bind(now_millis());
    }
    query
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
        .bind(event.origin.channel_user.as_deref())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Appends several events in one statement, in order, inside the caller's
/// transaction: a burst of calls to record (token uses) costs one round trip to
/// the database instead of one per event. The events travel as one JSON array.
pub async fn append_many(
    conn: &mut AnyConnection,
    engine: Engine,
    events: &[NewEvent<'_>],
) -> Result<u64, StorageError> {
    if events.is_empty() {
        return Ok(0);
    }
    let at = now_millis();
    let batch = serde_json::Value::Array(
        events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "at": at, "actor_id": e.actor_id.map(|id| id.0), "actor": e.actor,
                    "action": e.action, "target_kind": e.target_kind,
                    "target_id": e.target_id, "before": e.before, "after": e.after,
                    "detail": e.detail, "channel": e.origin.channel,
                    "client_addr": e.origin.client_addr, "trace_id": e.origin.trace_id,
                    "token_id": e.origin.token_id, "channel_user": e.origin.channel_user,
                })
            })
            .collect(),
    )
    .to_string();
    let inserted = sqlx::query(&append_many_statement(engine))
        .bind(batch)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if inserted != events.len() as u64 {
        return Err(StorageError::Corrupt(format!(
            "appending audit events: {inserted} of {} rows written",
            events.len()
        )));
    }
    Ok(inserted)
}

fn append_many_statement(engine: Engine) -> String {
    const FIELDS: [&str; 14] = [
        "at",
        "actor_id",
        "actor",
        "action",
        "target_kind",
        "target_id",
        "before",
        "after",
        "detail",
        "channel",
        "client_addr",
        "trace_id",
        "token_id",
        "channel_user",
    ];
    let (values, order) = match engine {
        Engine::Sqlite => ("json_each($1)", "key"),
        Engine::Postgres => (
            "jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(value, n)",
            "n",
        ),
    };
    let field = |name: &str| match (engine, name) {
        (Engine::Sqlite, _) => format!("json_extract(value, '$.{name}')"),
        (Engine::Postgres, "at") => POSTGRES_CLOCK.to_string(),
        (Engine::Postgres, "actor_id" | "token_id") => format!("(value->>'{name}')::BIGINT"),
        (Engine::Postgres, _) => format!("value->>'{name}'"),
    };
    let selected: Vec<String> = FIELDS.iter().map(|name| field(name)).collect();
    format!(
        "INSERT INTO audit_events (at, actor_id, actor, action, target_kind, target_id, \
         before_value, after_value, detail, channel, client_addr, trace_id, token_id, \
         channel_user) SELECT {} FROM {values} ORDER BY {order}",
        selected.join(", ")
    )
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
    channel_user: Option<String>,
}

const EVENT_COLUMNS: &str = "seq, at, actor, action, target_kind, target_id, before_value, \
                             after_value, detail, prev_hash, hash, channel, client_addr, \
                             trace_id, token_id, position, channel_user";

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
        channel_user: row.try_get(16)?,
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
            channel_user: self.channel_user.as_deref(),
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
            channel_user: self.channel_user,
        }
    }
}

/// The conditions of an audit list: each filter given (blank ones are none), so
/// each is served by its index in seq order, and the days as a range of seq.
fn conditions(filter: &ListFilter) -> Conditions {
    let blank = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (kind, id) = match blank(&filter.target) {
        Some(target) => match target.split_once(':') {
            Some((k, i)) => (Some(k.to_string()), Some(i.to_string())),
            None => (Some(target), None),
        },
        None => (None, None),
    };
    let mut c = Conditions::default();
    for (column, value) in [
        ("actor", blank(&filter.actor)),
        ("action", blank(&filter.action)),
        ("target_kind", kind),
        ("target_id", id),
    ] {
        if let Some(value) = value {
            let mark = c.text(value);
            c.push(format!("{column} = {mark}"));
        }
    }
    let days = (
        filter.created_from.map(|d| d.start_millis()),
        filter.created_to.map(|d| d.end_millis()),
    );
    super::listing::time_window(&mut c, ("audit_events", "", "seq", "at"), days);
    c
}

fn entries(rows: &[AnyRow]) -> Result<Vec<AuditEntry>, StorageError> {
    rows.iter()
        .map(|r| event_from_row(r).map(StoredEvent::into_entry))
        .collect()
}

/// Newest first, from `window.before` on: the API's pages and its export.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
    window: Window,
) -> Result<Vec<AuditEntry>, StorageError> {
    let mut c = conditions(&ListFilter::from(filter));
    if let Some(before) = window.before {
        let mark = c.int(before);
        c.push(format!("seq < {mark}"));
    }
    let limit = c.int(window.limit);
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events{} ORDER BY seq DESC LIMIT {limit}",
        c.where_clause()
    );
    let rows = c.bind(sqlx::query(&sql)).fetch_all(&mut *conn).await?;
    entries(&rows)
}

fn list_sql(filter: &ListFilter) -> ListSql<'static> {
    ListSql {
        columns: EVENT_COLUMNS,
        from: "audit_events",
        id: "seq",
        conditions: conditions(filter),
        windowed: None,
    }
}

/// One page of the audit log, newest first, either way from a cursor: the
/// portal's page with "Newer" and "Older".
pub async fn page(
    conn: &mut AnyConnection,
    filter: &ListFilter,
    page: PageRequest,
) -> Result<ListPage<AuditEntry>, StorageError> {
    list_sql(filter)
        .page(
            conn,
            page,
            |row| event_from_row(row).map(StoredEvent::into_entry),
            |entry| entry.seq,
        )
        .await
}

/// How the database reads a page of the audit log (for the tests of its indexes).
pub async fn page_plan(
    conn: &mut AnyConnection,
    engine: Engine,
    filter: &ListFilter,
    page: PageRequest,
) -> Result<String, StorageError> {
    list_sql(filter).plan(conn, engine, page).await
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

/// The newest `limit` events about one target, oldest first: a page shows a
/// long-lived asset's recent history, the audit log the rest.
pub async fn newest_for_target(
    conn: &mut AnyConnection,
    (target_kind, target_id): (&str, &str),
    limit: i64,
) -> Result<Vec<AuditEntry>, StorageError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE target_kind = $1 AND target_id = $2 \
         ORDER BY seq DESC LIMIT $3"
    ))
    .bind(target_kind)
    .bind(target_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut entries = rows
        .iter()
        .map(|r| event_from_row(r).map(StoredEvent::into_entry))
        .collect::<Result<Vec<_>, _>>()?;
    entries.reverse();
    Ok(entries)
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
    // A chunk of the batch per statement and one parameter (a JSON array): no
    // statement per event, and no thousands of bound parameters (which SQLite looks
    // up by name, one linear scan each).
    let mut done = 0;
    for chunk in sealed.chunks(SEAL_STATEMENT_EVENTS) {
        done += update_seals(conn, engine, chunk).await?;
    }
    if done != sealed.len() as u64 {
        return Err(StorageError::Corrupt(format!(
            "sealing audit events: {done} of {} rows took their place",
            sealed.len()
        )));
    }
    Ok(sealed.len() as u64)
}

/// Events sealed by one statement.
const SEAL_STATEMENT_EVENTS: usize = 256;

/// Writes the places and hashes of `sealed` (seq, position, prev_hash, hash);
/// returns how many rows took them.
async fn update_seals(
    conn: &mut AnyConnection,
    engine: Engine,
    sealed: &[(i64, i64, String, String)],
) -> Result<u64, StorageError> {
    let batch = serde_json::Value::Array(
        sealed
            .iter()
            .map(|(seq, position, prev_hash, hash)| {
                serde_json::json!({"s": seq, "p": position, "ph": prev_hash, "h": hash})
            })
            .collect(),
    )
    .to_string();
    Ok(sqlx::query(&seal_statement(engine))
        .bind(batch)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// The statement that seals a chunk. On SQLite the guard is written
/// `+position IS NULL` so the planner cannot drive the update from the index of
/// unsealed events: it did, and read the whole chunk's array again for every
/// pending event, so a backlog of 9,000 events made each statement cost 9,000 ×
/// 64 lookups and held the write lock for hundreds of milliseconds. Now each
/// array element finds its row by primary key.
pub fn seal_statement(engine: Engine) -> String {
    let (values, unsealed) = match engine {
        Engine::Postgres => (
            "jsonb_to_recordset($1::jsonb) AS v(s BIGINT, p BIGINT, ph TEXT, h TEXT)",
            "audit_events.position IS NULL",
        ),
        Engine::Sqlite => (
            "(SELECT json_extract(value, '$.s') AS s, json_extract(value, '$.p') AS p, \
              json_extract(value, '$.ph') AS ph, json_extract(value, '$.h') AS h \
              FROM json_each($1)) AS v",
            "+audit_events.position IS NULL",
        ),
    };
    format!(
        "UPDATE audit_events SET position = v.p, prev_hash = v.ph, hash = v.h \
         FROM {values} WHERE audit_events.seq = v.s AND {unsealed}"
    )
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

/// Stored checkpoints whose place no longer holds the hash they vouch for (the
/// event there edited, removed, or the chain cut and grown again), oldest first.
/// Verify walks to the newest checkpoint only; this finds a rewrite behind it.
pub async fn checkpoints_off_the_chain(
    conn: &mut AnyConnection,
    limit: i64,
) -> Result<Vec<Checkpoint>, StorageError> {
    let rows: Vec<(i64, String, i64, String, String)> = sqlx::query_as(
        "SELECT c.position, c.hash, c.at, c.public_key, c.signature \
         FROM audit_checkpoints c LEFT JOIN audit_events e ON e.position = c.position \
         WHERE e.hash IS NULL OR e.hash <> c.hash ORDER BY c.position LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(position, hash, at, public_key, signature)| Checkpoint {
            position,
            hash,
            at,
            public_key,
            signature,
        })
        .collect())
}

/// The hash the event at `position` holds, if one is there.
pub async fn hash_at(
    conn: &mut AnyConnection,
    position: i64,
) -> Result<Option<String>, StorageError> {
    let hash: Option<Option<String>> =
        sqlx::query_scalar("SELECT hash FROM audit_events WHERE position = $1")
            .bind(position)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(hash.flatten())
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
