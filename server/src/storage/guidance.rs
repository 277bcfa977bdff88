//! The history guidance reads: a team's recent requests of one type and the review
//! comments that sent them back. Both reads are bounded — the last
//! [`MAX_REQUESTS`] requests within [`WINDOW_DAYS`] — and walk the
//! `requests_team_type_created` index backwards, so their cost does not grow with
//! the table.

use serde_json::Value;
use slipway_core::guidance::{History, MAX_COMMENT_CHARS, MAX_REQUESTS, SentBack, WINDOW_DAYS};
use sqlx::{AnyConnection, Row};

use super::{Engine, StorageError, now_millis};

const DAY_MS: i64 = 24 * 3_600_000;
/// The most recent send-backs read (a request sent back many times counts each).
const MAX_SENT_BACK: i64 = 200;

/// The ids of the team's requests of the type (creations, not day-2 actions)
/// within the window, newest first.
const RECENT: &str = "SELECT id FROM requests \
     WHERE team = $1 AND type_name = $2 AND action IS NULL AND created_at >= $3 \
     ORDER BY created_at DESC LIMIT $4";

fn params_sql() -> String {
    RECENT.replacen("SELECT id", "SELECT params", 1)
}

/// Comments are cut in SQL: a 100 KB comment costs no more than a short one. (The
/// length is our constant, written as a literal: PostgreSQL's `SUBSTR` takes no
/// BIGINT parameter.)
fn sent_back_sql() -> String {
    format!(
        "SELECT d.request_id, SUBSTR(d.comment, 1, {MAX_COMMENT_CHARS}) AS comment \
         FROM decisions d \
         WHERE d.request_id IN ({RECENT}) AND d.decision = 'request_changes' \
         ORDER BY d.id DESC LIMIT $5"
    )
}

/// The start of the window, in milliseconds.
fn since() -> i64 {
    now_millis() - i64::from(WINDOW_DAYS) * DAY_MS
}

/// The team's recent history of the type. Parameters that are not readable JSON
/// objects are left out rather than failing the form.
pub async fn history(
    conn: &mut AnyConnection,
    type_name: &str,
    team: &str,
) -> Result<History, StorageError> {
    let since = since();
    let sql = params_sql();
    let texts: Vec<Option<String>> = sqlx::query_scalar(&sql)
        .bind(team)
        .bind(type_name)
        .bind(since)
        .bind(i64::from(MAX_REQUESTS))
        .fetch_all(&mut *conn)
        .await?;
    let params = texts
        .iter()
        .flatten()
        .filter_map(|t| serde_json::from_str::<Value>(t).ok())
        .filter(Value::is_object)
        .collect();
    let sql = sent_back_sql();
    let rows = sqlx::query(&sql)
        .bind(team)
        .bind(type_name)
        .bind(since)
        .bind(i64::from(MAX_REQUESTS))
        .bind(MAX_SENT_BACK)
        .fetch_all(&mut *conn)
        .await?;
    let sent_back = rows
        .iter()
        .map(|row| {
            Ok(SentBack {
                request_id: row.try_get("request_id")?,
                comment: row.try_get("comment")?,
            })
        })
        .collect::<Result<_, StorageError>>()?;
    Ok(History {
        team: team.to_string(),
        params,
        sent_back,
    })
}

/// How the database answers both reads (`EXPLAIN`), for tests and operators:
/// each plan should name `requests_team_type_created`.
pub async fn plans(conn: &mut AnyConnection, engine: Engine) -> Result<Vec<String>, StorageError> {
    let (explain, column) = match engine {
        Engine::Sqlite => ("EXPLAIN QUERY PLAN", "detail"),
        Engine::Postgres => ("EXPLAIN", "QUERY PLAN"),
    };
    let mut plans = Vec::new();
    for (sql, extra) in [(params_sql(), 0), (sent_back_sql(), 1)] {
        let sql = format!("{explain} {sql}");
        let mut query = sqlx::query(&sql)
            .bind("payments")
            .bind("postgres-database")
            .bind(since())
            .bind(i64::from(MAX_REQUESTS));
        for _ in 0..extra {
            query = query.bind(100_i64);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        let lines: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(column))
            .collect::<Result<_, _>>()?;
        plans.push(lines.join("\n"));
    }
    Ok(plans)
}
