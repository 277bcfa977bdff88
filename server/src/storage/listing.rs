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
}

impl ListSql<'_> {
    /// The statement that reads `page` (one row more than its size).
    fn statement(&self, page: PageRequest) -> (String, Conditions) {
        let mut conditions = self.conditions.clone();
        let id = self.id;
        let order = match page.cursor {
            Cursor::Newest => "DESC",
            Cursor::Before(before) => {
                let mark = conditions.int(before);
                conditions.push(format!("{id} < {mark}"));
                "DESC"
            }
            Cursor::After(after) => {
                let mark = conditions.int(after);
                conditions.push(format!("{id} > {mark}"));
                "ASC"
            }
        };
        let limit = i64::from(page.clamped_size()) + 1;
        let sql = format!(
            "SELECT {} FROM {}{} ORDER BY {id} {order} LIMIT {limit}",
            self.columns,
            self.from,
            conditions.where_clause()
        );
        (sql, conditions)
    }

    /// Reads one page; `key` gives a row's id.
    pub async fn page<T>(
        &self,
        conn: &mut AnyConnection,
        page: PageRequest,
        read: impl Fn(&AnyRow) -> Result<T, StorageError>,
        key: impl Fn(&T) -> i64,
    ) -> Result<ListPage<T>, StorageError> {
        let (sql, conditions) = self.statement(page);
        let rows = conditions
            .bind(sqlx::query(&sql))
            .fetch_all(&mut *conn)
            .await?;
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
        let op = if newer { ">" } else { "<" };
        conditions.push(format!("{} {op} {mark}", self.id));
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

    /// How the database would read `page`: the plan of the page's statement.
    pub async fn plan(
        &self,
        conn: &mut AnyConnection,
        engine: Engine,
        page: PageRequest,
    ) -> Result<String, StorageError> {
        let (sql, conditions) = self.statement(page);
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

/// The filters every list shares, on the columns of `alias` (`type_name`, `team`,
/// `environment`, `created_at`).
pub(crate) fn filter_conditions(c: &mut Conditions, alias: &str, filter: &ListFilter) {
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
    if let Some(from) = filter.created_from {
        let mark = c.int(from.start_millis());
        c.push(format!("{alias}.created_at >= {mark}"));
    }
    if let Some(to) = filter.created_to {
        let mark = c.int(to.end_millis());
        c.push(format!("{alias}.created_at < {mark}"));
    }
}
