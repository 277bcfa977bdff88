//! The sessions a step opens on its PostgreSQL server (`postgres_server`).
//! Killing the program does not stop what it had sent: the server runs a
//! statement to its end whether or not its client is still there, so a
//! `DROP DATABASE` waiting for a lock would drop the database long after the
//! step was reported stopped. Each attempt's sessions carry an application
//! name of their own, by which an attempt that was stopped ends them on the
//! server too, even when its future is dropped rather than awaited (a cancel,
//! the type's step timeout). The names of one step's attempts share a prefix
//! recorded for the step: a replica killed mid-step cannot end anything, so the
//! attempt that resumes the job elsewhere ends what every earlier one left
//! before it runs the step again.

use std::time::Duration;

use sqlx::{Connection as _, PgConnection};

use crate::drivers::progress::ProgressLines;
use crate::drivers::{DriverError, StepSessions};
use crate::postgres_servers::PostgresServer;

/// How long ending a run's sessions may take, connecting included.
const END_WAIT: Duration = Duration::from_secs(10);
/// How often the server is asked whether the ended sessions are gone.
const GONE_POLL: Duration = Duration::from_millis(50);

/// Which sessions to end.
#[derive(Clone, Copy)]
enum Whose {
    /// This attempt's.
    Own,
    /// Those of the step's earlier attempts.
    Earlier,
}

pub struct RunSessions {
    server: PostgresServer,
    /// The operator's passed-on `PGPASSWORD`, for a server whose URL has none.
    password: Option<String>,
    name: String,
    /// The prefix of every attempt's name, for a step run in a job.
    step_prefix: Option<String>,
    /// Whether the sessions still need ending when this is dropped: until the
    /// program has ended by itself or they were ended.
    armed: bool,
}

impl RunSessions {
    /// The sessions of one attempt of a step (`step` is `None` outside a job:
    /// a name of its own and nothing earlier). When earlier attempts of the step
    /// ran, whatever they left on the server is ended first; if that cannot be
    /// done the step is not run beside it.
    pub async fn of_step(
        server: &PostgresServer,
        password: Option<String>,
        step: Option<&StepSessions>,
        progress: &ProgressLines,
    ) -> Result<RunSessions, DriverError> {
        let sessions = RunSessions {
            server: server.clone(),
            password,
            name: match step {
                Some(step) => step.application_name(),
                None => format!("{}-0", StepSessions::fresh_prefix()),
            },
            step_prefix: step.map(|s| s.prefix.clone()),
            armed: true,
        };
        if step.is_some_and(|s| s.earlier) {
            sessions.end_earlier(progress).await?;
        }
        Ok(sessions)
    }

    /// The `application_name` the run's program connects with (`PGAPPNAME`).
    pub fn application_name(&self) -> &str {
        &self.name
    }

    /// The program ended by itself: nothing of it is left to end.
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Ends every session of this attempt still open on the server and waits
    /// until they are gone (their transactions rolled back); returns a sentence
    /// for the step's error saying what was done, or that it could not be.
    pub async fn end(&mut self) -> String {
        let said = match tokio::time::timeout(END_WAIT, self.terminate(Whose::Own)).await {
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
        };
        self.armed = false;
        said
    }

    async fn end_earlier(&self, progress: &ProgressLines) -> Result<(), DriverError> {
        let unended = match tokio::time::timeout(END_WAIT, self.terminate(Whose::Earlier)).await {
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
             {unended}, and the step is not run beside them"
        )))
    }

    async fn terminate(&self, whose: Whose) -> Result<usize, sqlx::Error> {
        // Own: the exact name. Earlier: every name of the step's prefix but
        // this attempt's (the prefix is hex: no LIKE wildcard in it).
        let (pattern, except) = match (whose, &self.step_prefix) {
            (Whose::Own, _) => (self.name.clone(), String::new()),
            (Whose::Earlier, Some(prefix)) => (format!("{prefix}-%"), self.name.clone()),
            (Whose::Earlier, None) => return Ok(0),
        };
        let options = self.server.admin(self.password.as_deref());
        let mut conn = PgConnection::connect_with(&options).await?;
        // The call is in the select list, which is computed only for the rows
        // the WHERE kept: beside the name in the WHERE, the planner may call it
        // first, on every session of the server.
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name LIKE $1 AND application_name <> $2 \
             AND pid <> pg_backend_pid()",
        )
        .bind(&pattern)
        .bind(&except)
        .fetch_all(&mut conn)
        .await?;
        let ended = ended.into_iter().filter(|&ended| ended).count();
        // A terminated backend rolls back before it leaves the list.
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name LIKE $1 AND application_name <> $2",
            )
            .bind(&pattern)
            .bind(&except)
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

    /// A copy to end the sessions with after this one is gone.
    fn detached(&self) -> RunSessions {
        RunSessions {
            server: self.server.clone(),
            password: self.password.clone(),
            name: self.name.clone(),
            step_prefix: self.step_prefix.clone(),
            armed: false,
        }
    }
}

/// A step whose future is dropped while its program runs (the job stopped it:
/// a cancel, the type's step timeout, a lost lease, a shutdown) never reaches
/// the end of `run_command`: the sessions are ended from here, on a task of
/// their own. The program itself is killed by the stop that dropped it.
impl Drop for RunSessions {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(session = %self.name, "a dropped step's sessions could not be ended: no runtime");
            return;
        };
        let mut sessions = self.detached();
        runtime.spawn(async move {
            let said = sessions.end().await;
            let outcome = said.trim_start_matches("; ");
            tracing::info!(session = %sessions.name, %outcome, "ended a stopped step's sessions on its PostgreSQL server");
        });
    }
}
