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
    /// The prefix of every attempt's name and this attempt's step record, for
    /// a step run in a job.
    step: Option<(String, i64)>,
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
        let mut sessions = RunSessions {
            server: server.clone(),
            password,
            name: match step {
                Some(step) => step.application_name(),
                None => format!("{}-0", StepSessions::fresh_prefix()),
            },
            step: step.map(|s| (s.prefix.clone(), s.attempt)),
            // Nothing of this attempt runs before the earlier ones are ended.
            armed: false,
        };
        if step.is_some_and(|s| s.earlier) {
            sessions.end_earlier(progress).await?;
        }
        sessions.armed = true;
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
        let matching = match (whose, &self.step) {
            (Whose::Own, _) => Matching::Name(self.name.clone()),
            (Whose::Earlier, Some((prefix, attempt))) => Matching::Below {
                pattern: format!("{prefix}-%"),
                from: i32::try_from(prefix.len() + 2).unwrap_or(i32::MAX),
                below: *attempt,
            },
            (Whose::Earlier, None) => return Ok(0),
        };
        let options = self.server.admin(self.password.as_deref());
        let mut conn = PgConnection::connect_with(&options).await?;
        // The call is in the select list, which is computed only for the rows
        // the WHERE kept: beside the name in the WHERE, the planner may call it
        // first, on every session of the server.
        let terminate = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE {} AND pid <> pg_backend_pid()",
            matching.condition()
        );
        let left = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE {}",
            matching.condition()
        );
        let mut ended = 0;
        // Ended again at every pass until none is left: a program whose step
        // was dropped is killed a moment later and may open another session
        // meanwhile. A terminated backend rolls back before it leaves the list.
        loop {
            let terminated: Vec<bool> = matching
                .bound(sqlx::query_scalar(&terminate))
                .fetch_all(&mut conn)
                .await?;
            ended += terminated.into_iter().filter(|&ended| ended).count();
            let remaining: i64 = matching
                .bound(sqlx::query_scalar(&left))
                .fetch_one(&mut conn)
                .await?;
            if remaining == 0 {
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
            step: self.step.clone(),
            armed: false,
        }
    }
}

/// The sessions a termination is for, as matched on the server.
enum Matching {
    /// One attempt's own name.
    Name(String),
    /// The names of a step's attempts below this one (a stalled attempt must
    /// not end the one that took its lease over). The prefix is hex: no LIKE
    /// wildcard in it; `from` is where the attempt's number starts.
    Below {
        pattern: String,
        from: i32,
        below: i64,
    },
}

type PgScalar<'q, O> = sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>;

impl Matching {
    fn condition(&self) -> &'static str {
        match self {
            Matching::Name(_) => "application_name = $1",
            // The CASE keeps the cast from ever reading a name that is not a number.
            Matching::Below { .. } => {
                "application_name LIKE $1 AND CASE WHEN substr(application_name, $2) ~ \
                 '^[0-9]{1,18}$' THEN CAST(substr(application_name, $2) AS BIGINT) < $3 \
                 ELSE false END"
            }
        }
    }

    fn bound<'q, O>(&'q self, query: PgScalar<'q, O>) -> PgScalar<'q, O> {
        match self {
            Matching::Name(name) => query.bind(name),
            Matching::Below {
                pattern,
                from,
                below,
            } => query.bind(pattern).bind(*from).bind(*below),
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
