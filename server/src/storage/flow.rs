//! The flow's own record of every transition (`flow_steps`), and the aggregates a
//! metrics page reads from it. Every read groups in SQL over a window of weeks, on
//! covering indexes, so a page costs a few hundred rows however many requests
//! there are.

use std::str::FromStr;

use slipway_core::flow::{
    ActionCountRow, Bucket, CountedTwice, FlowInput, LeadBucketRow, RateBase, RateBaseRow, STEPS,
    StepBucketRow, StepRecord, WaitingRow, WeekStepRow, What, is_kept_rank,
};
use slipway_core::state::{Action, RequestState};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use super::{Engine, StorageError};

/// Fills in what their request does on the steps of day-2 requests recorded
/// without it (by a replica on a build before `request_action`); returns how
/// many. Creations' steps are NULL and stay so; filled ones are not written.
pub async fn fill_request_actions(conn: &mut AnyConnection) -> Result<u64, StorageError> {
    let done = sqlx::query(
        "UPDATE flow_steps SET request_action = \
         (SELECT r.action FROM requests r WHERE r.id = flow_steps.request_id) \
         WHERE request_action IS NULL \
         AND request_id IN (SELECT id FROM requests WHERE action IS NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Writes one transition; called by the service layer's `transition` in the same
/// transaction as the state change and its audit event. What the request does
/// (`request_action`: its day-2 action, NULL for a creation) is read from the
/// request itself, one step into its primary key: every writer (the services,
/// the seed) records it alike, and it agrees with the backfill, which reads the
/// same column.
pub async fn record(conn: &mut AnyConnection, step: &StepRecord) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO flow_steps (request_id, type_name, from_state, to_state, action, actor_kind, \
         entered_at, at, week, duration_ms, bucket, lead_ms, lead_bucket, request_action) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         (SELECT r.action FROM requests r WHERE r.id = $1))",
    )
    .bind(step.request_id)
    .bind(&step.type_name)
    .bind(step.from.as_str())
    .bind(step.to.as_str())
    .bind(step.action.as_str())
    .bind(step.actor.as_str())
    .bind(step.entered_at)
    .bind(step.at)
    .bind(step.week())
    .bind(step.duration_ms())
    .bind(step.bucket())
    .bind(step.lead_ms)
    .bind(step.lead_bucket())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// When the request was first submitted (none if it never was); read once, when
/// it completes, for its lead time.
pub async fn first_submit(
    conn: &mut AnyConnection,
    request_id: i64,
) -> Result<Option<i64>, StorageError> {
    let row = sqlx::query(
        "SELECT MIN(at) AS submitted_at FROM flow_steps WHERE request_id = $1 AND action = 'submit'",
    )
    .bind(request_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("submitted_at")?)
}

fn state(row: &AnyRow, column: &str) -> Result<RequestState, StorageError> {
    let text: String = row.try_get(column)?;
    RequestState::from_str(&text).map_err(|e| StorageError::Corrupt(e.to_string()))
}

fn bucket(row: &AnyRow) -> Result<Bucket, StorageError> {
    Ok(Bucket {
        bucket: row.try_get("bucket")?,
        count: row.try_get("n")?,
        total_ms: row.try_get("total_ms")?,
    })
}

/// The type and the day-2 action (`None` for a creation) every read groups by.
fn group(row: &AnyRow) -> Result<(String, Option<String>), StorageError> {
    Ok((row.try_get("type_name")?, row.try_get("request_action")?))
}

/// The statements a window's figures are read with. Each groups by type and
/// request action over `week BETWEEN $1 AND $2`, and reads one covering index
/// (the migration `flow_steps_request_action` made them): the tests check the
/// plans at scale.
#[derive(Debug, Clone, Copy)]
enum Read {
    Steps,
    /// Action counts over the whole window, or per week.
    Actions {
        by_week: bool,
    },
    /// A rate base's distinct requests over the whole window, or per week.
    Base {
        base: RateBase,
        by_week: bool,
    },
    Lead,
    WeekSteps,
}

impl Read {
    const ALL: [Read; 9] = [
        Read::Steps,
        Read::Actions { by_week: false },
        Read::Actions { by_week: true },
        Read::Base {
            base: RateBase::Reviewed,
            by_week: false,
        },
        Read::Base {
            base: RateBase::Reviewed,
            by_week: true,
        },
        Read::Base {
            base: RateBase::Executed,
            by_week: false,
        },
        Read::Base {
            base: RateBase::Executed,
            by_week: true,
        },
        Read::Lead,
        Read::WeekSteps,
    ];

    fn sql(self) -> String {
        const IN_WINDOW: &str = "FROM flow_steps WHERE week >= $1 AND week <= $2";
        let week = |by_week: bool| {
            if by_week {
                ("week", ", week")
            } else {
                ("CAST(0 AS BIGINT) AS week", "")
            }
        };
        match self {
            Read::Steps => format!(
                "SELECT type_name, request_action, from_state, bucket, COUNT(*) AS n, \
                 CAST(SUM(duration_ms) AS BIGINT) AS total_ms {IN_WINDOW} \
                 GROUP BY type_name, request_action, from_state, bucket"
            ),
            Read::Actions { by_week } => {
                let (select, group) = week(by_week);
                format!(
                    "SELECT type_name, request_action, {select}, action, COUNT(*) AS events, \
                     COUNT(DISTINCT request_id) AS requests {IN_WINDOW} \
                     GROUP BY type_name, request_action{group}, action"
                )
            }
            Read::Base { base, by_week } => {
                let (select, group) = week(by_week);
                // The actions are this build's own names, never a caller's: quoted
                // in the text, so every statement binds the window alone.
                let actions: Vec<String> = base
                    .actions()
                    .iter()
                    .map(|a| format!("'{}'", a.as_str()))
                    .collect();
                format!(
                    "SELECT type_name, request_action, {select}, \
                     COUNT(DISTINCT request_id) AS requests {IN_WINDOW} \
                     AND action IN ({}) GROUP BY type_name, request_action{group}",
                    actions.join(", ")
                )
            }
            Read::Lead => format!(
                "SELECT type_name, request_action, week, lead_bucket AS bucket, COUNT(*) AS n, \
                 CAST(SUM(lead_ms) AS BIGINT) AS total_ms {IN_WINDOW} AND lead_ms IS NOT NULL \
                 GROUP BY type_name, request_action, week, lead_bucket"
            ),
            Read::WeekSteps => format!(
                "SELECT type_name, request_action, week, from_state, \
                 CAST(SUM(duration_ms) AS BIGINT) AS total_ms {IN_WINDOW} \
                 GROUP BY type_name, request_action, week, from_state"
            ),
        }
    }

    async fn rows(
        self,
        pool: &AnyPool,
        since: i64,
        until: i64,
    ) -> Result<Vec<AnyRow>, StorageError> {
        Ok(sqlx::query(&self.sql())
            .bind(since)
            .bind(until)
            .fetch_all(pool)
            .await?)
    }
}

async fn step_buckets(
    pool: &AnyPool,
    since: i64,
    until: i64,
) -> Result<Vec<StepBucketRow>, StorageError> {
    let rows = Read::Steps.rows(pool, since, until).await?;
    rows.iter()
        .map(|row| {
            let (type_name, request_action) = group(row)?;
            Ok(StepBucketRow {
                type_name,
                request_action,
                step: state(row, "from_state")?,
                bucket: bucket(row)?,
            })
        })
        .collect()
}

/// Events and distinct requests per action, type and request action, per week
/// or (`by_week` false) over the whole window.
async fn action_counts(
    pool: &AnyPool,
    since: i64,
    until: i64,
    by_week: bool,
) -> Result<Vec<ActionCountRow>, StorageError> {
    let rows = Read::Actions { by_week }.rows(pool, since, until).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let action: String = row.try_get("action")?;
        // An action this build does not know (a newer one's rows) counts for nothing.
        let Ok(action) = Action::from_str(&action) else {
            continue;
        };
        let (type_name, request_action) = group(row)?;
        out.push(ActionCountRow {
            type_name,
            request_action,
            week: row.try_get("week")?,
            action,
            events: row.try_get("events")?,
            requests: row.try_get("requests")?,
        });
    }
    Ok(out)
}

/// Distinct requests per type and request action (and week, or over the whole
/// window) that took any of a rate base's actions: what the rates divide by.
/// One statement per base, each an index-only range scan of
/// `flow_steps_by_action`.
async fn base_counts(
    pool: &AnyPool,
    since: i64,
    until: i64,
    by_week: bool,
) -> Result<Vec<RateBaseRow>, StorageError> {
    let mut out = Vec::new();
    for base in RateBase::ALL {
        let read = Read::Base { base, by_week };
        for row in &read.rows(pool, since, until).await? {
            let (type_name, request_action) = group(row)?;
            out.push(RateBaseRow {
                type_name,
                request_action,
                week: row.try_get("week")?,
                base,
                requests: row.try_get("requests")?,
            });
        }
    }
    Ok(out)
}

async fn lead_buckets(
    pool: &AnyPool,
    since: i64,
    until: i64,
) -> Result<Vec<LeadBucketRow>, StorageError> {
    let rows = Read::Lead.rows(pool, since, until).await?;
    rows.iter()
        .map(|row| {
            let (type_name, request_action) = group(row)?;
            Ok(LeadBucketRow {
                type_name,
                request_action,
                week: row.try_get("week")?,
                bucket: bucket(row)?,
            })
        })
        .collect()
}

async fn week_steps(
    pool: &AnyPool,
    since: i64,
    until: i64,
) -> Result<Vec<WeekStepRow>, StorageError> {
    let rows = Read::WeekSteps.rows(pool, since, until).await?;
    rows.iter()
        .map(|row| {
            let (type_name, request_action) = group(row)?;
            Ok(WeekStepRow {
                type_name,
                request_action,
                week: row.try_get("week")?,
                step: state(row, "from_state")?,
                total_ms: row.try_get("total_ms")?,
            })
        })
        .collect()
}

/// How many steps the weeks `since..=until` hold: the closed weeks' kept
/// aggregates stand while it is what it was when they were read (a step a
/// late transaction or a replica whose clock runs behind put there changes it).
/// One range of a covering index.
pub async fn steps_in(pool: &AnyPool, since: i64, until: i64) -> Result<i64, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM flow_steps WHERE week >= $1 AND week <= $2")
            .bind(since)
            .bind(until)
            .fetch_one(pool)
            .await?,
    )
}

/// The id of the newest flow step: figures computed when it was the newest
/// still stand. One step into the primary key.
pub async fn newest_step(pool: &AnyPool) -> Result<Option<i64>, StorageError> {
    Ok(sqlx::query_scalar("SELECT MAX(id) FROM flow_steps")
        .fetch_one(pool)
        .await?)
}

/// The aggregates of the weeks `since..=until`, ready for `flow::compute`: every
/// type and request action, whatever one page shows of them.
pub async fn read(pool: &AnyPool, since: i64, until: i64) -> Result<FlowInput, StorageError> {
    Ok(FlowInput {
        since_week: since,
        until_week: until,
        steps: step_buckets(pool, since, until).await?,
        totals: action_counts(pool, since, until, false).await?,
        weekly: action_counts(pool, since, until, true).await?,
        base_totals: base_counts(pool, since, until, false).await?,
        base_weekly: base_counts(pool, since, until, true).await?,
        lead: lead_buckets(pool, since, until).await?,
        weekly_steps: week_steps(pool, since, until).await?,
    })
}

/// The requests a whole-window distinct count of the weeks `since..=until`
/// finds on both sides of `split` (the closed weeks before it and the weeks from
/// it): per type, request action and action, and per rate base. Reads the
/// steps of the weeks from `split` (one week, as [`flow::join`] is used), each
/// looking up its request's earlier steps on `flow_steps_request`.
pub async fn counted_twice(
    pool: &AnyPool,
    (since, split, until): (i64, i64, i64),
) -> Result<CountedTwice, StorageError> {
    let mut twice = CountedTwice::default();
    for row in &bind_split(sqlx::query(&twice_sql(None)), (since, split, until))
        .fetch_all(pool)
        .await?
    {
        let action: String = row.try_get("action")?;
        let Ok(action) = Action::from_str(&action) else {
            continue;
        };
        let (type_name, request_action) = group(row)?;
        twice.actions.push(ActionCountRow {
            type_name,
            request_action,
            week: 0,
            action,
            events: 0,
            requests: row.try_get("requests")?,
        });
    }
    for base in RateBase::ALL {
        let sql = twice_sql(Some(base));
        for row in &bind_split(sqlx::query(&sql), (since, split, until))
            .fetch_all(pool)
            .await?
        {
            let (type_name, request_action) = group(row)?;
            twice.bases.push(RateBaseRow {
                type_name,
                request_action,
                week: 0,
                base,
                requests: row.try_get("requests")?,
            });
        }
    }
    Ok(twice)
}

fn bind_split<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    (since, split, until): (i64, i64, i64),
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query.bind(since).bind(split).bind(until)
}

/// Requests with a step of the same action (`base` None), or of any of a
/// base's actions, on both sides of the split.
fn twice_sql(base: Option<RateBase>) -> String {
    const LATER: &str = "FROM flow_steps f WHERE f.week >= $2 AND f.week <= $3";
    // In the same group too: a step recorded before its request action was
    // filled in counts in another group, where the whole window counts it.
    const EARLIER: &str = "SELECT 1 FROM flow_steps g WHERE g.request_id = f.request_id \
         AND g.week >= $1 AND g.week < $2 AND g.type_name = f.type_name \
         AND g.request_action IS NOT DISTINCT FROM f.request_action";
    match base {
        None => format!(
            "SELECT type_name, request_action, action, COUNT(DISTINCT request_id) AS requests \
             {LATER} AND EXISTS ({EARLIER} AND g.action = f.action) \
             GROUP BY type_name, request_action, action"
        ),
        Some(base) => {
            // This build's own action names, never a caller's (as in `Read::Base`).
            let actions: Vec<String> = base
                .actions()
                .iter()
                .map(|a| format!("'{}'", a.as_str()))
                .collect();
            let actions = actions.join(", ");
            format!(
                "SELECT type_name, request_action, COUNT(DISTINCT request_id) AS requests \
                 {LATER} AND f.action IN ({actions}) \
                 AND EXISTS ({EARLIER} AND g.action IN ({actions})) \
                 GROUP BY type_name, request_action"
            )
        }
    }
}

/// How the database reads each statement of [`read`] (`EXPLAIN`, one plan per
/// statement), for tests and operators: each should name one of the covering
/// indexes and read no table whole.
pub async fn read_plans(
    conn: &mut AnyConnection,
    engine: Engine,
    (since, until): (i64, i64),
) -> Result<Vec<String>, StorageError> {
    let mut plans = Vec::new();
    for read in Read::ALL {
        let sql = format!("{} {}", explain(engine).0, read.sql());
        let rows = sqlx::query(&sql)
            .bind(since)
            .bind(until)
            .fetch_all(&mut *conn)
            .await?;
        plans.push(plan_text(&rows, engine)?);
    }
    Ok(plans)
}

/// How the database reads each statement of [`counted_twice`] (`EXPLAIN`):
/// the later weeks on a covering index, each request's earlier steps by
/// `flow_steps_by_request_action`.
pub async fn counted_twice_plans(
    conn: &mut AnyConnection,
    engine: Engine,
    split: (i64, i64, i64),
) -> Result<Vec<String>, StorageError> {
    let mut plans = Vec::new();
    let bases = std::iter::once(None).chain(RateBase::ALL.map(Some));
    for base in bases {
        let sql = format!("{} {}", explain(engine).0, twice_sql(base));
        let rows = bind_split(sqlx::query(&sql), split)
            .fetch_all(&mut *conn)
            .await?;
        plans.push(plan_text(&rows, engine)?);
    }
    Ok(plans)
}

/// The `EXPLAIN` of an engine, and the column its plan's lines are in.
fn explain(engine: Engine) -> (&'static str, &'static str) {
    match engine {
        Engine::Sqlite => ("EXPLAIN QUERY PLAN", "detail"),
        Engine::Postgres => ("EXPLAIN", "QUERY PLAN"),
    }
}

fn plan_text(rows: &[AnyRow], engine: Engine) -> Result<String, StorageError> {
    let column = explain(engine).1;
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(column))
        .collect::<Result<_, _>>()?;
    Ok(lines.join("\n"))
}

/// Each step's open requests that do `what` ranked by when they entered it
/// (oldest first), within their type and among all types, keeping only the ranks
/// `flow::is_kept_rank` names: the oldest and the middle one or two. One read of
/// `requests_state_entered_action` over the steps' entries only (the ended requests,
/// most of the table, are not read), so it costs the same at 100k requests as
/// at 100; the ranking sorts the open requests, not the table.
fn waiting_sql(what: &What) -> String {
    let steps: Vec<String> = (1..=STEPS.len()).map(|i| format!("${i}")).collect();
    let doing = match what {
        What::Creations => " AND action IS NULL".to_string(),
        What::Action(_) => format!(" AND action = ${}", STEPS.len() + 1),
        What::Every => String::new(),
    };
    format!(
        "SELECT state, type_name, entered_at, nth_of_type, of_type, nth, n FROM ( \
           SELECT state, type_name, updated_at AS entered_at, \
             ROW_NUMBER() OVER (PARTITION BY state, type_name ORDER BY updated_at) AS nth_of_type, \
             COUNT(*) OVER (PARTITION BY state, type_name) AS of_type, \
             ROW_NUMBER() OVER (PARTITION BY state ORDER BY updated_at) AS nth, \
             COUNT(*) OVER (PARTITION BY state) AS n \
           FROM requests WHERE state IN ({}){doing} \
         ) ranked \
         WHERE nth_of_type = 1 OR 2 * nth_of_type BETWEEN of_type AND of_type + 2 \
           OR nth = 1 OR 2 * nth BETWEEN n AND n + 2",
        steps.join(", ")
    )
}

/// The statement with the steps, and the action `what` names, bound.
fn waiting_query<'q>(
    sql: &'q str,
    what: &'q What,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let query = STEPS
        .into_iter()
        .fold(sqlx::query(sql), |query, step| query.bind(step.as_str()));
    match what {
        What::Action(name) => query.bind(name.as_str()),
        What::Creations | What::Every => query,
    }
}

/// The ranked rows `flow::waiting_now` turns into the "waiting now" figures, of
/// the requests that do `what`.
pub async fn waiting(pool: &AnyPool, what: &What) -> Result<Vec<WaitingRow>, StorageError> {
    let mut out = Vec::new();
    let sql = waiting_sql(what);
    for row in &waiting_query(&sql, what).fetch_all(pool).await? {
        let step = state(row, "state")?;
        let type_name: String = row.try_get("type_name")?;
        let entered_at: i64 = row.try_get("entered_at")?;
        // Each row may hold the kept rank of its type's line, of all types' or both.
        let ranks = [
            (
                Some(type_name),
                row.try_get("nth_of_type")?,
                row.try_get("of_type")?,
            ),
            (None, row.try_get("nth")?, row.try_get("n")?),
        ];
        for (type_name, nth, of) in ranks {
            if is_kept_rank(nth, of) {
                out.push(WaitingRow {
                    step,
                    type_name,
                    nth,
                    of,
                    entered_at,
                });
            }
        }
    }
    Ok(out)
}

/// How the database reads the "waiting now" figures (`EXPLAIN`), for tests and
/// operators: it should name `requests_state_entered_action` and read no table whole.
pub async fn waiting_plan(
    conn: &mut AnyConnection,
    engine: Engine,
    what: &What,
) -> Result<String, StorageError> {
    let sql = format!("{} {}", explain(engine).0, waiting_sql(what));
    let rows = waiting_query(&sql, what).fetch_all(&mut *conn).await?;
    plan_text(&rows, engine)
}
