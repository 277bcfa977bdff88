//! Encrypted secret parameters, one row per request, revision and parameter. Only
//! ciphertext is stored here; sealing and opening happen in `crate::secrets`.

use slipway_core::ids::RequestId;
use sqlx::{AnyConnection, Row};

use super::{Engine, StorageError, now_millis};
use crate::secrets::Sealed;

/// The check value of the key this database's secrets are sealed with, if one
/// was recorded.
pub async fn key_check(conn: &mut AnyConnection) -> Result<Option<String>, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT check_value FROM secret_key_checks WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Records `value` as the key's check value unless one is recorded already (a
/// replica starting at the same moment); returns the one recorded.
pub async fn record_key_check(
    conn: &mut AnyConnection,
    value: &str,
) -> Result<String, StorageError> {
    sqlx::query(
        "INSERT INTO secret_key_checks (id, check_value, created_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(value)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(key_check(conn).await?.unwrap_or_default())
}

/// How a read of the key check holds the key on PostgreSQL until its transaction
/// ends: shared by every writer of a sealed value and every checkpoint, alone for
/// a key rotation, so that neither seals under a key the other is replacing.
/// SQLite's writers take turns anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheckLock {
    Share,
    Update,
}

/// The advisory lock standing for the key (a lock, not the row's own: shared
/// row locks on one hot row cost PostgreSQL a multixact and a WAL write each).
const KEY_LOCK: i64 = 7105007;

/// The recorded key check value, the key held as `lock` says until the
/// transaction ends.
pub async fn key_check_locked(
    conn: &mut AnyConnection,
    engine: Engine,
    lock: KeyCheckLock,
) -> Result<Option<String>, StorageError> {
    if engine == Engine::Postgres {
        let sql = match lock {
            KeyCheckLock::Share => "SELECT pg_advisory_xact_lock_shared($1)",
            KeyCheckLock::Update => "SELECT pg_advisory_xact_lock($1)",
        };
        sqlx::query(sql).bind(KEY_LOCK).execute(&mut *conn).await?;
    }
    key_check(conn).await
}

/// Moves the recorded key check value to a new key's (a key rotation, in the
/// transaction that re-seals every secret).
pub async fn replace_key_check(conn: &mut AnyConnection, value: &str) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO secret_key_checks (id, check_value, created_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET check_value = excluded.check_value, \
         created_at = excluded.created_at",
    )
    .bind(value)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where a sealed value is kept: request, revision and parameter.
pub type SealedPlace = (RequestId, i64, String);

/// Up to `limit` sealed values after `after`, in the order of their place.
pub async fn sealed_page(
    conn: &mut AnyConnection,
    after: Option<&SealedPlace>,
    limit: i64,
) -> Result<Vec<(SealedPlace, Sealed)>, StorageError> {
    let (request, revision, param) =
        after
            .map(|(r, v, p)| (r.0, *v, p.as_str()))
            .unwrap_or((i64::MIN, i64::MIN, ""));
    // A row value comparison, which both engines read along the primary key.
    let rows = sqlx::query(
        "SELECT request_id, revision, param, nonce, ciphertext FROM request_secrets \
         WHERE (request_id, revision, param) > ($1, $2, $3) \
         ORDER BY request_id, revision, param LIMIT $4",
    )
    .bind(request)
    .bind(revision)
    .bind(param)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let place: SealedPlace = (
                RequestId(row.try_get("request_id")?),
                row.try_get("revision")?,
                row.try_get("param")?,
            );
            let sealed = sealed_of(row, &place)?;
            Ok((place, sealed))
        })
        .collect()
}

/// Puts `sealed` in place of the value kept at `place`.
pub async fn reseal(
    conn: &mut AnyConnection,
    place: &SealedPlace,
    sealed: &Sealed,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE request_secrets SET nonce = $1, ciphertext = $2 \
         WHERE request_id = $3 AND revision = $4 AND param = $5",
    )
    .bind(hex::encode(&sealed.nonce))
    .bind(hex::encode(&sealed.ciphertext))
    .bind(place.0.0)
    .bind(place.1)
    .bind(&place.2)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn sealed_of(row: &sqlx::any::AnyRow, place: &SealedPlace) -> Result<Sealed, StorageError> {
    let decode = |column: &str| -> Result<Vec<u8>, StorageError> {
        let text: String = row.try_get(column)?;
        hex::decode(text).map_err(|e| {
            StorageError::Corrupt(format!(
                "request_secrets.{column} of request #{}, revision {}, {}: {e}",
                place.0, place.1, place.2
            ))
        })
    };
    Ok(Sealed {
        nonce: decode("nonce")?,
        ciphertext: decode("ciphertext")?,
    })
}

/// One stored sealed value, any: what a key is tried on before it is recorded.
pub async fn one_sealed(
    conn: &mut AnyConnection,
) -> Result<Option<(RequestId, String, Sealed)>, StorageError> {
    let row = sqlx::query(
        "SELECT request_id, param, nonce, ciphertext FROM request_secrets \
         ORDER BY request_id, revision, param LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let request = RequestId(row.try_get("request_id")?);
    let param: String = row.try_get("param")?;
    let decode = |column: &str| -> Result<Vec<u8>, StorageError> {
        let text: String = row.try_get(column)?;
        hex::decode(text).map_err(|e| {
            StorageError::Corrupt(format!(
                "request_secrets.{column} of request #{request}: {e}"
            ))
        })
    };
    let sealed = Sealed {
        nonce: decode("nonce")?,
        ciphertext: decode("ciphertext")?,
    };
    Ok(Some((request, param, sealed)))
}

pub async fn insert(
    conn: &mut AnyConnection,
    request: RequestId,
    revision: i64,
    param: &str,
    sealed: &Sealed,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO request_secrets (request_id, revision, param, nonce, ciphertext, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(request.0)
    .bind(revision)
    .bind(param)
    .bind(hex::encode(&sealed.nonce))
    .bind(hex::encode(&sealed.ciphertext))
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Carries a secret the requester did not give again into the new revision.
pub async fn copy_forward(
    conn: &mut AnyConnection,
    request: RequestId,
    from_revision: i64,
    to_revision: i64,
    param: &str,
) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "INSERT INTO request_secrets (request_id, revision, param, nonce, ciphertext, created_at) \
         SELECT request_id, $1, param, nonce, ciphertext, $2 FROM request_secrets \
         WHERE request_id = $3 AND revision = $4 AND param = $5",
    )
    .bind(to_revision)
    .bind(now_millis())
    .bind(request.0)
    .bind(from_revision)
    .bind(param)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The sealed secrets of one revision, by parameter name.
pub async fn of_revision(
    conn: &mut AnyConnection,
    request: RequestId,
    revision: i64,
) -> Result<Vec<(String, Sealed)>, StorageError> {
    let rows = sqlx::query(
        "SELECT param, nonce, ciphertext FROM request_secrets \
         WHERE request_id = $1 AND revision = $2 ORDER BY param",
    )
    .bind(request.0)
    .bind(revision)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let param: String = row.try_get("param")?;
            let decode = |column: &str| -> Result<Vec<u8>, StorageError> {
                let text: String = row.try_get(column)?;
                hex::decode(text).map_err(|e| {
                    StorageError::Corrupt(format!(
                        "request_secrets.{column} of request #{request}, {param}: {e}"
                    ))
                })
            };
            let sealed = Sealed {
                nonce: decode("nonce")?,
                ciphertext: decode("ciphertext")?,
            };
            Ok((param, sealed))
        })
        .collect()
}

/// Forgets the sealed values of `request`, every revision's, but those of the
/// parameters `kept` names; returns how many were forgotten.
pub async fn forget_all_but(
    conn: &mut AnyConnection,
    request: RequestId,
    kept: &[&str],
) -> Result<u64, StorageError> {
    let mut sql = String::from("DELETE FROM request_secrets WHERE request_id = $1");
    if !kept.is_empty() {
        let places: Vec<String> = (2..kept.len() + 2).map(|i| format!("${i}")).collect();
        sql.push_str(&format!(" AND param NOT IN ({})", places.join(", ")));
    }
    let mut query = sqlx::query(&sql).bind(request.0);
    for param in kept {
        query = query.bind(*param);
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}

/// Forgets every revision's sealed value of one parameter of `request`.
pub async fn forget(
    conn: &mut AnyConnection,
    request: RequestId,
    param: &str,
) -> Result<u64, StorageError> {
    let done = sqlx::query("DELETE FROM request_secrets WHERE request_id = $1 AND param = $2")
        .bind(request.0)
        .bind(param)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Records that `param` of `request` was shown; false when it already was.
pub async fn mark_revealed(
    conn: &mut AnyConnection,
    request: RequestId,
    param: &str,
    user: i64,
) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "INSERT INTO secret_reveals (request_id, param, revealed_by, revealed_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_id, param) DO NOTHING",
    )
    .bind(request.0)
    .bind(param)
    .bind(user)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Who was shown which generated secret of a request, and when (epoch ms).
pub async fn reveals(
    conn: &mut AnyConnection,
    request: RequestId,
) -> Result<Vec<(String, String, i64)>, StorageError> {
    let rows = sqlx::query(
        "SELECT r.param, COALESCE(u.username, '') AS name, r.revealed_at FROM secret_reveals r \
         LEFT JOIN users u ON u.id = r.revealed_by WHERE r.request_id = $1 ORDER BY r.param",
    )
    .bind(request.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("param")?,
                row.try_get("name")?,
                row.try_get("revealed_at")?,
            ))
        })
        .collect()
}
