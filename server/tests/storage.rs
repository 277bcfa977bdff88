//! The database writer under callers that give up: a client that hangs up drops
//! its handler wherever it is, possibly between sending `BEGIN` and hearing back.

#[allow(dead_code, unused_macros)]
#[macro_use]
mod common;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use common::{TestApp, TestResult};

/// Drives `work` for at most `polls` polls, then drops it where it stands.
async fn give_up_after<F: Future>(polls: usize, work: F) {
    let mut work = pin!(work);
    let mut left = polls;
    std::future::poll_fn(|cx| {
        if work.as_mut().poll(cx).is_ready() || left == 0 {
            return Poll::Ready(());
        }
        left -= 1;
        // Let the database's own thread move on before the next poll.
        std::thread::yield_now();
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// A write transaction abandoned at any point, even between its `BEGIN` and the
/// answer, leaves the writer usable: the next transaction begins, writes and
/// commits, and nothing of the abandoned one stays.
async fn an_abandoned_write_leaves_the_writer_usable(app: &TestApp) -> TestResult {
    let db = &app.state.db;
    sqlx::query("CREATE TABLE abandoned (n BIGINT NOT NULL)")
        .execute(&db.pool)
        .await?;
    for polls in 0..400 {
        give_up_after(polls % 40, async {
            let mut tx = db.write().await?;
            sqlx::query("INSERT INTO abandoned (n) VALUES (1)")
                .execute(&mut *tx)
                .await?;
            // Never committed: only a rollback may follow.
            Ok::<(), Box<dyn std::error::Error>>(())
        })
        .await;
        let mut tx = db
            .write()
            .await
            .map_err(|e| format!("after giving up at poll {}: {e}", polls % 40))?;
        sqlx::query("INSERT INTO abandoned (n) VALUES (2)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let kept: Vec<(i64, i64)> =
        sqlx::query_as("SELECT n, COUNT(*) FROM abandoned GROUP BY n ORDER BY n")
            .fetch_all(&db.pool)
            .await?;
    assert_eq!(kept, [(2, 400)], "only the committed rows stay");
    Ok(())
}

on_both_engines!(
    an_abandoned_write_leaves_the_writer_usable,
    a_key_taken_over_is_the_newer_calls_alone,
);

/// A call that runs past the stale time loses its Idempotency-Key to the retry
/// that took it over: its end neither frees the key (a third try would then run
/// beside the retry) nor writes its answer over the retry's.
async fn a_key_taken_over_is_the_newer_calls_alone(app: &TestApp) -> TestResult {
    use slipway_server::storage::idempotency::{self, CallPrint, Claim, StoredAnswer};
    const PRINT: CallPrint = CallPrint {
        fingerprint: "print",
        earlier_fingerprint: None,
        rights: "role:requester",
    };
    let user = app.user("alice").await?.id;
    let mut tx = app.state.db.write().await?;
    let Claim::Fresh(first) = idempotency::claim(&mut tx, user, "slow", PRINT, 60_000).await?
    else {
        return Err("a new key is fresh".into());
    };
    // The first call ran for two minutes (and the retry comes a moment later).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = created_at - 120000 WHERE idem_key = 'slow'",
    )
    .execute(&mut *tx)
    .await?;
    // The retry is made with other rights than the dead call: they are the
    // ones its answer is kept for.
    let retry = CallPrint {
        rights: "role:requester\nteam:payments",
        ..PRINT
    };
    let Claim::Fresh(second) = idempotency::claim(&mut tx, user, "slow", retry, 60_000).await?
    else {
        return Err("a stale key is taken over".into());
    };
    assert_ne!(first, second);
    idempotency::release(&mut tx, (user, "slow", first)).await?;
    let answer = StoredAnswer {
        status: 500,
        content_type: None,
        location: None,
        body: "the first call's".into(),
    };
    idempotency::finish(&mut tx, (user, "slow", first), &answer).await?;
    assert_eq!(
        idempotency::claim(&mut tx, user, "slow", PRINT, 60_000).await?,
        Claim::Running,
        "the retry still holds it"
    );
    let answer = StoredAnswer {
        status: 201,
        body: "the retry's".into(),
        ..answer
    };
    idempotency::finish(&mut tx, (user, "slow", second), &answer).await?;
    let Claim::Replay(kept) = idempotency::claim(&mut tx, user, "slow", retry, 60_000).await?
    else {
        return Err("the retry's answer is kept".into());
    };
    assert_eq!((kept.status, kept.body.as_str()), (201, "the retry's"));
    // Out of the team the retry was made for, its answer is not shown again.
    assert_eq!(
        idempotency::claim(&mut tx, user, "slow", PRINT, 60_000).await?,
        Claim::RightsLost(vec!["team payments".into()])
    );
    // A key first used on an earlier build, which fingerprinted the call
    // another way, still matches the same call made now; another call not.
    let earlier = CallPrint {
        fingerprint: "earlier build's print",
        ..PRINT
    };
    let Claim::Fresh(_) = idempotency::claim(&mut tx, user, "upgrade", earlier, 60_000).await?
    else {
        return Err("a new key is fresh".into());
    };
    let now = CallPrint {
        earlier_fingerprint: Some("earlier build's print"),
        ..PRINT
    };
    assert_eq!(
        idempotency::claim(&mut tx, user, "upgrade", now, 60_000).await?,
        Claim::Running
    );
    let other = CallPrint {
        earlier_fingerprint: Some("another call"),
        ..PRINT
    };
    assert_eq!(
        idempotency::claim(&mut tx, user, "upgrade", other, 60_000).await?,
        Claim::Mismatch
    );
    tx.commit().await?;
    Ok(())
}

/// A PostgreSQL server that is not there is said within seconds, by host and
/// port and in the connection's own words, never with the URL's password.
#[tokio::test]
async fn an_unreachable_database_is_named_with_its_reason() -> TestResult {
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let started = std::time::Instant::now();
    let refused = slipway_server::storage::Db::connect("postgres://slipway:hunter2@127.0.0.1:1/x")
        .await
        .err()
        .ok_or("nothing listens on port 1")?
        .to_string();
    // A refused connection is tried again for a while (a server starting
    // beside Slipway), then said.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{refused}"
    );
    assert!(refused.contains("127.0.0.1:1"), "{refused}");
    assert!(refused.to_lowercase().contains("refused"), "{refused}");
    assert!(!refused.contains("hunter2"), "{refused}");
    Ok(())
}
