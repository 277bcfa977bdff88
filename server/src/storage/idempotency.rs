//! Stored answers to Idempotency-Key requests.

use slipway_core::ids::UserId;
use slipway_core::views::Role;
use sqlx::{AnyConnection, Row};

use super::{StorageError, now_millis};

/// What a key finds when a call arrives with it.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use (or a stale call's key taken over): the call runs and its
    /// answer is kept. The time it was claimed at fences the claim: only this
    /// call's end may finish or release it.
    Fresh(i64),
    /// A finished call with the same payload: its answer, again.
    Replay(StoredAnswer),
    /// The same key with another payload.
    Mismatch,
    /// A finished call with the same payload, made with roles or teams the caller
    /// no longer holds (named): its answer is not shown again.
    RightsLost(Vec<String>),
    /// The first call with this key is still running.
    Running,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    /// The first answer's `Location`, for a create's replay.
    pub location: Option<String>,
    pub body: String,
}

/// What identifies a call: its payload's fingerprint, and the rights it is made
/// with, one `role:…` or `team:…` per line (see [`rights_of`]).
#[derive(Debug, Clone, Copy)]
pub struct CallPrint<'a> {
    pub fingerprint: &'a str,
    /// The same call's fingerprint as a build before 2026-12-08 wrote it (keyed
    /// with the secret key itself, not a key derived for fingerprints): a key
    /// first used on such a replica, or before an upgrade, still matches.
    pub earlier_fingerprint: Option<&'a str>,
    pub rights: &'a str,
}

/// The rights a call is made with, as a key keeps them: sorted, one per line.
pub fn rights_of(roles: &[Role], teams: &[String]) -> String {
    let mut lines: Vec<String> = roles
        .iter()
        .map(|r| format!("role:{}", r.as_str()))
        .chain(teams.iter().map(|t| format!("team:{t}")))
        .collect();
    lines.sort();
    lines.dedup();
    lines.join("\n")
}

/// What of `kept` (the first call's rights) `now` lacks. An admin holds every
/// role and acts for every team, so lacks nothing.
fn rights_lost(kept: &str, now: &str) -> Vec<String> {
    let held: Vec<&str> = now.lines().collect();
    if held.contains(&"role:admin") {
        return Vec::new();
    }
    kept.lines()
        .filter(|line| !line.is_empty() && !held.contains(line))
        .map(|line| line.replacen(':', " ", 1))
        .collect()
}

/// Takes the key for this call, or says what holds it. A call that has run longer
/// than `stale_after_ms` is taken to have died with its process, and the key is
/// taken over (the services' own duplicate checks still guard what it did).
pub async fn claim(
    conn: &mut AnyConnection,
    user: UserId,
    key: &str,
    call: CallPrint<'_>,
    stale_after_ms: i64,
) -> Result<Claim, StorageError> {
    let now = now_millis();
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, state, created_at, rights) \
         VALUES ($1, $2, $3, 'running', $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(user.0)
    .bind(key)
    .bind(call.fingerprint)
    .bind(now)
    .bind(call.rights)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh(now));
    }
    let Some(row) = sqlx::query(
        "SELECT fingerprint, state, status, content_type, location, body, created_at, rights \
         FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2",
    )
    .bind(user.0)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?
    else {
        // Purged between the two statements: nothing holds the key any more.
        return Ok(Claim::Running);
    };
    let stored_fingerprint: String = row.try_get("fingerprint")?;
    if stored_fingerprint != call.fingerprint
        && Some(stored_fingerprint.as_str()) != call.earlier_fingerprint
    {
        return Ok(Claim::Mismatch);
    }
    let state: String = row.try_get("state")?;
    if state == "done" {
        let kept: Option<String> = row.try_get("rights")?;
        let lost = rights_lost(kept.as_deref().unwrap_or_default(), call.rights);
        if !lost.is_empty() {
            return Ok(Claim::RightsLost(lost));
        }
        let status: Option<i64> = row.try_get("status")?;
        return Ok(Claim::Replay(StoredAnswer {
            status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
            content_type: row.try_get("content_type")?,
            location: row.try_get("location")?,
            body: row
                .try_get::<Option<String>, _>("body")?
                .unwrap_or_default(),
        }));
    }
    let created_at: i64 = row.try_get("created_at")?;
    if created_at < now - stale_after_ms {
        // The retry's answer is kept for the rights the retry is made with.
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET created_at = $1, rights = $5 \
             WHERE user_id = $2 AND idem_key = $3 AND state = 'running' AND created_at = $4",
        )
        .bind(now)
        .bind(user.0)
        .bind(key)
        .bind(created_at)
        .bind(call.rights)
        .execute(&mut *conn)
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(Claim::Fresh(now));
        }
    }
    Ok(Claim::Running)
}

/// Keeps the answer of the call that claimed the key at `claimed_at`; nothing
/// when another call has taken the key over since (this one ran past the stale
/// time: the newer call's answer is the one to keep).
pub async fn finish(
    conn: &mut AnyConnection,
    (user, key, claimed_at): (UserId, &str, i64),
    answer: &StoredAnswer,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', status = $1, content_type = $2, body = $3, \
         location = $6 WHERE user_id = $4 AND idem_key = $5 AND state = 'running' \
         AND created_at = $7",
    )
    .bind(i64::from(answer.status))
    .bind(answer.content_type.as_deref())
    .bind(&answer.body)
    .bind(user.0)
    .bind(key)
    .bind(answer.location.as_deref())
    .bind(claimed_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Gives the key back (the call failed on our side and may be retried as new),
/// unless another call has taken it over since `claimed_at`.
pub async fn release(
    conn: &mut AnyConnection,
    (user, key, claimed_at): (UserId, &str, i64),
) -> Result<(), StorageError> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 \
         AND state = 'running' AND created_at = $3",
    )
    .bind(user.0)
    .bind(key)
    .bind(claimed_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets keys older than `cutoff` (milliseconds since the epoch).
pub async fn purge_before(conn: &mut AnyConnection, cutoff: i64) -> Result<u64, StorageError> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(cutoff)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_are_lost_only_when_one_held_then_is_gone() {
        let then = rights_of(
            &[Role::Requester, Role::Reviewer],
            &["payments".into(), "dba".into()],
        );
        assert_eq!(
            then,
            "role:requester\nrole:reviewer\nteam:dba\nteam:payments"
        );
        assert!(rights_lost(&then, &then).is_empty());
        let more = rights_of(
            &[Role::Requester, Role::Reviewer, Role::Auditor],
            &["payments".into(), "dba".into(), "web".into()],
        );
        assert!(
            rights_lost(&then, &more).is_empty(),
            "a right gained loses none"
        );
        let fewer = rights_of(&[Role::Requester], &["dba".into()]);
        assert_eq!(
            rights_lost(&then, &fewer),
            ["role reviewer", "team payments"]
        );
        let admin = rights_of(&[Role::Admin], &[]);
        assert!(
            rights_lost(&then, &admin).is_empty(),
            "an admin holds them all"
        );
        assert!(
            rights_lost("", &fewer).is_empty(),
            "a key kept before rights were"
        );
    }
}
