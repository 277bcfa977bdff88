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

on_both_engines!(an_abandoned_write_leaves_the_writer_usable);
