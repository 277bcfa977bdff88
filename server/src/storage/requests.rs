use serde_json::Value;
use slipway_core::ids::{AssetId, RequestId, UserId};
use slipway_core::precheck::PrecheckReport;
use slipway_core::render::ChangeSet;
use slipway_core::state::RequestState;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use slipway_core::listing::{Cursor, ListFilter, ListPage, PageRequest};

use super::listing::{self, Conditions, ListSql};
use super::{Engine, StorageError, now_millis, parse_json, to_json};

/// Makes submissions of one type take turns, inside the caller's write
/// transaction, so each pre-check (submit key, resource name, quota) sees the
/// requests of that type committed before it. Names and quotas are per type, so
/// submissions of different types need not wait for each other. SQLite's
/// `BEGIN IMMEDIATE` already serialises every writer; PostgreSQL's default READ
/// COMMITTED does not, and two racing submissions would both pass.
pub async fn serialize_submissions(
    conn: &mut AnyConnection,
    engine: Engine,
    type_name: &str,
) -> Result<(), StorageError> {
    super::take_turn(conn, engine, super::Turn::Submissions, type_name).await
}

/// The submission turns of several types, taken in name order so that two
/// writers taking overlapping sets never wait for each other in a circle. A
/// creation takes its own type's and those of the types it requires: a
/// decommission of a required asset (which takes that type's turn) then cannot
/// pass unseen beside it.
pub async fn serialize_submissions_of(
    conn: &mut AnyConnection,
    engine: Engine,
    type_names: &[&str],
) -> Result<(), StorageError> {
    let mut names = type_names.to_vec();
    names.sort_unstable();
    names.dedup();
    for name in names {
        serialize_submissions(conn, engine, name).await?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: RequestId,
    pub type_name: String,
    pub resource_name: String,
    pub requester_id: UserId,
    pub requester: String,
    pub state: RequestState,
    pub current_revision: i64,
    pub approved_revision: Option<i64>,
    pub approved_hash: Option<String>,
    pub approved_params_hash: Option<String>,
    pub manual_owner: Option<String>,
    pub last_error: Option<String>,
    pub applied_commit: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The current revision's parameters (null while a new request has none yet):
    /// who may act on a request depends on the team they name.
    pub params: Value,
    /// The asset a day-2 action acts on, and the action; both `None` for a
    /// request that creates an asset.
    pub asset_id: Option<AssetId>,
    pub action: Option<String>,
}

macro_rules! request_columns {
    () => {
        "r.id, r.type_name, r.resource_name, r.requester_id, \
         u.username AS requester, r.state, r.current_revision, r.approved_revision, r.approved_hash, r.approved_params_hash, \
         m.username AS manual_owner, r.last_error, r.applied_commit, r.created_at, r.updated_at, \
         r.params, r.asset_id, r.action"
    };
}
macro_rules! request_from {
    () => {
        "requests r JOIN users u ON u.id = r.requester_id \
         LEFT JOIN users m ON m.id = r.manual_owner_id"
    };
}

const REQUEST_SELECT: &str = concat!("SELECT ", request_columns!(), " FROM ", request_from!());

fn request_from_row(row: &sqlx::any::AnyRow) -> Result<RequestRow, StorageError> {
    let state: String = row.try_get("state")?;
    Ok(RequestRow {
        id: RequestId(row.try_get("id")?),
        type_name: row.try_get("type_name")?,
        resource_name: row.try_get("resource_name")?,
        requester_id: UserId(row.try_get("requester_id")?),
        requester: row.try_get("requester")?,
        state: state
            .parse()
            .map_err(|_| StorageError::Corrupt(format!("unknown request state {state:?}")))?,
        current_revision: row.try_get("current_revision")?,
        approved_revision: row.try_get("approved_revision")?,
        approved_hash: row.try_get("approved_hash")?,
        approved_params_hash: row.try_get("approved_params_hash")?,
        manual_owner: row.try_get("manual_owner")?,
        last_error: row.try_get("last_error")?,
        applied_commit: row.try_get("applied_commit")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        params: match row.try_get::<Option<String>, _>("params")? {
            Some(text) => parse_json(&text, "request parameters")?,
            None => Value::Null,
        },
        asset_id: row.try_get::<Option<i64>, _>("asset_id")?.map(AssetId),
        action: row.try_get("action")?,
    })
}

pub struct NewRequest<'a> {
    pub type_name: &'a str,
    pub resource_name: &'a str,
    pub requester_id: UserId,
    pub state: RequestState,
    pub submit_key: &'a str,
    /// For a day-2 action: the asset, the action, and what the asset had
    /// deployed when it was asked for (the base of its review diff).
    pub action: Option<ActionTarget<'a>>,
}

/// The asset a new request acts on.
#[derive(Debug, Clone, Copy)]
pub struct ActionTarget<'a> {
    pub asset_id: AssetId,
    pub action: &'a str,
    pub deployed: &'a Value,
}

pub async fn insert(
    conn: &mut AnyConnection,
    new: &NewRequest<'_>,
) -> Result<RequestId, StorageError> {
    let now = now_millis();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO requests (type_name, resource_name, requester_id, state, current_revision, \
         submit_key, created_at, updated_at, asset_id, action, deployed) \
         VALUES ($1, $2, $3, $4, 1, $5, $6, $6, $7, $8, $9) RETURNING id",
    )
    .bind(new.type_name)
    .bind(new.resource_name)
    .bind(new.requester_id.0)
    .bind(new.state.as_str())
    .bind(new.submit_key)
    .bind(now)
    .bind(new.action.map(|a| a.asset_id.0))
    .bind(new.action.map(|a| a.action.to_string()))
    .bind(new.action.map(|a| to_json(a.deployed)))
    .fetch_one(&mut *conn)
    .await?;
    Ok(RequestId(id))
}

pub async fn by_submit_key(
    conn: &mut AnyConnection,
    requester: UserId,
    key: &str,
) -> Result<Option<RequestId>, StorageError> {
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM requests WHERE requester_id = $1 AND submit_key = $2")
            .bind(requester.0)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(id.map(RequestId))
}

pub async fn get(
    conn: &mut AnyConnection,
    id: RequestId,
) -> Result<Option<RequestRow>, StorageError> {
    let row = sqlx::query(&format!("{REQUEST_SELECT} WHERE r.id = $1"))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(request_from_row).transpose()
}

/// Holds the request's row until the transaction ends, so that decisions on one
/// request are taken one after the other: each then counts the ones before it.
/// (A SQLite write transaction is alone already.)
pub async fn lock(
    conn: &mut AnyConnection,
    engine: Engine,
    id: RequestId,
) -> Result<(), StorageError> {
    if engine == Engine::Postgres {
        sqlx::query("SELECT id FROM requests WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Who may see a row of a list, as the policy decides it; written into SQL below.
pub use slipway_core::policy::Reach;

/// What a list of requests is narrowed to in SQL. The service still asks the
/// policy about every row; this keeps the rows it is asked about few.
#[derive(Debug, Clone, Default)]
pub struct RequestList<'a> {
    pub filter: ListFilter,
    /// Only this person's requests.
    pub requester: Option<UserId>,
    /// Never this person's requests.
    pub not_requester: Option<UserId>,
    /// Only these states (fixed by the list, written into the SQL so a partial
    /// index on them serves it); empty means any.
    pub states: &'a [RequestState],
    /// `None`: every row; `Some(reach)`: rows any of `reach` reaches (none when empty).
    pub reach: Option<Vec<Reach>>,
}

impl RequestList<'_> {
    /// The list's SQL, or `None` when it can hold no row.
    fn sql(&self) -> Option<ListSql<'static>> {
        let mut c = Conditions::default();
        if !self.states.is_empty() {
            let names: Vec<&str> = self.states.iter().map(|s| s.as_str()).collect();
            c.push(format!("r.state IN ({})", listing::literals(&names)));
        }
        if let Some(state) = self.filter.state {
            if !self.states.is_empty() && !self.states.contains(&state) {
                return None;
            }
            let mark = c.text(state.as_str());
            c.push(format!("r.state = {mark}"));
        }
        if let Some(requester) = self.requester {
            let mark = c.int(requester.0);
            c.push(format!("r.requester_id = {mark}"));
        }
        if let Some(other) = self.not_requester {
            let mark = c.int(other.0);
            c.push(format!("r.requester_id <> {mark}"));
        }
        if let Some(reach) = &self.reach {
            let mut any = Vec::new();
            // A reach the list's own filter rules out adds nothing (and a part
            // of the list that can hold no row is not asked for at all).
            let team = self.filter.team.as_deref();
            let type_name = self.filter.type_name.as_deref();
            let excludes = |names: &[String], wanted: Option<&str>| {
                wanted.is_some_and(|wanted| !names.iter().any(|n| n == wanted))
            };
            for r in reach.iter().filter(|r| match r {
                Reach::Teams(teams) => !excludes(teams, team),
                Reach::Types(types) => !excludes(types, type_name),
                Reach::TeamsOfTypes(teams, types) => {
                    !excludes(teams, team) && !excludes(types, type_name)
                }
                Reach::Requester(_) => true,
            }) {
                match r {
                    Reach::Requester(id) => any.push(format!("r.requester_id = {}", c.int(id.0))),
                    Reach::Teams(teams) if !teams.is_empty() => {
                        any.push(format!("r.team IN ({})", c.texts(teams)));
                    }
                    Reach::Types(types) if !types.is_empty() => {
                        any.push(format!("r.type_name IN ({})", c.texts(types)));
                    }
                    Reach::TeamsOfTypes(teams, types) if !teams.is_empty() && !types.is_empty() => {
                        let teams = c.texts(teams);
                        let types = c.texts(types);
                        any.push(format!(
                            "(r.team IN ({teams}) AND r.type_name IN ({types}))"
                        ));
                    }
                    _ => {}
                }
            }
            if any.is_empty() {
                return None;
            }
            c.push(format!("({})", any.join(" OR ")));
        }
        listing::filter_conditions(&mut c, ("requests", "r"), &self.filter);
        Some(ListSql {
            columns: request_columns!(),
            from: request_from!(),
            id: "r.id",
            conditions: c,
            windowed: None,
        })
    }
}

/// One page of a list of requests, newest first. A list of several states reads
/// each state's page from the `(state, id)` index, in id order, and a list that
/// several reaches narrow (one's own, one's teams', the types one reviews) reads
/// each reach's page from its own index; the pages are merged. With `OR` between
/// them, both engines fetched every row the person may see and sorted it, at
/// every page.
pub async fn list(
    conn: &mut AnyConnection,
    list: &RequestList<'_>,
    page: PageRequest,
) -> Result<ListPage<RequestRow>, StorageError> {
    let parts = parts_of(list);
    if parts.len() == 1 {
        return one_list(conn, list, page).await;
    }
    let mut pages = Vec::with_capacity(parts.len());
    for part in &parts {
        pages.push(one_list(conn, part, page).await?);
    }
    Ok(merge(pages, page))
}

/// The most lists one page is read from: one per team or type a person's
/// reach names (each read from its `(column, id)` index in order, where an
/// `IN` of several made both engines read every row of them and sort it), as
/// long as the parts stay this few.
const MOST_PARTS: usize = 24;

/// A reach as one reach per team, per type, or per team and type it names.
fn single_values(reach: &Reach) -> Vec<Reach> {
    let one = |name: &String| vec![name.clone()];
    match reach {
        Reach::Requester(id) => vec![Reach::Requester(*id)],
        Reach::Teams(teams) => teams.iter().map(|t| Reach::Teams(one(t))).collect(),
        Reach::Types(types) => types.iter().map(|t| Reach::Types(one(t))).collect(),
        Reach::TeamsOfTypes(teams, types) => teams
            .iter()
            .flat_map(|team| {
                types
                    .iter()
                    .map(move |ty| Reach::TeamsOfTypes(one(team), one(ty)))
            })
            .collect(),
    }
}

/// The lists, each of one state and one reach, whose rows together are the list's.
fn parts_of<'a>(list: &RequestList<'a>) -> Vec<RequestList<'a>> {
    let states: Vec<&'a [RequestState]> = match list.states.len() > 1 && list.filter.state.is_none()
    {
        true => list.states.iter().map(std::slice::from_ref).collect(),
        false => vec![list.states],
    };
    let reaches: Vec<Option<Vec<Reach>>> = match &list.reach {
        Some(reach) => {
            let single: Vec<Reach> = reach.iter().flat_map(single_values).collect();
            let parts = if single.len() * states.len() <= MOST_PARTS {
                single
            } else {
                reach.clone()
            };
            parts.into_iter().map(|r| Some(vec![r])).collect()
        }
        None => vec![None],
    };
    let mut parts = Vec::with_capacity(states.len() * reaches.len());
    for states in &states {
        for reach in &reaches {
            parts.push(RequestList {
                states,
                reach: reach.clone(),
                ..list.clone()
            });
        }
    }
    parts
}

async fn one_list(
    conn: &mut AnyConnection,
    list: &RequestList<'_>,
    page: PageRequest,
) -> Result<ListPage<RequestRow>, StorageError> {
    match list.sql() {
        Some(sql) => sql.page(conn, page, request_from_row, |r| r.id.0).await,
        None => Ok(ListPage::empty()),
    }
}

/// The page of a list made of several lists' pages at the same cursor: the rows
/// nearest the cursor, and a neighbour wherever one of them has one.
fn merge(pages: Vec<ListPage<RequestRow>>, page: PageRequest) -> ListPage<RequestRow> {
    let size = usize::try_from(page.clamped_size()).unwrap_or(usize::MAX);
    let any_newer = pages.iter().any(|p| p.newer.is_some());
    let any_older = pages.iter().any(|p| p.older.is_some());
    let mut rows: Vec<RequestRow> = pages.into_iter().flat_map(|p| p.items).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.id));
    // A request may be in two reaches (one's own, in one's team).
    rows.dedup_by_key(|r| r.id);
    let more = rows.len() > size;
    let items: Vec<RequestRow> = match page.cursor {
        // Rows after the cursor: the oldest of them are nearest.
        Cursor::After(_) => rows.split_off(rows.len().saturating_sub(size)),
        Cursor::Newest | Cursor::Before(_) => {
            rows.truncate(size);
            rows
        }
    };
    let newest = items.first().map(|r| r.id.0);
    let oldest = items.last().map(|r| r.id.0);
    let (newer, older) = match page.cursor {
        Cursor::Newest => (None, oldest.filter(|_| more || any_older)),
        Cursor::Before(before) => (
            any_newer.then(|| newest.unwrap_or(before.saturating_sub(1))),
            oldest.filter(|_| more || any_older),
        ),
        Cursor::After(after) => (
            newest.filter(|_| more || any_newer),
            any_older.then(|| oldest.unwrap_or(after.saturating_add(1))),
        ),
    };
    ListPage {
        items,
        newer,
        older,
    }
}

/// How the database reads that page (`EXPLAIN`), for tests and operators.
pub async fn list_plan(
    conn: &mut AnyConnection,
    engine: Engine,
    list: &RequestList<'_>,
    page: PageRequest,
) -> Result<String, StorageError> {
    let mut plans = Vec::new();
    for part in parts_of(list) {
        if let Some(sql) = part.sql() {
            plans.push(sql.plan(conn, engine, page).await?);
        }
    }
    Ok(plans.join("\n"))
}

/// Moves the request to `to` only if it is still in `from`; false when another
/// actor moved it first, so two decisions can never both win.
/// Moves the request from `from` to `to` at the moment `at`. `updated_at` changes
/// with the state and with nothing else, so it is when the request entered its
/// state: the flow's record of each step reads it from the row instead of asking
/// `flow_steps` on every transition.
pub async fn set_state(
    conn: &mut AnyConnection,
    id: RequestId,
    (from, to): (RequestState, RequestState),
    at: i64,
) -> Result<bool, StorageError> {
    let done =
        sqlx::query("UPDATE requests SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
            .bind(to.as_str())
            .bind(at)
            .bind(id.0)
            .bind(from.as_str())
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// What an approval binds: a revision, its change set and its parameters.
#[derive(Debug, Clone, Copy)]
pub struct Approval<'a> {
    pub revision: i64,
    pub change_set_hash: &'a str,
    pub params_hash: &'a str,
}

pub async fn set_approval(
    conn: &mut AnyConnection,
    id: RequestId,
    approval: Option<Approval<'_>>,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE requests SET approved_revision = $1, approved_hash = $2, \
         approved_params_hash = $3 WHERE id = $4",
    )
    .bind(approval.map(|a| a.revision))
    .bind(approval.map(|a| a.change_set_hash.to_string()))
    .bind(approval.map(|a| a.params_hash.to_string()))
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn set_revision(
    conn: &mut AnyConnection,
    id: RequestId,
    revision: i64,
    resource_name: &str,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE requests SET current_revision = $1, resource_name = $2 WHERE id = $3")
        .bind(revision)
        .bind(resource_name)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves a request (and its asset) back in time: for `slipway dev seed`, which
/// lays a year of history down in minutes.
/// Dates a seeded request and its asset back. The asset is stamped with the
/// request's creation, not its completion: seeds make assets in the order of
/// their requests, so their times follow their ids as the product's do (a
/// list's days are read as a range of ids, see `listing::time_window`).
pub async fn backdate(
    conn: &mut AnyConnection,
    id: RequestId,
    created_at: i64,
    updated_at: i64,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE requests SET created_at = $1, updated_at = $2 WHERE id = $3")
        .bind(created_at)
        .bind(updated_at)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE assets SET created_at = $1, updated_at = $2 WHERE request_id = $3")
        .bind(created_at)
        .bind(updated_at)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_error(
    conn: &mut AnyConnection,
    id: RequestId,
    error: Option<&str>,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE requests SET last_error = $1 WHERE id = $2")
        .bind(error)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_applied_commit(
    conn: &mut AnyConnection,
    id: RequestId,
    commit: &str,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE requests SET applied_commit = $1 WHERE id = $2")
        .bind(commit)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_manual_owner(
    conn: &mut AnyConnection,
    id: RequestId,
    owner: UserId,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE requests SET manual_owner_id = $1 WHERE id = $2")
        .bind(owner.0)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct RevisionRow {
    pub revision: i64,
    pub params: Value,
    pub precheck: PrecheckReport,
    pub change_set: ChangeSet,
    pub change_set_hash: String,
    /// The catalog version of the type that rendered the change set.
    pub catalog_version: String,
    pub author: String,
    pub created_at: i64,
}

pub struct NewRevision<'a> {
    pub request_id: RequestId,
    pub revision: i64,
    pub params: &'a Value,
    /// The team and environment the parameters name, for the request's list columns.
    pub team: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub precheck: &'a PrecheckReport,
    pub change_set: &'a ChangeSet,
    pub change_set_hash: &'a str,
    pub catalog_version: &'a str,
    pub author_id: UserId,
}

pub async fn insert_revision(
    conn: &mut AnyConnection,
    rev: &NewRevision<'_>,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO request_revisions (request_id, revision, params, precheck, change_set, \
         change_set_hash, author_id, created_at, catalog_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(rev.request_id.0)
    .bind(rev.revision)
    .bind(to_json(rev.params))
    .bind(to_json(rev.precheck))
    .bind(to_json(rev.change_set))
    .bind(rev.change_set_hash)
    .bind(rev.author_id.0)
    .bind(now_millis())
    .bind(rev.catalog_version)
    .execute(&mut *conn)
    .await?;
    // Every new revision becomes the current one: the request carries its
    // parameters so lookups and lists need not join the revisions.
    sqlx::query("UPDATE requests SET params = $1, team = $2, environment = $3 WHERE id = $4")
        .bind(to_json(rev.params))
        .bind(rev.team)
        .bind(rev.environment)
        .bind(rev.request_id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

macro_rules! revision_select {
    () => {
        "SELECT v.revision, v.params, v.precheck, v.change_set, v.change_set_hash, \
         v.catalog_version, u.username AS author, v.created_at FROM request_revisions v \
         JOIN users u ON u.id = v.author_id"
    };
}

pub async fn revisions(
    conn: &mut AnyConnection,
    id: RequestId,
) -> Result<Vec<RevisionRow>, StorageError> {
    let rows = sqlx::query(concat!(
        revision_select!(),
        " WHERE v.request_id = $1 ORDER BY v.revision"
    ))
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(revision_from_row).collect()
}

/// One revision of a request, if it exists.
pub async fn revision(
    conn: &mut AnyConnection,
    id: RequestId,
    revision: i64,
) -> Result<Option<RevisionRow>, StorageError> {
    let row = sqlx::query(concat!(
        revision_select!(),
        " WHERE v.request_id = $1 AND v.revision = $2"
    ))
    .bind(id.0)
    .bind(revision)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(revision_from_row).transpose()
}

fn revision_from_row(row: &AnyRow) -> Result<RevisionRow, StorageError> {
    Ok(RevisionRow {
        revision: row.try_get("revision")?,
        params: parse_json(&row.try_get::<String, _>("params")?, "revision parameters")?,
        precheck: parse_json(&row.try_get::<String, _>("precheck")?, "revision pre-check")?,
        change_set: parse_json(&row.try_get::<String, _>("change_set")?, "change set")?,
        change_set_hash: row.try_get("change_set_hash")?,
        catalog_version: row.try_get("catalog_version")?,
        author: row.try_get("author")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn in_flight_list() -> String {
    // Fixed state names, never user input: safe to inline.
    let names: Vec<String> = RequestState::ALL
        .iter()
        .filter(|s| s.is_in_flight())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    names.join(", ")
}

/// Requests sent back for changes and left there since before `before`, oldest
/// first, at most `limit`, but `kept` action's (a template upgrade: the sweep
/// opened it, nobody's name or quota waits on it, and closing it would read as
/// the team's answer to it): read from the state's own index (few wait there).
pub async fn unrevised_since(
    conn: &mut AnyConnection,
    before: i64,
    (kept, limit): (&str, i64),
) -> Result<Vec<RequestId>, StorageError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM requests WHERE state = 'changes_requested' AND updated_at < $1 \
         AND (action IS NULL OR action <> $3) ORDER BY id LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .bind(kept)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().map(RequestId).collect())
}

/// An in-flight request that retires the asset (by one of `actions`), if any.
pub async fn retiring(
    conn: &mut AnyConnection,
    asset: AssetId,
    actions: &[&str],
) -> Result<Option<RequestId>, StorageError> {
    for action in actions {
        let id: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM requests WHERE asset_id = $1 AND action = $2 \
             AND state IN ({}) ORDER BY id LIMIT 1",
            in_flight_list()
        ))
        .bind(asset.0)
        .bind(action)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(id) = id {
            return Ok(Some(RequestId(id)));
        }
    }
    Ok(None)
}

/// An in-flight request of this type that will create a resource of this name.
pub async fn in_flight_named(
    conn: &mut AnyConnection,
    type_name: &str,
    resource_name: &str,
    exclude: Option<RequestId>,
) -> Result<Option<RequestId>, StorageError> {
    let id: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM requests WHERE type_name = $1 AND resource_name = $2 AND id <> $3 \
         AND state IN ({}) ORDER BY id LIMIT 1",
        in_flight_list()
    ))
    .bind(type_name)
    .bind(resource_name)
    .bind(exclude.map(|id| id.0).unwrap_or(-1))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id.map(RequestId))
}

/// The completed requests of `action` on an asset that had `values` (parameter
/// name and value) among their parameters, with their parameters, newest first, at
/// most `limit`. Scalar values are matched by the database, so a pre-check reads
/// only the requests that may match however long the asset's history; the caller
/// still compares what it reads (`1` and `1.0` are one number to it).
pub async fn completed_actions(
    conn: &mut AnyConnection,
    asset: AssetId,
    action: &str,
    values: &[(&str, &Value)],
    limit: i64,
) -> Result<Vec<(RequestId, Value)>, StorageError> {
    let postgres = conn.backend_name() == "PostgreSQL";
    let mut sql = String::from(
        "SELECT id, params FROM requests WHERE asset_id = $1 AND action = $2 AND state = $3",
    );
    let mut binds = Vec::new();
    for (name, value) in values {
        let Some(bind) = MatchedValue::of(value, postgres) else {
            continue;
        };
        if !slipway_core::catalog::is_plain_name(name) {
            continue;
        }
        let at = binds.len() + 4;
        sql.push_str(&match postgres {
            true => format!(" AND (params::jsonb -> '{name}') = CAST(${at} AS jsonb)"),
            false => format!(" AND json_extract(params, '$.{name}') = ${at}"),
        });
        binds.push(bind);
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", binds.len() + 4));
    let mut query = sqlx::query_as::<_, (i64, Option<String>)>(&sql)
        .bind(asset.0)
        .bind(action)
        .bind(RequestState::Completed.as_str());
    for bind in binds {
        query = match bind {
            MatchedValue::Text(text) => query.bind(text),
            MatchedValue::Number(number) => query.bind(number),
            MatchedValue::Integer(integer) => query.bind(integer),
        };
    }
    let rows = query.bind(limit).fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .map(|(id, params)| {
            let params = params
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or(Value::Null);
            (RequestId(id), params)
        })
        .collect())
}

/// A parameter's value as bound for the database to compare with a stored one:
/// PostgreSQL compares JSON values (`jsonb` numbers by value); SQLite compares
/// what `json_extract` gives (text, a number, 1 or 0 for a boolean).
enum MatchedValue {
    Text(String),
    Number(f64),
    Integer(i64),
}

impl MatchedValue {
    /// None for a value the database is not asked to match (null, a list, an
    /// object): the caller's comparison alone decides those.
    fn of(value: &Value, postgres: bool) -> Option<Self> {
        match value {
            Value::Null | Value::Array(_) | Value::Object(_) => None,
            _ if postgres => Some(MatchedValue::Text(value.to_string())),
            Value::String(text) => Some(MatchedValue::Text(text.clone())),
            Value::Number(number) => number.as_f64().map(MatchedValue::Number),
            Value::Bool(flag) => Some(MatchedValue::Integer(i64::from(*flag))),
        }
    }
}

/// Requests in flight that would create an asset of one of `type_names`, oldest
/// first: the ones that may still require an asset a retirement would take away.
pub async fn in_flight_creations_of(
    conn: &mut AnyConnection,
    type_names: &[&str],
) -> Result<Vec<(RequestId, String, Value)>, StorageError> {
    if type_names.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=type_names.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, type_name, params FROM requests WHERE action IS NULL AND type_name IN ({}) \
         AND state IN ({}) AND params IS NOT NULL ORDER BY id",
        placeholders.join(", "),
        in_flight_list()
    );
    let mut query = sqlx::query_as::<_, (i64, String, String)>(&sql);
    for name in type_names {
        query = query.bind(*name);
    }
    query
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(id, type_name, params)| {
            Ok((
                RequestId(id),
                type_name,
                parse_json(&params, "request parameters")?,
            ))
        })
        .collect()
}

/// The newest request of `action` on `asset` submitted under `submit_key`
/// (whoever submitted it) that was declined: cancelled or rejected. A request
/// of another action under the same key is not an answer to this one.
pub async fn declined_on_asset_with_key(
    conn: &mut AnyConnection,
    asset: AssetId,
    action: &str,
    submit_key: &str,
) -> Result<Option<RequestId>, StorageError> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM requests WHERE asset_id = $1 AND action = $2 AND submit_key = $3 \
         AND state IN ('cancelled', 'rejected') ORDER BY id DESC LIMIT 1",
    )
    .bind(asset.0)
    .bind(action)
    .bind(submit_key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id.map(RequestId))
}

/// The newest request that completed on an asset and rendered its files anew:
/// its creation, or a later request of one of `rendering` (the actions that
/// write the type's own outputs, its upgrade among them). A backup, which
/// writes a file beside the asset, is not one.
pub async fn last_rendering_on_asset(
    conn: &mut AnyConnection,
    asset: AssetId,
    creation: RequestId,
    rendering: &[&str],
) -> Result<RequestId, StorageError> {
    if rendering.is_empty() {
        return Ok(creation);
    }
    let placeholders: Vec<String> = (2..rendering.len() + 2).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT MAX(id) FROM requests WHERE asset_id = $1 AND state = 'completed' \
         AND action IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_scalar(&sql).bind(asset.0);
    for action in rendering {
        query = query.bind(*action);
    }
    let id: Option<i64> = query.fetch_one(&mut *conn).await?;
    Ok(id.map_or(creation, RequestId).max(creation))
}

/// The requests that completed on an asset and rendered its files anew (of
/// `rendering`, the actions writing the type's own outputs), in the order they
/// completed: a request's `updated_at` moves only with its state.
pub async fn renderings_on_asset(
    conn: &mut AnyConnection,
    asset: AssetId,
    rendering: &[&str],
) -> Result<Vec<RequestId>, StorageError> {
    if rendering.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (2..rendering.len() + 2).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id FROM requests WHERE asset_id = $1 AND state = 'completed' \
         AND action IN ({}) ORDER BY updated_at, id",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_scalar(&sql).bind(asset.0);
    for action in rendering {
        query = query.bind(*action);
    }
    let ids: Vec<i64> = query.fetch_all(&mut *conn).await?;
    Ok(ids.into_iter().map(RequestId).collect())
}

/// The change set of a request's approved revision, if it has one.
pub async fn approved_change_set(
    conn: &mut AnyConnection,
    id: RequestId,
) -> Result<Option<ChangeSet>, StorageError> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT v.change_set FROM request_revisions v JOIN requests r \
         ON r.id = v.request_id AND v.revision = r.approved_revision WHERE r.id = $1",
    )
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    text.map(|t| parse_json(&t, "change set")).transpose()
}

/// What holds a resource name of a type: an asset (whatever its state: a retired
/// one keeps its name) or else the oldest request in flight for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameHolder {
    Asset { id: i64, state: String },
    Request(RequestId),
}

/// [`NameHolder`] of `name`, leaving the request being revised out; one
/// statement, as the pre-check asks on every keystroke.
pub async fn name_holder(
    conn: &mut AnyConnection,
    type_name: &str,
    name: &str,
    exclude: Option<RequestId>,
) -> Result<Option<NameHolder>, StorageError> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(&format!(
        "SELECT 'asset' AS kind, id, state FROM assets WHERE type_name = $1 AND name = $2 \
         UNION ALL SELECT kind, id, state FROM (SELECT 'request' AS kind, id, state \
         FROM requests WHERE type_name = $1 AND resource_name = $2 AND id <> $3 \
         AND state IN ({}) ORDER BY id LIMIT 1) r",
        in_flight_list()
    ))
    .bind(type_name)
    .bind(name)
    .bind(exclude.map(|id| id.0).unwrap_or(-1))
    .fetch_all(&mut *conn)
    .await?;
    let asset = rows.iter().find(|(kind, ..)| kind == "asset");
    let request = rows.iter().find(|(kind, ..)| kind == "request");
    Ok(match (asset, request) {
        (Some((_, id, state)), _) => Some(NameHolder::Asset {
            id: *id,
            state: state.clone(),
        }),
        (None, Some((_, id, _))) => Some(NameHolder::Request(RequestId(*id))),
        (None, None) => None,
    })
}

#[derive(Debug, Clone)]
pub struct DecisionRow {
    pub revision: i64,
    pub decided_by: String,
    pub decision: String,
    pub comment: String,
    pub change_set_hash: String,
    pub voided: bool,
    pub created_at: i64,
}

pub struct NewDecision<'a> {
    pub request_id: RequestId,
    pub revision: i64,
    pub reviewer_id: Option<UserId>,
    pub decision: &'a str,
    pub comment: &'a str,
    pub change_set_hash: &'a str,
}

pub async fn insert_decision(
    conn: &mut AnyConnection,
    d: &NewDecision<'_>,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO decisions (request_id, revision, reviewer_id, decision, comment, \
         change_set_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(d.request_id.0)
    .bind(d.revision)
    .bind(d.reviewer_id.map(|id| id.0))
    .bind(d.decision)
    .bind(d.comment)
    .bind(d.change_set_hash)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A new revision voids every earlier approval: they approved other content.
pub async fn void_decisions(conn: &mut AnyConnection, id: RequestId) -> Result<u64, StorageError> {
    let done = sqlx::query("UPDATE decisions SET voided = 1 WHERE request_id = $1 AND voided = 0")
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

pub async fn decisions(
    conn: &mut AnyConnection,
    id: RequestId,
) -> Result<Vec<DecisionRow>, StorageError> {
    let rows = sqlx::query(
        "SELECT d.revision, COALESCE(u.username, 'policy') AS decided_by, d.decision, d.comment, \
         d.change_set_hash, d.voided, d.created_at FROM decisions d \
         LEFT JOIN users u ON u.id = d.reviewer_id WHERE d.request_id = $1 ORDER BY d.id",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DecisionRow {
                revision: row.try_get("revision")?,
                decided_by: row.try_get("decided_by")?,
                decision: row.try_get("decision")?,
                comment: row.try_get("comment")?,
                change_set_hash: row.try_get("change_set_hash")?,
                voided: row.try_get::<i64, _>("voided")? != 0,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

pub async fn mark_viewed(
    conn: &mut AnyConnection,
    id: RequestId,
    reviewer: UserId,
    revision: i64,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO review_views (request_id, reviewer_id, revision, first_seen_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(id.0)
    .bind(reviewer.0)
    .bind(revision)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What this reviewer has seen of a request at `revision`: whether they saw
/// that revision, and the newest revision before it that they saw.
pub async fn seen_by(
    conn: &mut AnyConnection,
    id: RequestId,
    reviewer: UserId,
    revision: i64,
) -> Result<(bool, Option<i64>), StorageError> {
    let seen: Vec<i64> = sqlx::query_scalar(
        "SELECT revision FROM review_views WHERE request_id = $1 AND reviewer_id = $2 \
         AND revision <= $3 ORDER BY revision DESC LIMIT 2",
    )
    .bind(id.0)
    .bind(reviewer.0)
    .bind(revision)
    .fetch_all(&mut *conn)
    .await?;
    let current = seen.first() == Some(&revision);
    let before = seen.into_iter().find(|&r| r < revision);
    Ok((current, before))
}

pub struct NewCheckResult<'a> {
    pub request_id: RequestId,
    pub revision: i64,
    /// The verification round of this revision (see [`next_check_attempt`]).
    pub attempt: i64,
    pub kind: &'a str,
    /// What the check looked at: a path, URL, address or command line.
    pub target: String,
    pub description: &'a str,
    pub passed: bool,
    pub detail: &'a str,
    pub tries: i64,
    pub duration_ms: i64,
}

/// The number of the next verification round of a revision: 1 the first time its
/// checks run, one more after each retry.
pub async fn next_check_attempt(
    conn: &mut AnyConnection,
    id: RequestId,
    revision: i64,
) -> Result<i64, StorageError> {
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(attempt) FROM check_results WHERE request_id = $1 AND revision = $2",
    )
    .bind(id.0)
    .bind(revision)
    .fetch_one(&mut *conn)
    .await?;
    Ok(last.unwrap_or(0) + 1)
}

/// Records the results of one verification round, in one statement.
pub async fn insert_checks(
    conn: &mut AnyConnection,
    checks: &[NewCheckResult<'_>],
) -> Result<(), StorageError> {
    const COLUMNS: usize = 10;
    if checks.is_empty() {
        return Ok(());
    }
    let rows = (0..checks.len())
        .map(|i| {
            let slots: Vec<String> = (1..=COLUMNS)
                .map(|c| format!("${}", i * COLUMNS + c))
                .collect();
            format!("({}, ${})", slots.join(", "), checks.len() * COLUMNS + 1)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO check_results (request_id, revision, attempt, kind, target, description, \
         passed, detail, tries, duration_ms, created_at) VALUES {rows}"
    );
    let mut query = sqlx::query(&sql);
    for c in checks {
        query = query
            .bind(c.request_id.0)
            .bind(c.revision)
            .bind(c.attempt)
            .bind(c.kind)
            .bind(c.target.as_str())
            .bind(c.description)
            .bind(i64::from(c.passed))
            .bind(c.detail)
            .bind(c.tries)
            .bind(c.duration_ms);
    }
    query.bind(now_millis()).execute(&mut *conn).await?;
    Ok(())
}

pub struct CheckRow {
    pub revision: i64,
    pub attempt: i64,
    pub kind: String,
    pub target: String,
    pub description: String,
    pub passed: bool,
    pub detail: String,
    pub tries: i64,
    pub duration_ms: i64,
    pub created_at: i64,
}

pub async fn checks(
    conn: &mut AnyConnection,
    id: RequestId,
) -> Result<Vec<CheckRow>, StorageError> {
    let rows = sqlx::query(
        "SELECT revision, attempt, kind, target, description, passed, detail, tries, \
         duration_ms, created_at FROM check_results WHERE request_id = $1 ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CheckRow {
                revision: row.try_get("revision")?,
                attempt: row.try_get("attempt")?,
                kind: row.try_get("kind")?,
                target: row.try_get("target")?,
                description: row.try_get("description")?,
                passed: row.try_get::<i64, _>("passed")? != 0,
                detail: row.try_get("detail")?,
                tries: row.try_get("tries")?,
                duration_ms: row.try_get("duration_ms")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// How many requests each type has in each state, for the metrics: one pass over
/// the `requests_type` index (type, state), never over the rows.
pub async fn count_by_type_and_state(
    conn: &mut AnyConnection,
) -> Result<Vec<(String, String, i64)>, StorageError> {
    Ok(sqlx::query_as(
        "SELECT type_name, state, COUNT(*) FROM requests GROUP BY type_name, state \
         ORDER BY type_name, state",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// What the asset had deployed when a day-2 action on it was asked for; `None`
/// for a request that creates an asset.
pub async fn deployed(
    conn: &mut AnyConnection,
    id: RequestId,
) -> Result<Option<Value>, StorageError> {
    let text: Option<String> = sqlx::query_scalar("SELECT deployed FROM requests WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    text.map(|t| parse_json(&t, "deployed state")).transpose()
}

/// One request against an asset, as its page lists them.
#[derive(Debug, Clone)]
pub struct AssetRequestRow {
    pub id: RequestId,
    pub action: Option<String>,
    pub state: String,
    pub requester: String,
    pub created_at: i64,
}

/// Who asked for an asset and for the actions on it: the first request's
/// requester, then the others', newest first, each once (at most `limit`).
pub async fn requesters_of_asset(
    conn: &mut AnyConnection,
    asset: AssetId,
    first_request: RequestId,
    limit: i64,
) -> Result<Vec<UserId>, StorageError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT requester_id FROM requests WHERE id = $1 OR asset_id = $2 \
         GROUP BY requester_id ORDER BY MAX(CASE WHEN id = $1 THEN 1 ELSE 0 END) DESC, MAX(id) DESC \
         LIMIT $3",
    )
    .bind(first_request.0)
    .bind(asset.0)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// The requests that acted on an asset, newest first (at most `limit`).
pub async fn for_asset(
    conn: &mut AnyConnection,
    asset: AssetId,
    limit: i64,
) -> Result<Vec<AssetRequestRow>, StorageError> {
    let rows = sqlx::query(
        "SELECT r.id, r.action, r.state, u.username, r.created_at FROM requests r \
         JOIN users u ON u.id = r.requester_id WHERE r.asset_id = $1 ORDER BY r.id DESC LIMIT $2",
    )
    .bind(asset.0)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AssetRequestRow {
                id: RequestId(row.try_get(0)?),
                action: row.try_get(1)?,
                state: row.try_get(2)?,
                requester: row.try_get(3)?,
                created_at: row.try_get(4)?,
            })
        })
        .collect()
}
