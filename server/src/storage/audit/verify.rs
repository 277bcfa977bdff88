//! Verification: the chain read in place order, every hash recomputed.
//!
//! On SQLite the events are read in batches, each batch one row holding a JSON
//! array of events built inside SQLite. Read one row per event, a million events
//! spent most of their time not in SQLite nor in hashing but in sqlx's hand-off of
//! each row from the connection's worker thread and its conversion of every column
//! into an owned value (perf: allocation, thread switches and `AnyRow`
//! conversion, about four fifths of the samples); a batch pays that once per
//! thousand events. PostgreSQL streams rows over the wire in bulk already, and
//! building the JSON there was slower than reading rows (measured), so it reads
//! rows.

use std::borrow::Cow;

use futures_util::TryStreamExt as _;
use sqlx::{AnyConnection, Row};

use super::{
    ChainPoint, EVENT_COLUMNS, GENESIS, HashedContent, UNSEALED_GRACE_MILLIS, chain_hash_hex,
};
use crate::storage::{Db, Engine, StorageError, format_millis};

/// One event as verify reads it, in EVENT_COLUMNS order: borrowed from the row or
/// the batch's JSON text, copied only where JSON escaped a character.
#[derive(serde::Deserialize)]
struct EventRef<'r> {
    seq: i64,
    at: i64,
    #[serde(borrow)]
    actor: Cow<'r, str>,
    #[serde(borrow)]
    action: Cow<'r, str>,
    #[serde(borrow)]
    target_kind: Cow<'r, str>,
    #[serde(borrow)]
    target_id: Cow<'r, str>,
    #[serde(borrow)]
    before: Option<Cow<'r, str>>,
    #[serde(borrow)]
    after: Option<Cow<'r, str>>,
    #[serde(borrow)]
    detail: Cow<'r, str>,
    #[serde(borrow)]
    prev_hash: Option<Cow<'r, str>>,
    #[serde(borrow)]
    hash: Option<Cow<'r, str>>,
    #[serde(borrow)]
    channel: Option<Cow<'r, str>>,
    #[serde(borrow)]
    client_addr: Option<Cow<'r, str>>,
    #[serde(borrow)]
    trace_id: Option<Cow<'r, str>>,
    token_id: Option<i64>,
    position: Option<i64>,
    #[serde(borrow)]
    channel_user: Option<Cow<'r, str>>,
}

impl EventRef<'_> {
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
}

// By index, in EVENT_COLUMNS order.
fn event_ref(row: &sqlx::any::AnyRow) -> Result<EventRef<'_>, StorageError> {
    let text = |i: usize| -> Result<Cow<'_, str>, sqlx::Error> {
        row.try_get::<&str, _>(i).map(Cow::Borrowed)
    };
    let optional_text = |i: usize| -> Result<Option<Cow<'_, str>>, sqlx::Error> {
        row.try_get::<Option<&str>, _>(i)
            .map(|value| value.map(Cow::Borrowed))
    };
    Ok(EventRef {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        actor: text(2)?,
        action: text(3)?,
        target_kind: text(4)?,
        target_id: text(5)?,
        before: optional_text(6)?,
        after: optional_text(7)?,
        detail: text(8)?,
        prev_hash: optional_text(9)?,
        hash: optional_text(10)?,
        channel: optional_text(11)?,
        client_addr: optional_text(12)?,
        trace_id: optional_text(13)?,
        token_id: row.try_get(14)?,
        position: row.try_get(15)?,
        channel_user: optional_text(16)?,
    })
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
    /// Events per batch on SQLite (tests make it small, so that a short chain is
    /// read in several batches that must join).
    pub events_per_batch: i64,
}

impl Default for VerifyFrom<'_> {
    fn default() -> Self {
        VerifyFrom {
            start: None,
            reach: None,
            unsealed_grace_millis: UNSEALED_GRACE_MILLIS,
            events_per_batch: EVENTS_PER_BATCH,
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
pub async fn verify_chain(db: &Db) -> Result<ChainStatus, StorageError> {
    Ok(verify(db, &VerifyFrom::default()).await?.status)
}

/// Events per SQLite batch: one row, so one hand-off between threads, per this
/// many events (about 200 KB of JSON), few enough to keep memory constant.
pub const EVENTS_PER_BATCH: i64 = 1_000;

/// Streams the sealed events in place order (constant memory) and recomputes each
/// hash; names the first broken place.
pub async fn verify(db: &Db, from: &VerifyFrom<'_>) -> Result<ChainReport, StorageError> {
    let mut conn = db.pool.acquire().await?;
    let (first, prev) = match start(&mut conn, from.start).await? {
        Ok(start) => start,
        Err(broken) => return Ok(broken),
    };
    let last: i64 = sqlx::query_scalar::<_, Option<i64>>(
        // The condition lets SQLite read the partial index on `position` (without
        // it, it scanned every event at each checkpoint).
        "SELECT MAX(position) FROM audit_events WHERE position IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await?
    .unwrap_or(0)
    .max(first - 1);
    let mut walk = Walk {
        expected: first,
        prev,
        events: 0,
        newest_at: None,
        reach: from.reach,
    };
    let walked = match db.engine {
        Engine::Sqlite => read_batches(&mut conn, &mut walk, last, from.events_per_batch).await?,
        Engine::Postgres => read_rows(&mut conn, &mut walk, last).await?,
    };
    if let Err(broken) = walked {
        return Ok(broken);
    }
    if walk.expected <= last {
        return Ok(broken(
            walk.expected,
            None,
            format!(
                "no event has this place, though the chain goes on to {last} (an event was removed)"
            ),
        ));
    }
    finish(&mut conn, from, last, walk).await
}

/// Where reading begins: genesis, or just after a trusted point that must still
/// hold its hash.
async fn start(
    conn: &mut AnyConnection,
    start: Option<&ChainPoint>,
) -> Result<Result<(i64, String), ChainReport>, StorageError> {
    let Some(start) = start else {
        return Ok(Ok((1, GENESIS.to_string())));
    };
    let found: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_events WHERE position = $1")
            .bind(start.position)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match found {
        None => Err(broken(
            start.position,
            None,
            "the event a signed checkpoint vouches for is missing (removed)".into(),
        )),
        Some((seq, hash)) if hash.as_deref() != Some(start.hash.as_str()) => Err(broken(
            start.position,
            Some(seq),
            "its hash is not the one a signed checkpoint vouches for (the chain was rewritten)"
                .into(),
        )),
        Some(_) => Ok((start.position + 1, start.hash.clone())),
    })
}

/// Places `walk.expected..=last` on PostgreSQL, one row per event.
async fn read_rows(
    conn: &mut AnyConnection,
    walk: &mut Walk<'_>,
    last: i64,
) -> Result<Result<(), ChainReport>, StorageError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE position >= $1 AND position <= $2 \
         ORDER BY position"
    );
    let mut rows = sqlx::query(&sql)
        .bind(walk.expected)
        .bind(last)
        .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        if let Err(broken) = walk.step(&event_ref(&row)?) {
            return Ok(Err(broken));
        }
    }
    Ok(Ok(()))
}

/// Places `walk.expected..=last` on SQLite, `per_batch` places to a row: each row
/// a JSON array of the events at those places, in place order.
async fn read_batches(
    conn: &mut AnyConnection,
    walk: &mut Walk<'_>,
    last: i64,
    per_batch: i64,
) -> Result<Result<(), ChainReport>, StorageError> {
    let sql = format!(
        "SELECT json_group_array(json_array({EVENT_COLUMNS}) ORDER BY position) \
         FROM audit_events WHERE position >= $1 AND position <= $2"
    );
    let mut from = walk.expected;
    while from <= last {
        let to = from.saturating_add(per_batch.max(1) - 1).min(last);
        let batch: String = sqlx::query_scalar(&sql)
            .bind(from)
            .bind(to)
            .fetch_one(&mut *conn)
            .await?;
        let events: Vec<EventRef<'_>> = serde_json::from_str(&batch).map_err(|e| {
            StorageError::Corrupt(format!("audit events at places {from} to {to}: {e}"))
        })?;
        for event in &events {
            if let Err(broken) = walk.step(event) {
                return Ok(Err(broken));
            }
        }
        // A place missing at the end of this batch shows as the next event (or the
        // end of the chain) not having the expected place.
        from = to + 1;
    }
    Ok(Ok(()))
}

/// How much earlier than the event sealed before it an event may be dated.
const BACKDATED_BEYOND_MILLIS: i64 = 60 * 60 * 1000;

/// How far the reading has come.
struct Walk<'a> {
    /// The place the next event must have.
    expected: i64,
    /// The hash the next event must name as its predecessor's.
    prev: String,
    events: i64,
    newest_at: Option<i64>,
    reach: Option<&'a ChainPoint>,
}

impl Walk<'_> {
    /// One event at its expected place: sealed, following `prev`, its content
    /// matching its hash; `prev` moves on to its hash.
    fn step(&mut self, e: &EventRef<'_>) -> Result<(), ChainReport> {
        let position = e.position.unwrap_or_default();
        if position != self.expected {
            return Err(broken(
                self.expected,
                None,
                format!(
                    "no event has this place; the next sealed one (seq {}) is at {position} (an event was removed or reordered)",
                    e.seq
                ),
            ));
        }
        let (Some(prev_hash), Some(hash)) = (e.prev_hash.as_deref(), e.hash.as_deref()) else {
            return Err(broken(
                position,
                Some(e.seq),
                "has a place in the chain but no hash (its seal was cleared)".into(),
            ));
        };
        if self.prev != prev_hash {
            return Err(broken(
                position,
                Some(e.seq),
                "does not follow the previous event (a row was removed or reordered)".into(),
            ));
        }
        if chain_hash_hex(&self.prev, &e.content()) != hash.as_bytes() {
            return Err(broken(
                position,
                Some(e.seq),
                "content does not match its hash (the row was edited)".into(),
            ));
        }
        // Events are sealed in the order they were written, each stamped with
        // the time it was (on PostgreSQL by the database's clock): one far older
        // than the event before it was inserted with a made-up time, to sit in
        // the past of every timeline. An hour leaves room for a slow commit and
        // a clock stepped back.
        if let Some(before) = self.newest_at
            && e.at < before - BACKDATED_BEYOND_MILLIS
        {
            return Err(broken(
                position,
                Some(e.seq),
                format!(
                    "is dated {} ms before the event sealed ahead of it (an event inserted with an earlier time)",
                    before - e.at
                ),
            ));
        }
        if let Some(reach) = self.reach
            && reach.position == position
            && reach.hash != hash
        {
            return Err(broken(
                position,
                Some(e.seq),
                "its hash is not the one a signed checkpoint vouches for (the chain was rewritten)"
                    .into(),
            ));
        }
        self.prev.clear();
        self.prev.push_str(hash);
        self.expected += 1;
        self.events += 1;
        self.newest_at = Some(e.at);
        Ok(())
    }
}

/// After the last place: the chain must reach the newest checkpoint, and no event
/// may have been left unsealed long before the newest sealed one.
async fn finish(
    conn: &mut AnyConnection,
    from: &VerifyFrom<'_>,
    last: i64,
    walk: Walk<'_>,
) -> Result<ChainReport, StorageError> {
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
    let newest_at = match walk.newest_at {
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
        status: ChainStatus::Intact {
            events: walk.events,
        },
        head: (last > 0).then_some(ChainPoint {
            position: last,
            hash: walk.prev,
        }),
    })
}
