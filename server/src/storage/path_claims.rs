//! Claims on GitOps paths by the requests deploying them (table `path_claims`):
//! what keeps "one file, one asset" for executions that overlap. A request's
//! check against `deployed_files` alone sees only assets already recorded, so
//! two requests for one file could both pass it before either recorded its
//! asset.

use std::collections::BTreeMap;
use std::str::FromStr;

use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use sqlx::AnyConnection;

use super::StorageError;
use super::assets::path_key;

/// A path another request claimed and is still deploying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedPath {
    pub path: String,
    pub request_id: RequestId,
    /// The claiming request's state as read (`None` if it is gone).
    pub state: Option<RequestState>,
}

/// Paths bound in one statement: far below both engines' limits on binds.
const PATHS_PER_STATEMENT: usize = 200;

/// Whether a claim by a request in `state` still binds: the request may still
/// write the file, or what it wrote is still its to finish (a failed request
/// is retried or handled by hand). A completed request's files are held by its
/// asset in `deployed_files`; a cancelled one gave its files up.
pub fn binds(state: Option<RequestState>) -> bool {
    matches!(
        state,
        Some(
            RequestState::Approved
                | RequestState::Executing
                | RequestState::Verifying
                | RequestState::Failed
                | RequestState::Manual
        )
    )
}

/// Claims `paths` for `request`, in the caller's transaction; answers the first
/// path (by key) another request's claim holds, in which case the caller must
/// roll back. Keys are inserted in order, so two claimers wait for each other's
/// rows in one order and never deadlock; on PostgreSQL an insert meeting an
/// uncommitted claim waits for its transaction, then finds the row.
pub async fn claim(
    conn: &mut AnyConnection,
    request: RequestId,
    paths: &[&str],
) -> Result<Option<ClaimedPath>, StorageError> {
    let keyed: BTreeMap<String, &str> = paths.iter().map(|p| (path_key(p), *p)).collect();
    let keyed: Vec<(String, &str)> = keyed.into_iter().collect();
    for chunk in keyed.chunks(PATHS_PER_STATEMENT) {
        insert_missing(conn, request, chunk).await?;
    }
    for chunk in keyed.chunks(PATHS_PER_STATEMENT) {
        let mut others = claimed_by_others(conn, request, chunk).await?;
        // Taken over in the order the inserts went (the database's collation
        // may order keys otherwise).
        others.sort_by_key(|other| path_key(&other.path));
        for other in others {
            let key = path_key(&other.path);
            let path = chunk
                .iter()
                .find_map(|(k, path)| (*k == key).then(|| path.to_string()))
                .unwrap_or_else(|| other.path.clone());
            if let Some(held) = take_over_unless_bound(conn, request, (&key, &path), other).await? {
                return Ok(Some(held));
            }
        }
    }
    Ok(None)
}

/// Takes over a claim whose request no longer deploys. Another claimer may
/// take it over first, in a transaction that has committed since: then the
/// claim is read again, and taken over once more if that one, too, has ended
/// since; at the next loss the claim is answered as held.
async fn take_over_unless_bound(
    conn: &mut AnyConnection,
    request: RequestId,
    (key, path): (&str, &str),
    mut holder: ClaimedPath,
) -> Result<Option<ClaimedPath>, StorageError> {
    for _ in 0..2 {
        if binds(holder.state) {
            return Ok(Some(holder));
        }
        if take_over(conn, request, key, path, holder.request_id).await? {
            return Ok(None);
        }
        let entry = [(key.to_string(), path)];
        match claimed_by_others(conn, request, &entry).await?.pop() {
            Some(now) => holder = now,
            // Claims are never deleted: not reached; refused rather than run
            // without a claim.
            None => return Ok(Some(holder)),
        }
    }
    Ok(Some(holder))
}

async fn insert_missing(
    conn: &mut AnyConnection,
    request: RequestId,
    chunk: &[(String, &str)],
) -> Result<(), StorageError> {
    let rows = (0..chunk.len())
        .map(|i| format!("(${}, $1, ${})", 2 * i + 2, 2 * i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO path_claims (path_key, request_id, path) VALUES {rows} \
         ON CONFLICT (path_key) DO NOTHING"
    );
    let mut insert = sqlx::query(&sql).bind(request.0);
    for (key, path) in chunk {
        insert = insert.bind(key.as_str()).bind(*path);
    }
    insert.execute(&mut *conn).await?;
    Ok(())
}

async fn claimed_by_others(
    conn: &mut AnyConnection,
    request: RequestId,
    chunk: &[(String, &str)],
) -> Result<Vec<ClaimedPath>, StorageError> {
    let keys = (0..chunk.len())
        .map(|i| format!("${}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT c.path, c.request_id, r.state FROM path_claims c \
         LEFT JOIN requests r ON r.id = c.request_id \
         WHERE c.request_id <> $1 AND c.path_key IN ({keys}) ORDER BY c.path_key"
    );
    let mut query = sqlx::query_as::<_, (String, i64, Option<String>)>(&sql).bind(request.0);
    for (key, _) in chunk {
        query = query.bind(key.as_str());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .map(|(path, id, state)| ClaimedPath {
            path,
            request_id: RequestId(id),
            state: state.and_then(|s| RequestState::from_str(&s).ok()),
        })
        .collect())
}

/// Moves a claim whose request no longer deploys to `request`; false when the
/// claim had moved on already.
async fn take_over(
    conn: &mut AnyConnection,
    request: RequestId,
    key: &str,
    path: &str,
    from: RequestId,
) -> Result<bool, StorageError> {
    let moved = sqlx::query(
        "UPDATE path_claims SET request_id = $1, path = $2 WHERE path_key = $3 AND request_id = $4",
    )
    .bind(request.0)
    .bind(path)
    .bind(key)
    .bind(from.0)
    .execute(&mut *conn)
    .await?;
    Ok(moved.rows_affected() == 1)
}
