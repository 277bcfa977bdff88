//! Verification: the chain read in place order, every hash recomputed.

use futures_util::TryStreamExt as _;
use sqlx::{AnyConnection, AnyPool, Row};

use super::{
    ChainPoint, EVENT_COLUMNS, GENESIS, HashedContent, UNSEALED_GRACE_MILLIS, chain_hash_hex,
};
use crate::storage::{StorageError, format_millis};

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
    /// Each reader reads at least this many events (tests make it small, so that a
    /// short chain is read in several ranges that must join).
    pub events_per_reader: i64,
}

impl Default for VerifyFrom<'_> {
    fn default() -> Self {
        VerifyFrom {
            start: None,
            reach: None,
            unsealed_grace_millis: UNSEALED_GRACE_MILLIS,
            events_per_reader: EVENTS_PER_READER,
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
pub async fn verify_chain(pool: &AnyPool) -> Result<ChainStatus, StorageError> {
    Ok(verify(pool, &VerifyFrom::default()).await?.status)
}

/// Below this many events a second reader costs more than it saves.
pub const EVENTS_PER_READER: i64 = 50_000;
/// Readers at most, each on its own connection.
const MAX_READERS: i64 = 4;

/// Streams the sealed events in place order (constant memory) and recomputes each
/// hash; names the first broken place. Each event carries its predecessor's hash,
/// so consecutive ranges of places are read side by side, each on its own
/// connection, and joined where they meet.
pub async fn verify(pool: &AnyPool, from: &VerifyFrom<'_>) -> Result<ChainReport, StorageError> {
    let mut conn = pool.acquire().await?;
    let (first, prev) = match start(&mut conn, from.start).await? {
        Ok(start) => start,
        Err(broken) => return Ok(broken),
    };
    let last: i64 = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(position) FROM audit_events")
        .fetch_one(&mut *conn)
        .await?
        .unwrap_or(0)
        .max(first - 1);
    drop(conn);
    let ranges = split(first, last, from.events_per_reader);
    let mut readers = Vec::with_capacity(ranges.len());
    for (i, (lo, hi)) in ranges.iter().copied().enumerate() {
        let pool = pool.clone();
        let reach = from.reach.cloned();
        let prev = (i == 0).then(|| prev.clone());
        readers.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            read_range(&mut conn, lo, hi, prev, reach.as_ref()).await
        }));
    }
    let mut head = prev;
    let mut events = 0i64;
    let mut newest_at = None;
    for (reader, (lo, _)) in readers.into_iter().zip(ranges) {
        let range = reader
            .await
            .map_err(|e| StorageError::Corrupt(format!("an audit verify reader stopped: {e}")))??;
        if let Some(broken) = range.broken {
            return Ok(broken);
        }
        if range.first_prev.as_deref().is_some_and(|p| p != head) {
            return Ok(broken(
                lo,
                range.first_seq,
                "does not follow the previous event (a row was removed or reordered)".into(),
            ));
        }
        events += range.events;
        newest_at = range.newest_at.or(newest_at);
        if let Some(hash) = range.last_hash {
            head = hash;
        }
    }
    let mut conn = pool.acquire().await?;
    finish(&mut conn, from, last, events, newest_at, head).await
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

/// Consecutive ranges of places covering `first..=last`, one per reader.
fn split(first: i64, last: i64, per_reader: i64) -> Vec<(i64, i64)> {
    let count = last - first + 1;
    if count <= 0 {
        return Vec::new();
    }
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
    let readers = (count / per_reader.max(1)).clamp(1, parallel.clamp(1, MAX_READERS));
    let size = (count + readers - 1) / readers;
    (0..readers)
        .map(|i| (first + i * size, (first + (i + 1) * size - 1).min(last)))
        .filter(|(lo, hi)| lo <= hi)
        .collect()
}

/// What one reader found in its range.
struct RangeRead {
    /// The `prev_hash` of the range's first event, to be joined to the range before.
    first_prev: Option<String>,
    first_seq: Option<i64>,
    last_hash: Option<String>,
    events: i64,
    newest_at: Option<i64>,
    broken: Option<ChainReport>,
}

/// Reads places `lo..=hi` in order. With `prev`, the first event must follow it;
/// without, its `prev_hash` is handed back to be checked against the range before.
async fn read_range(
    conn: &mut AnyConnection,
    lo: i64,
    hi: i64,
    mut prev: Option<String>,
    reach: Option<&ChainPoint>,
) -> Result<RangeRead, StorageError> {
    let mut read = RangeRead {
        first_prev: None,
        first_seq: None,
        last_hash: None,
        events: 0,
        newest_at: None,
        broken: None,
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE position >= $1 AND position <= $2 \
         ORDER BY position"
    );
    let mut rows = sqlx::query(&sql).bind(lo).bind(hi).fetch(&mut *conn);
    let mut expected = lo;
    while let Some(row) = rows.try_next().await? {
        let e = event_ref(&row)?;
        if let Err(report) = check(&e, expected, &mut prev, &mut read, reach) {
            read.broken = Some(report);
            return Ok(read);
        }
        read.newest_at = Some(e.at);
        expected += 1;
        read.events += 1;
    }
    if expected <= hi {
        read.broken = Some(broken(
            expected,
            None,
            format!(
                "no event has this place, though the chain goes on to {hi} (an event was removed)"
            ),
        ));
    }
    read.last_hash = prev;
    Ok(read)
}

/// One event at its expected place: sealed, following `prev`, its content
/// matching its hash; `prev` moves on to its hash.
fn check(
    e: &EventRef<'_>,
    expected: i64,
    prev: &mut Option<String>,
    read: &mut RangeRead,
    reach: Option<&ChainPoint>,
) -> Result<(), ChainReport> {
    let position = e.position.unwrap_or_default();
    if position != expected {
        return Err(broken(
            expected,
            None,
            format!(
                "no event has this place; the next sealed one (seq {}) is at {position} (an event was removed or reordered)",
                e.seq
            ),
        ));
    }
    let (Some(prev_hash), Some(hash)) = (e.prev_hash, e.hash) else {
        return Err(broken(
            position,
            Some(e.seq),
            "has a place in the chain but no hash (its seal was cleared)".into(),
        ));
    };
    let before = match prev {
        Some(before) if before.as_str() != prev_hash => {
            return Err(broken(
                position,
                Some(e.seq),
                "does not follow the previous event (a row was removed or reordered)".into(),
            ));
        }
        Some(before) => before,
        None => {
            read.first_prev = Some(prev_hash.to_string());
            read.first_seq = Some(e.seq);
            prev.insert(prev_hash.to_string())
        }
    };
    if chain_hash_hex(before, &e.content()) != hash.as_bytes() {
        return Err(broken(
            position,
            Some(e.seq),
            "content does not match its hash (the row was edited)".into(),
        ));
    }
    if let Some(reach) = reach
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
    before.clear();
    before.push_str(hash);
    Ok(())
}

/// After the last place: the chain must reach the newest checkpoint, and no event
/// may have been left unsealed long before the newest sealed one.
async fn finish(
    conn: &mut AnyConnection,
    from: &VerifyFrom<'_>,
    last: i64,
    events: i64,
    newest_at: Option<i64>,
    head: String,
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
            hash: head,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn ranges_cover_every_place_once() {
        assert!(split(1, 0, 10).is_empty());
        assert_eq!(split(1, 10, 50), vec![(1, 10)]);
        assert_eq!(split(5, 5, 1), vec![(5, 5)]);
        for (first, last, per) in [
            (1, 1_000_000, 50_000),
            (7, 123_456, 50_000),
            (1, 99, 7),
            (3, 30, 1),
        ] {
            let ranges = split(first, last, per);
            assert_eq!(ranges.first().map(|r| r.0), Some(first));
            assert_eq!(ranges.last().map(|r| r.1), Some(last));
            assert!(
                ranges.windows(2).all(|w| w[0].1 + 1 == w[1].0),
                "{ranges:?}"
            );
        }
    }
}
