//! The history guidance reads: a team's recent requests of one type and the review
//! comments that sent them back. The first read takes the last [`MAX_REQUESTS`]
//! requests within [`WINDOW_DAYS`], walking the `requests_team_type_creations`
//! index backwards; the second looks those requests' decisions up by id on
//! `decisions_request`. Neither cost grows with the tables.

use serde_json::Value;
use slipway_core::guidance::{History, MAX_COMMENT_CHARS, MAX_REQUESTS, SentBack, WINDOW_DAYS};
use sqlx::{AnyConnection, Row};

use super::{Engine, StorageError, now_millis};

const DAY_MS: i64 = 24 * 3_600_000;
/// The most recent send-backs read (a request sent back many times counts each).
const MAX_SENT_BACK: i64 = 200;

/// The team's requests of the type (creations, not day-2 actions) within the
/// window, newest first.
const RECENT: &str = "SELECT id, params, state FROM requests \
     WHERE team = $1 AND type_name = $2 AND action IS NULL AND created_at >= $3 \
     ORDER BY created_at DESC LIMIT $4";

/// The "request changes" decisions on `count` requests named by id. Comments are
/// cut in SQL, so a 100 KB comment costs no more than a short one. (The numbers
/// are our constants, written as literals: PostgreSQL's `SUBSTR` takes no BIGINT
/// parameter.) An explicit id list, not a sub-select: PostgreSQL would make that
/// a hash join over every decision. Newest first by time, not by id: ordered by
/// id, PostgreSQL may walk the primary key backwards looking for the ids.
fn sent_back_sql(count: usize) -> String {
    let marks: Vec<String> = (1..=count).map(|i| format!("${i}")).collect();
    format!(
        "SELECT request_id, SUBSTR(comment, 1, {MAX_COMMENT_CHARS}) AS comment \
         FROM decisions WHERE request_id IN ({}) AND decision = 'request_changes' \
         ORDER BY created_at DESC, id DESC LIMIT {MAX_SENT_BACK}",
        marks.join(", ")
    )
}

/// The states of requests whose values were not chosen in the end.
const NOT_CHOSEN: [&str; 2] = ["rejected", "cancelled"];

/// The start of the window, in milliseconds.
fn since() -> i64 {
    now_millis() - i64::from(WINDOW_DAYS) * DAY_MS
}

/// The team's recent history of the type.
pub async fn history(
    conn: &mut AnyConnection,
    type_name: &str,
    team: &str,
) -> Result<History, StorageError> {
    let recent = recent(conn, type_name, team).await?;
    let ids: Vec<i64> = recent.iter().map(|(id, _, _)| *id).collect();
    Ok(History {
        team: team.to_string(),
        // What reviewers refused or the team withdrew was not chosen in the end:
        // it would be offered as "usually chosen". (Their send-backs still count.)
        // Parameters that are not readable JSON objects are left out rather than
        // failing the form.
        params: recent
            .iter()
            .filter(|(_, _, state)| !NOT_CHOSEN.contains(&state.as_str()))
            .filter_map(|(_, text, _)| serde_json::from_str::<Value>(text.as_deref()?).ok())
            .filter(Value::is_object)
            .collect(),
        sent_back: sent_back(conn, &ids).await?,
    })
}

/// The ids, parameter texts and states of the recent requests.
async fn recent(
    conn: &mut AnyConnection,
    type_name: &str,
    team: &str,
) -> Result<Vec<(i64, Option<String>, String)>, StorageError> {
    Ok(sqlx::query_as(RECENT)
        .bind(team)
        .bind(type_name)
        .bind(since())
        .bind(i64::from(MAX_REQUESTS))
        .fetch_all(&mut *conn)
        .await?)
}

/// The comments that sent these requests back, newest first.
async fn sent_back(conn: &mut AnyConnection, ids: &[i64]) -> Result<Vec<SentBack>, StorageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = sent_back_sql(ids.len());
    let rows = ids
        .iter()
        .fold(sqlx::query(&sql), |query, id| query.bind(*id))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(SentBack {
                request_id: row.try_get("request_id")?,
                comment: row.try_get("comment")?,
            })
        })
        .collect()
}

/// How the database answers both reads (`EXPLAIN`), for tests and operators: the
/// first should name `requests_team_type_creations`, the second `decisions_request`.
/// `team` and `type_name` as a form would ask; the second read for as many ids as
/// it may get.
pub async fn plans(
    conn: &mut AnyConnection,
    engine: Engine,
    team: &str,
    type_name: &str,
) -> Result<Vec<String>, StorageError> {
    let (explain, column) = match engine {
        Engine::Sqlite => ("EXPLAIN QUERY PLAN", "detail"),
        Engine::Postgres => ("EXPLAIN", "QUERY PLAN"),
    };
    let recent = format!("{explain} {RECENT}");
    let first = sqlx::query(&recent)
        .bind(team)
        .bind(type_name)
        .bind(since())
        .bind(i64::from(MAX_REQUESTS))
        .fetch_all(&mut *conn)
        .await?;
    let ids = 1..=i64::from(MAX_REQUESTS);
    let decisions = format!("{explain} {}", sent_back_sql(ids.clone().count()));
    let second = ids
        .fold(sqlx::query(&decisions), |query, id| query.bind(id))
        .fetch_all(&mut *conn)
        .await?;
    [first, second]
        .iter()
        .map(|rows| {
            let lines: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>(column))
                .collect::<Result<_, _>>()?;
            Ok(lines.join("\n"))
        })
        .collect()
}
