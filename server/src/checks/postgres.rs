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
                    let signed_in = format!("{target}: signed in, the query read {read}");
                    return match stored_password(check).await {
                        StoredPassword::Matches => (
                            true,
                            format!("{signed_in}; the stored password is the one given"),
                            tries,
                        ),
                        StoredPassword::Differs => (
                            false,
                            format!(
                                "{signed_in}, but the role's stored password is not the one the \
                                 request gave (the server let it in without asking for it)"
                            ),
                            tries,
                        ),
                        StoredPassword::Unread(why) => (
                            true,
                            format!("{signed_in}; the stored password was not compared ({why})"),
                            tries,
                        ),
                    };
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

enum StoredPassword {
    Matches,
    Differs,
    Unread(String),
}

/// Compares the role's stored password with the one the request holds, over the
/// server's admin connection: a server whose rules let the role in without a
/// password (`trust`, `peer`) signs it in with any, so signing in alone proves
/// nothing of the password given to the requester. An admin that may not read
/// `pg_authid` (a managed server's) leaves it unread, said in the result.
async fn stored_password(check: &PostgresCheck<'_>) -> StoredPassword {
    let read = async {
        let mut conn = PgConnection::connect_with(&check.server.admin(None)).await?;
        let stored: Option<Option<String>> =
            sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
                .bind(check.user)
                .fetch_optional(&mut conn)
                .await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(stored.flatten())
    };
    match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(Ok(Some(stored)))
            if crate::drivers::command::scram::matches(&stored, check.password) =>
        {
            StoredPassword::Matches
        }
        Ok(Ok(_)) => StoredPassword::Differs,
        Ok(Err(error)) => StoredPassword::Unread(first_line(&error.to_string())),
        Err(_) => StoredPassword::Unread("the admin connection did not answer in time".into()),
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}
