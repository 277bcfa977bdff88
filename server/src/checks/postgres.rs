//! The `postgres` check: sign in to the new database as its role, with the
//! password the request holds as a secret, and run the type's query. Tried until
//! the deadline, since a server may take a moment to accept a role just made.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, Row};

use super::probe::{gave_up, try_timeout, wait_for_next_try};
use crate::postgres_servers::PostgresServer;

pub(super) struct PostgresCheck<'a> {
    pub server: &'a PostgresServer,
    pub database: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub query: &'a str,
    pub expect: Option<&'a str>,
    pub deadline: Duration,
}

/// (passed, detail, tries)
pub(super) async fn postgres(check: &PostgresCheck<'_>, interval: Duration) -> (bool, String, u32) {
    let target = format!(
        "{}@{}:{}/{}",
        check.user, check.server.host, check.server.port, check.database
    );
    let until = Instant::now() + check.deadline;
    let mut tries = 0;
    loop {
        tries += 1;
        let last = match tokio::time::timeout(try_timeout(until), one_try(check)).await {
            Ok(Ok(read)) => match check.expect {
                Some(expected) if read.as_deref() != Some(expected) => format!(
                    "{target}: the query read {}, expected {expected:?}",
                    read.map_or_else(|| "no row".to_string(), |r| format!("{r:?}"))
                ),
                _ => {
                    let read = read.map_or_else(|| "no row".to_string(), |r| format!("{r:?}"));
                    return (
                        true,
                        format!("{target}: signed in, the query read {read}"),
                        tries,
                    );
                }
            },
            Ok(Err(error)) => format!("{target}: {error}"),
            Err(_) => format!("{target}: no answer in time"),
        };
        if !wait_for_next_try(until, interval).await {
            return (false, gave_up(&target, &last, tries, check.deadline), tries);
        }
    }
}

/// The first column of the query's first row as text. The query is the catalog's
/// plain SQL (never a template), read through a subquery so any one column type
/// compares as text.
async fn one_try(check: &PostgresCheck<'_>) -> Result<Option<String>, sqlx::Error> {
    let options = check
        .server
        .connect_as(check.user, check.password, check.database);
    let mut conn = PgConnection::connect_with(&options).await?;
    let sql = format!("SELECT q.c::text FROM ({}) AS q(c) LIMIT 1", check.query);
    let row = sqlx::query(&sql).fetch_optional(&mut conn).await;
    let _ = conn.close().await;
    match row? {
        Some(row) => row.try_get::<Option<String>, _>(0),
        None => Ok(None),
    }
}
