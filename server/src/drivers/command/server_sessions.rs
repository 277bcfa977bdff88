//! The sessions a step opens on its PostgreSQL server (`postgres_server`).
//! Killing the program does not stop what it had sent: the server runs a
//! statement to its end whether or not its client is still there, so a
//! `DROP DATABASE` waiting for a lock would drop the database long after the
//! step was reported stopped. Each run's sessions carry an application name of
//! their own, by which a run that was stopped ends them on the server too. The
//! name is the step's, the same for every attempt: a replica killed mid-step
//! cannot end anything, so the attempt that resumes the job on another replica
//! ends what the killed one left before it runs the step again.

use std::time::Duration;

use rand::Rng as _;
use sqlx::{Connection as _, PgConnection};

use crate::drivers::progress::ProgressLines;
use crate::drivers::{DriverError, StepJournal};
use crate::postgres_servers::PostgresServer;

/// How long ending a run's sessions may take, connecting included.
const END_WAIT: Duration = Duration::from_secs(10);
/// How often the server is asked whether the ended sessions are gone.
const GONE_POLL: Duration = Duration::from_millis(50);

pub struct RunSessions {
    server: PostgresServer,
    /// The operator's passed-on `PGPASSWORD`, for a server whose URL has none.
    password: Option<String>,
    name: String,
}

impl RunSessions {
    /// The sessions of a step's run, named as the step's journal recorded; when
    /// an earlier attempt recorded the name, whatever that attempt left on the
    /// server is ended first (and the step waits for a later attempt if that
    /// cannot be done, rather than overlap with it).
    pub async fn of_step(
        server: &PostgresServer,
        password: Option<String>,
        journal: &dyn StepJournal,
        progress: &ProgressLines,
    ) -> Result<RunSessions, DriverError> {
        let fresh = format!("slipway-step-{:032x}", rand::rng().random::<u128>());
        let (name, earlier) = journal.session_name(&fresh).await?;
        let sessions = RunSessions {
            server: server.clone(),
            password,
            name,
        };
        if earlier {
            sessions.end_earlier(progress).await?;
        }
        Ok(sessions)
    }

    /// The `application_name` the run's program connects with (`PGAPPNAME`).
    pub fn application_name(&self) -> &str {
        &self.name
    }

    /// Ends every session of this run still open on the server and waits until
    /// they are gone (their transactions rolled back); returns a sentence for the
    /// step's error saying what was done, or that it could not be.
    pub async fn end(&self) -> String {
        match tokio::time::timeout(END_WAIT, self.terminate()).await {
            Ok(Ok(0)) => "; no session of it was left on the PostgreSQL server (a program that \
                           connects without PGAPPNAME is not found this way)"
                .to_string(),
            Ok(Ok(ended)) => format!(
                "; {ended} session(s) it had opened on the PostgreSQL server were ended there \
                 (what they had not committed was rolled back)"
            ),
            Ok(Err(error)) => {
                tracing::warn!(%error, session = %self.name, "could not end a stopped step's sessions on its PostgreSQL server");
                format!(
                    "; its sessions on the PostgreSQL server could not be ended ({error}): \
                     a statement it sent may still complete there"
                )
            }
            Err(_) => {
                tracing::warn!(session = %self.name, "ending a stopped step's sessions on its PostgreSQL server took too long");
                format!(
                    "; its sessions on the PostgreSQL server were not ended within {} s: \
                     a statement it sent may still complete there",
                    END_WAIT.as_secs()
                )
            }
        }
    }

    async fn end_earlier(&self, progress: &ProgressLines) -> Result<(), DriverError> {
        let unended = match tokio::time::timeout(END_WAIT, self.terminate()).await {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(ended)) => {
                tracing::info!(ended, session = %self.name, "ended the sessions an earlier attempt of a step left on its PostgreSQL server");
                progress.line(&format!(
                    "ended {ended} session(s) an earlier attempt of this step left on the \
                     PostgreSQL server (what they had not committed was rolled back)"
                ));
                return Ok(());
            }
            Ok(Err(error)) => format!("could not be ended ({error})"),
            Err(_) => format!("were not ended within {} s", END_WAIT.as_secs()),
        };
        Err(DriverError::Retryable(format!(
            "the sessions an earlier attempt of this step opened on the PostgreSQL server \
             {unended}: the step runs again once they are, so that the two never overlap"
        )))
    }

    async fn terminate(&self) -> Result<usize, sqlx::Error> {
        let options = self.server.admin(self.password.as_deref());
        let mut conn = PgConnection::connect_with(&options).await?;
        // The call is in the select list, which is computed only for the rows
        // the WHERE kept: beside the name in the WHERE, the planner may call it
        // first, on every session of the server.
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_all(&mut conn)
        .await?;
        let ended = ended.into_iter().filter(|&ended| ended).count();
        // A terminated backend rolls back before it leaves the list.
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            )
            .bind(&self.name)
            .fetch_one(&mut conn)
            .await?;
            if left == 0 {
                break;
            }
            tokio::time::sleep(GONE_POLL).await;
        }
        let _ = conn.close().await;
        Ok(ended)
    }
}
