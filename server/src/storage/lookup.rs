//! The pre-check's requirement lookups as indexed queries. Which parameters a
//! requirement matches on comes from the catalog ([`Catalog::lookups`]); at start
//! [`sync`] keeps one partial expression index per lookup on `assets` (active ones)
//! and on `requests` (in-flight ones), so a pre-check reads only matching rows,
//! however many are stored. [`sync`] also rebuilds the quota counters.
//!
//! Parameter and type names are written into the SQL (an index cannot take bind
//! parameters, and a query must repeat the index's expressions to use it). The
//! catalog loader admits only plain identifiers as lookup parameters; type names
//! are quoted as SQL strings besides.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use slipway_core::catalog::{Catalog, Lookup, is_plain_name};
use slipway_core::state::RequestState;
use sqlx::{AnyConnection, Row};

use super::assets::{ACTIVE, AssetRow};
use super::quota::Recount;
use super::{Db, Engine, StorageError};

const INDEX_PREFIX: &str = "lookup_";
/// Held while indexes change, so replicas starting together take turns.
const SYNC_LOCK: i64 = 7105003;

/// The two places a lookup reads: what exists and what is on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holders {
    Assets,
    Requests,
}

impl Holders {
    fn table(self) -> &'static str {
        match self {
            Holders::Assets => "assets",
            Holders::Requests => "requests",
        }
    }

    /// Rows that hold quota and satisfy requirements, as an SQL condition.
    fn condition(self, type_name: &str) -> String {
        let state = match self {
            Holders::Assets => format!("state = {}", sql_string(ACTIVE)),
            Holders::Requests => format!("state IN ({})", in_flight_states()),
        };
        format!("type_name = {} AND {state}", sql_string(type_name))
    }
}

fn in_flight_states() -> String {
    let names: Vec<String> = RequestState::ALL
        .iter()
        .filter(|s| s.is_in_flight())
        .map(|s| sql_string(s.as_str()))
        .collect();
    names.join(", ")
}

fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A parameter as the text the pre-check compares (strings as they are, integers
/// in decimal).
fn key_expr(engine: Engine, param: &str) -> String {
    match engine {
        Engine::Sqlite => format!("CAST(json_extract(params, '$.{param}') AS TEXT)"),
        Engine::Postgres => format!("(params::jsonb ->> '{param}')"),
    }
}

fn check_names(lookup: &Lookup) -> Result<(), StorageError> {
    match lookup.keys.iter().find(|n| !is_plain_name(n)) {
        Some(bad) => Err(StorageError::Corrupt(format!(
            "lookup parameter {bad:?} of {} is not a plain name",
            lookup.type_name
        ))),
        None => Ok(()),
    }
}

/// The index serving `lookup` on `holders`: its name (derived from its definition,
/// so a changed definition gets a new index) and its statement.
fn index_for(engine: Engine, lookup: &Lookup, holders: Holders) -> (String, String) {
    // The id last: a lookup wants the oldest match, and equal keys then come in id
    // order, so the first entry answers it (without it PostgreSQL read and sorted
    // every match, 1,935 namespaces of one team and environment at 100k requests).
    let columns: Vec<String> = lookup
        .keys
        .iter()
        .map(|k| key_expr(engine, k))
        .chain(["id".to_string()])
        .collect();
    let definition = format!(
        "ON {} ({}) WHERE {}",
        holders.table(),
        columns.join(", "),
        holders.condition(&lookup.type_name)
    );
    let digest = hex::encode(Sha256::digest(definition.as_bytes()));
    let name = format!("{INDEX_PREFIX}{}_{}", holders.table(), &digest[..16]);
    let statement = format!("CREATE INDEX IF NOT EXISTS {name} {definition}");
    (name, statement)
}

/// Creates the index of every lookup the catalog makes and drops those of lookups
/// it no longer makes; fills the team and environment columns lists filter on;
/// recounts quota usage of the types `counters` names. Returns how many types
/// were recounted.
pub async fn sync(db: &Db, catalog: &Catalog, counters: Recount) -> Result<usize, StorageError> {
    let mut tx = db.write().await?;
    if db.engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SYNC_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    let mut wanted = BTreeSet::new();
    for lookup in catalog.lookups() {
        check_names(&lookup)?;
        for holders in [Holders::Assets, Holders::Requests] {
            let (name, statement) = index_for(db.engine, &lookup, holders);
            sqlx::query(&statement).execute(&mut *tx).await?;
            wanted.insert(name);
        }
    }
    for stale in existing_indexes(&mut tx, db.engine).await? {
        if !wanted.contains(&stale) {
            sqlx::query(&format!("DROP INDEX IF EXISTS {stale}"))
                .execute(&mut *tx)
                .await?;
        }
    }
    fill_listing_columns(&mut tx, db.engine, catalog).await?;
    let deploys_nothing: Vec<&str> = catalog
        .types
        .values()
        .filter(|ty| !ty.commits_to_gitops())
        .map(|ty| ty.name.as_str())
        .collect();
    super::assets::forget_paths_of_types(&mut tx, &deploys_nothing).await?;
    let recounted = super::quota::recount(&mut tx, db.engine, catalog, counters).await?;
    tx.commit().await?;
    Ok(recounted)
}

async fn existing_indexes(
    conn: &mut AnyConnection,
    engine: Engine,
) -> Result<Vec<String>, StorageError> {
    let sql = match engine {
        Engine::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'lookup\\_%' ESCAPE '\\'"
        }
        Engine::Postgres => {
            "SELECT indexname::text AS name FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname LIKE 'lookup\\_%' ESCAPE '\\'"
        }
    };
    Ok(sqlx::query_scalar(sql).fetch_all(&mut *conn).await?)
}

/// The team and environment columns follow the parameters the catalog names for
/// them (`owner_param`, `environment_param`); rows already right are not touched.
async fn fill_listing_columns(
    conn: &mut AnyConnection,
    engine: Engine,
    catalog: &Catalog,
) -> Result<(), StorageError> {
    let differs = match engine {
        Engine::Sqlite => "IS NOT",
        Engine::Postgres => "IS DISTINCT FROM",
    };
    for ty in catalog.types.values() {
        let columns = [
            ("team", ty.owner_param.as_ref().map(|o| o.param.as_str())),
            ("environment", ty.environment_param.as_deref()),
        ];
        for (column, param) in columns {
            let value = match param.filter(|p| is_plain_name(p)) {
                Some(param) => key_expr(engine, param),
                None => "NULL".to_string(),
            };
            for table in ["requests", "assets"] {
                sqlx::query(&format!(
                    "UPDATE {table} SET {column} = {value} WHERE type_name = $1 \
                     AND params IS NOT NULL AND {column} {differs} {value}"
                ))
                .bind(&ty.name)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

/// Equality on every key of `lookup`, binding from `$first` on.
fn key_conditions(engine: Engine, lookup: &Lookup, first: usize) -> String {
    lookup
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!(" AND {} = ${}", key_expr(engine, k), first + i))
        .collect()
}

/// The oldest active asset of the lookup's type whose keys equal `values`.
pub async fn find_asset(
    conn: &mut AnyConnection,
    engine: Engine,
    lookup: &Lookup,
    values: &[String],
) -> Result<Option<AssetRow>, StorageError> {
    check_names(lookup)?;
    let sql = oldest_asset_statement(lookup, &key_conditions(engine, lookup, 1));
    let mut query = sqlx::query(&sql);
    for value in values {
        query = query.bind(value);
    }
    let row = query.fetch_optional(&mut *conn).await?;
    row.as_ref().map(super::assets::asset_from_row).transpose()
}

/// The statement reading the oldest active asset of the lookup's type that meets
/// `keys` (` AND …` conditions on its keys).
fn oldest_asset_statement(lookup: &Lookup, keys: &str) -> String {
    format!(
        "SELECT {} FROM assets WHERE {}{keys} ORDER BY id LIMIT 1",
        super::assets::ASSET_COLUMNS,
        Holders::Assets.condition(&lookup.type_name),
    )
}

/// How the database answers each of the catalog's lookups (its query plan), for
/// tests and for `EXPLAIN`-minded operators: every plan should name a `lookup_`
/// index.
pub async fn plans(
    conn: &mut AnyConnection,
    engine: Engine,
    catalog: &Catalog,
) -> Result<Vec<(Lookup, String)>, StorageError> {
    let explain = match engine {
        Engine::Sqlite => "EXPLAIN QUERY PLAN",
        Engine::Postgres => "EXPLAIN",
    };
    let mut plans = Vec::new();
    for lookup in catalog.lookups() {
        check_names(&lookup)?;
        let literals: String = lookup
            .keys
            .iter()
            .map(|k| format!(" AND {} = 'x'", key_expr(engine, k)))
            .collect();
        for holders in [Holders::Assets, Holders::Requests] {
            let sql = match holders {
                Holders::Assets => {
                    format!("{explain} {}", oldest_asset_statement(&lookup, &literals))
                }
                Holders::Requests => format!(
                    "{explain} SELECT id FROM {} WHERE {}{literals}",
                    holders.table(),
                    holders.condition(&lookup.type_name)
                ),
            };
            let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
            let column = match engine {
                Engine::Sqlite => "detail",
                Engine::Postgres => "QUERY PLAN",
            };
            let text: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>(column))
                .collect::<Result<_, _>>()?;
            plans.push((lookup.clone(), text.join("\n")));
        }
    }
    Ok(plans)
}
