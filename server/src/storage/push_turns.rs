//! The replicas' turns at the GitOps remote as a PostgreSQL advisory lock, held
//! on a connection of its own by a thread of its own, so that a push (blocking
//! git calls, on any thread) can wait for its turn without a runtime. The lock
//! goes with the connection: a replica that dies, or whose connection is cut,
//! gives its turn up.

use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::drivers::gitops::{PushTurns, Turn};

/// The advisory lock's first key; the second is the remote's and branch's hash.
const TURN_LOCK_CLASS: i32 = super::Turn::Pushes as i32;
/// How long a connection to the database may take.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

enum Ask {
    Take { wait: Duration, reply: Sender<bool> },
    Release,
}

/// Turns through an advisory lock on `database_url`, one lock per `place` (the
/// remote's URL and the branch).
pub struct PgPushTurns {
    asks: Mutex<Sender<Ask>>,
}

impl PgPushTurns {
    pub fn start(database_url: &str, place: &str) -> std::io::Result<PgPushTurns> {
        let (asks, received) = mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let keeper = Keeper {
            url: database_url.to_string(),
            place: place.to_string(),
            connection: None,
        };
        std::thread::Builder::new()
            .name("gitops-turns".into())
            .spawn(move || keeper.serve(&runtime, received))?;
        Ok(PgPushTurns {
            asks: Mutex::new(asks),
        })
    }

    fn send(&self, ask: Ask) -> bool {
        self.asks
            .lock()
            .map(|asks| asks.send(ask).is_ok())
            .unwrap_or(false)
    }
}

impl PushTurns for PgPushTurns {
    fn take(&self, wait: Duration) -> Option<Turn> {
        let (reply, answer) = mpsc::channel();
        if !self.send(Ask::Take { wait, reply }) {
            return None;
        }
        // The keeper answers within `wait` plus a connection attempt.
        if !answer
            .recv_timeout(wait + CONNECT_WAIT * 2)
            .unwrap_or(false)
        {
            return None;
        }
        let asks = self.asks.lock().ok()?.clone();
        Some(Turn::new(move || {
            let _ = asks.send(Ask::Release);
        }))
    }
}

struct Keeper {
    url: String,
    place: String,
    connection: Option<PgConnection>,
}

impl Keeper {
    fn serve(mut self, runtime: &tokio::runtime::Runtime, asks: Receiver<Ask>) {
        for ask in asks {
            match ask {
                Ask::Take { wait, reply } => {
                    let held = runtime.block_on(self.take(wait));
                    // An asker that gave up waiting never releases: release now.
                    if reply.send(held).is_err() && held {
                        runtime.block_on(self.release());
                    }
                }
                Ask::Release => runtime.block_on(self.release()),
            }
        }
    }

    async fn connection(&mut self) -> Option<&mut PgConnection> {
        if self.connection.is_none() {
            let connect = PgConnection::connect(&self.url);
            match tokio::time::timeout(CONNECT_WAIT, connect).await {
                Ok(Ok(connection)) => self.connection = Some(connection),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "no connection for the GitOps push turns; pushing without");
                    return None;
                }
                Err(_) => return None,
            }
        }
        self.connection.as_mut()
    }

    async fn take(&mut self, wait: Duration) -> bool {
        let place = self.place.clone();
        let Some(connection) = self.connection().await else {
            return false;
        };
        let statement = format!("SET lock_timeout = {}", wait.as_millis().max(1));
        let taken = async {
            sqlx::query(&statement).execute(&mut *connection).await?;
            sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
                .bind(TURN_LOCK_CLASS)
                .bind(&place)
                .execute(&mut *connection)
                .await
        }
        .await;
        match taken {
            Ok(_) => true,
            // lock_not_available: the holder kept it past the wait.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => false,
            Err(error) => {
                tracing::warn!(%error, "could not take a GitOps push turn; pushing without");
                self.connection = None;
                false
            }
        }
    }

    async fn release(&mut self) {
        let place = self.place.clone();
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        let released = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
            .bind(TURN_LOCK_CLASS)
            .bind(&place)
            .execute(&mut *connection)
            .await;
        if let Err(error) = released {
            // Closing the connection gives the lock up.
            tracing::warn!(%error, "could not give a GitOps push turn back; reconnecting");
            self.connection = None;
        }
    }
}
