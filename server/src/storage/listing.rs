//! Keyset pages for the lists: a `WHERE` built from the conditions a list asks for
//! (only those given, so each engine's planner sees plain equalities and ranges it
//! can answer from an index), newest first by id, one row more than the page to
//! know whether more follow, and a one-row probe for the other direction.

use slipway_core::listing::{Cursor, ListFilter, ListPage, PageRequest};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

use super::{Engine, StorageError};

#[derive(Debug, Clone)]
enum Bind {
    Int(i64),
    Text(String),
}

/// Conditions joined with `AND`, and the values they bind, numbered in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conditions {
    parts: Vec<String>,
    binds: Vec<Bind>,
}

impl Conditions {
    /// A placeholder bound to `value`.
    pub fn text(&mut self, value: impl Into<String>) -> String {
        self.binds.push(Bind::Text(value.into()));
        format!("${}", self.binds.len())
    }

    pub fn int(&mut self, value: i64) -> String {
        self.binds.push(Bind::Int(value));
        format!("${}", self.binds.len())
    }

    /// Placeholders for each of `values`, comma-separated (for `IN (…)`).
    pub fn texts<S: AsRef<str>>(&mut self, values: &[S]) -> String {
        let marks: Vec<String> = values.iter().map(|v| self.text(v.as_ref())).collect();
        marks.join(", ")
    }

    pub fn push(&mut self, condition: impl Into<String>) {
        self.parts.push(condition.into());
    }

    pub fn where_clause(&self) -> String {
        if self.parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.parts.join(" AND "))
        }
    }

    pub fn bind<'q>(
        &self,
        mut query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        for bind in &self.binds {
            query = match bind {
                Bind::Int(n) => query.bind(*n),
                Bind::Text(t) => query.bind(t.clone()),
            };
        }
        query
    }
}

/// One list's query: the columns it selects, the tables it reads (the first one
/// aliased so `id` names the row's id), and its conditions.
pub(crate) struct ListSql<'a> {
    pub columns: &'a str,
    pub from: &'a str,
    /// The id column, e.g. `r.id`.
    pub id: &'a str,
    pub conditions: Conditions,
    /// A condition whose matches PostgreSQL cannot count ahead (a prefix text
    /// search: it guesses three rows where thousands match, so it reads every match
    /// from the text index and sorts them, 17,000 at 100k assets). It is tried
    /// first over the [`WINDOW`] rows nearest the cursor, walking the id index, and
    /// over the whole list only when those hold less than the page: a common
    /// match is found near the cursor, a rare one is cheap to read whole. Its
    /// value is already bound in `conditions`.
    pub windowed: Option<String>,
}

/// Rows a windowed condition is first tried on (see [`ListSql::windowed`]).
pub const WINDOW: i64 = 1000;

impl ListSql<'_> {
    /// The statement that reads `page` (one row more than its size).
    fn statement(&self, page: PageRequest) -> (String, Conditions) {
        let mut conditions = self.conditions.clone();
        let (id, order) = (self.id, self.near_cursor(&mut conditions, page));
        if let Some(windowed) = &self.windowed {
            conditions.push(windowed.clone());
        }
        let sql = format!(
            "SELECT {} FROM {}{} ORDER BY {id} {order} LIMIT {}",
            self.columns,
            self.from,
            conditions.where_clause(),
            page_limit(page)
        );
        (sql, conditions)
    }

    /// The statement that reads `page` from the rows nearest the cursor only, when
    /// the list has a windowed condition.
    fn window_statement(&self, page: PageRequest) -> Option<(String, Conditions)> {
        let windowed = self.windowed.as_deref()?;
        let mut conditions = self.conditions.clone();
        let (id, order) = (self.id, self.near_cursor(&mut conditions, page));
        let sql = format!(
            "SELECT {} FROM ({}) {} WHERE {windowed} ORDER BY {id} {order} LIMIT {}",
            self.columns,
            self.window(&conditions, order),
            self.alias(),
            page_limit(page)
        );
        Some((sql, conditions))
    }

    /// The [`WINDOW`] rows of the list's first table nearest the cursor, under the
    /// other conditions, in the page's order.
    fn window(&self, conditions: &Conditions, order: &str) -> String {
        format!(
            "SELECT {}.* FROM {}{} ORDER BY {} {order} LIMIT {WINDOW}",
            self.alias(),
            self.from,
            conditions.where_clause(),
            self.id
        )
    }

    /// The alias of the table whose id orders the list (`a` of `a.id`).
    fn alias(&self) -> &str {
        self.id
            .split_once('.')
            .map_or(self.from, |(alias, _)| alias)
    }

    /// Adds the cursor's condition; returns the order that reads from it outwards.
    fn near_cursor(&self, conditions: &mut Conditions, page: PageRequest) -> &'static str {
        match page.cursor {
            Cursor::Newest => "DESC",
            Cursor::Before(before) => {
                let mark = conditions.int(before);
                conditions.push(format!("{} < {mark}", self.id));
                "DESC"
            }
            Cursor::After(after) => {
                let mark = conditions.int(after);
                conditions.push(format!("{} > {mark}", self.id));
                "ASC"
            }
        }
    }

    /// The page's rows: from the window first when the list has one and the window
    /// fills the page, else from the whole list.
    async fn rows(
        &self,
        conn: &mut AnyConnection,
        page: PageRequest,
    ) -> Result<Vec<AnyRow>, StorageError> {
        if let Some((sql, conditions)) = self.window_statement(page) {
            let rows = conditions
                .bind(sqlx::query(&sql))
                .fetch_all(&mut *conn)
                .await?;
            if i64::try_from(rows.len()).is_ok_and(|n| n == page_limit(page)) {
                return Ok(rows);
            }
        }
        let (sql, conditions) = self.statement(page);
        Ok(conditions
            .bind(sqlx::query(&sql))
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Reads one page; `key` gives a row's id.
    pub async fn page<T>(
        &self,
        conn: &mut AnyConnection,
        page: PageRequest,
        read: impl Fn(&AnyRow) -> Result<T, StorageError>,
        key: impl Fn(&T) -> i64,
    ) -> Result<ListPage<T>, StorageError> {
        let rows = self.rows(conn, page).await?;
        let size = usize::try_from(page.clamped_size()).unwrap_or(usize::MAX);
        let more = rows.len() > size;
        let mut items = rows
            .iter()
            .take(size)
            .map(read)
            .collect::<Result<Vec<T>, _>>()?;
        if matches!(page.cursor, Cursor::After(_)) {
            items.reverse();
        }
        let newest = items.first().map(&key);
        let oldest = items.last().map(&key);
        let (newer, older) = match page.cursor {
            Cursor::Newest => (None, oldest.filter(|_| more)),
            Cursor::Before(before) => {
                // Rows at or after the cursor were on the page the reader came from.
                let pivot = newest.unwrap_or(before.saturating_sub(1));
                let newer = self.any_beyond(conn, pivot, true).await?.then_some(pivot);
                (newer, oldest.filter(|_| more))
            }
            Cursor::After(after) => {
                let pivot = oldest.unwrap_or(after.saturating_add(1));
                let older = self.any_beyond(conn, pivot, false).await?.then_some(pivot);
                (newest.filter(|_| more), older)
            }
        };
        Ok(ListPage {
            items,
            newer,
            older,
        })
    }

    /// Whether a row of this list lies beyond `pivot`: newer (`true`) or older.
    async fn any_beyond(
        &self,
        conn: &mut AnyConnection,
        pivot: i64,
        newer: bool,
    ) -> Result<bool, StorageError> {
        let mut conditions = self.conditions.clone();
        let mark = conditions.int(pivot);
        let (op, order) = if newer { (">", "ASC") } else { ("<", "DESC") };
        conditions.push(format!("{} {op} {mark}", self.id));
        if let Some(windowed) = &self.windowed {
            let sql = format!(
                "SELECT 1 AS one FROM ({}) {} WHERE {windowed} LIMIT 1",
                self.window(&conditions, order),
                self.alias()
            );
            let near = conditions
                .bind(sqlx::query(&sql))
                .fetch_optional(&mut *conn)
                .await?;
            if near.is_some() {
                return Ok(true);
            }
            conditions.push(windowed.clone());
        }
        let sql = format!(
            "SELECT 1 AS one FROM {}{} LIMIT 1",
            self.from,
            conditions.where_clause()
        );
        let row = conditions
            .bind(sqlx::query(&sql))
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.is_some())
    }

    /// How the database would read `page`: the plan of each statement it may run
    /// (a window's first).
    pub async fn plan(
        &self,
        conn: &mut AnyConnection,
        engine: Engine,
        page: PageRequest,
    ) -> Result<String, StorageError> {
        let mut plans = Vec::new();
        if let Some(window) = self.window_statement(page) {
            plans.push(explain(conn, engine, window).await?);
        }
        plans.push(explain(conn, engine, self.statement(page)).await?);
        Ok(plans.join("\n"))
    }
}

/// The plan of one statement, a line per step.
async fn explain(
    conn: &mut AnyConnection,
    engine: Engine,
    (sql, conditions): (String, Conditions),
) -> Result<String, StorageError> {
    let (explain, column) = match engine {
        Engine::Sqlite => ("EXPLAIN QUERY PLAN", "detail"),
        Engine::Postgres => ("EXPLAIN", "QUERY PLAN"),
    };
    let rows = conditions
        .bind(sqlx::query(&format!("{explain} {sql}")))
        .fetch_all(&mut *conn)
        .await?;
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(column))
        .collect::<Result<_, _>>()?;
    Ok(lines.join("\n"))
}

/// The statement's `LIMIT`: one row more than the page, to know whether more follow.
fn page_limit(page: PageRequest) -> i64 {
    i64::from(page.clamped_size()) + 1
}

/// A fixed list of names written into the SQL as string literals (never user
/// input: the caller passes names the code owns, such as request states), so a
/// partial index whose condition names them serves the query.
pub(crate) fn literals(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{}'", n.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The filters every list shares, on the columns of `table` named `alias`
/// (`type_name`, `team`, `environment`, `created_at`).
pub(crate) fn filter_conditions(
    c: &mut Conditions,
    (table, alias): (&str, &str),
    filter: &ListFilter,
) {
    for (column, value) in [
        ("type_name", &filter.type_name),
        ("team", &filter.team),
        ("environment", &filter.environment),
    ] {
        if let Some(value) = value {
            let mark = c.text(value.as_str());
            c.push(format!("{alias}.{column} = {mark}"));
        }
    }
    let days = (
        filter.created_from.map(|d| d.start_millis()),
        filter.created_to.map(|d| d.end_millis()),
    );
    time_window(c, (table, &format!("{alias}."), "id", "created_at"), days);
}

/// How far apart two rows written one after the other may be stamped, against
/// their order: a transaction's length, a clock stepped back, replicas' clocks
/// apart (a row is stamped when it is inserted, by its id's order). A day is far
/// past any of them, and costs a page a day's rows more to walk at most.
const CLOCK_SLACK_MS: i64 = 24 * 60 * 60 * 1000;

/// Keeps the rows of `table` whose `time` is in `[from, to)`, as bounds on its
/// `id` besides: a page walks an id index (the table's own, or a filter's
/// `(column, id)`) newest first, and with the times alone it walked every row
/// newer than the window, or read the whole window by its time index and
/// sorted it (a month of a million audit events at each click). Ids follow
/// time up to [`CLOCK_SLACK_MS`]: every row before the last one stamped before
/// `from - slack` is too old, every row from the first one stamped at or after
/// `to + slack` too new. Each bound is one step into the time index. The times
/// stay as conditions (written `+time`, so that no engine reads the window by
/// the time index and sorts it instead of walking ids).
pub(crate) fn time_window(
    c: &mut Conditions,
    (table, prefix, id, time): (&str, &str, &str, &str),
    (from, to): (Option<i64>, Option<i64>),
) {
    if let Some(from) = from {
        let before = c.int(from.saturating_sub(CLOCK_SLACK_MS));
        let at = c.int(from);
        c.push(format!(
            "{prefix}{id} > COALESCE((SELECT bound.{id} FROM {table} bound \
             WHERE bound.{time} < {before} ORDER BY bound.{time} DESC LIMIT 1), -1)"
        ));
        c.push(format!("+{prefix}{time} >= {at}"));
    }
    if let Some(to) = to {
        let after = c.int(to.saturating_add(CLOCK_SLACK_MS));
        let at = c.int(to);
        c.push(format!(
            "{prefix}{id} < COALESCE((SELECT bound.{id} FROM {table} bound \
             WHERE bound.{time} >= {after} ORDER BY bound.{time} LIMIT 1), {})",
            i64::MAX
        ));
        c.push(format!("+{prefix}{time} < {at}"));
    }
}
