//! Quota usage as counters, kept in the same transaction as every change that
//! moves a holder (an active asset or an in-flight request) into or out of a
//! scope. A pre-check reads one row per rule, however much is stored.
//!
//! The counters are a cache of what the rows say: [`recount`] rebuilds them from
//! the rows at start for the types whose counted rules changed, holding the table
//! lock so no change lands half-counted.

use std::collections::BTreeMap;

use serde_json::Value;
use slipway_core::catalog::{Catalog, QuotaRule, ResourceType};
use slipway_core::precheck::QuotaUsage;
use slipway_core::state::RequestState;
use slipway_core::validate::whole_number;
use sqlx::{AnyConnection, Row};

use super::{Engine, StorageError, parse_json};

/// The rule's identity in the table: its scope parameters and what it sums.
fn rule_key(rule: &QuotaRule) -> String {
    format!(
        "{}|{}",
        rule.per.join(","),
        rule.sum.as_deref().unwrap_or("")
    )
}

/// A scope parameter as the text a quota compares: strings as they are, numbers
/// in decimal (the loader admits only string and integer scope parameters).
fn scope_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The scope these parameters fall in under `rule`; none when a scope parameter
/// is missing (such a holder counts nowhere, as before counters).
pub fn scope_of(rule: &QuotaRule, params: &Value) -> Option<String> {
    let values = rule
        .per
        .iter()
        .map(|p| params.get(p).and_then(scope_text))
        .collect::<Option<Vec<String>>>()?;
    Some(super::to_json(&values))
}

fn amount_of(rule: &QuotaRule, params: &Value) -> i64 {
    rule.sum
        .as_ref()
        .and_then(|s| params.get(s))
        .and_then(whole_number)
        .unwrap_or(0)
}

/// Counter moves of one type, keyed by rule and scope: holders and total to add.
type Moves = Vec<((String, String), (i64, i64))>;

/// Rows per statement when many counters move at once (a recount): well under
/// either engine's limit on bound parameters.
const MOVES_PER_STATEMENT: usize = 500;

/// Adds each move to its counter, creating it at zero first; one statement per
/// few hundred counters. No counter may appear twice among the moves (PostgreSQL
/// refuses to touch a row twice in one statement).
async fn add_all(
    conn: &mut AnyConnection,
    type_name: &str,
    moves: &Moves,
) -> Result<(), StorageError> {
    for chunk in moves.chunks(MOVES_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let at = 2 + i * 4;
                format!("($1, ${at}, ${}, ${}, ${})", at + 1, at + 2, at + 3)
            })
            .collect();
        let sql = format!(
            "INSERT INTO quota_usage (type_name, rule, scope, holders, total) VALUES {} \
             ON CONFLICT (type_name, rule, scope) DO UPDATE \
             SET holders = quota_usage.holders + excluded.holders, \
             total = quota_usage.total + excluded.total",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(type_name);
        for ((rule, scope), (holders, total)) in chunk {
            query = query.bind(rule).bind(scope).bind(*holders).bind(*total);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A holder with these parameters starts (`+1`) or stops (`-1`) counting, under
/// every rule of its type in one statement (each rule keys its own counter).
pub async fn adjust(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    params: &Value,
    sign: i64,
) -> Result<(), StorageError> {
    let moves: Moves = holder_moves(ty, params, sign).into_iter().collect();
    add_all(conn, &ty.name, &moves).await
}

/// What one holder moves, per counter. Two rules that differ only in their limit
/// share a counter, which counts the holder once.
fn holder_moves(
    ty: &ResourceType,
    params: &Value,
    sign: i64,
) -> BTreeMap<(String, String), (i64, i64)> {
    ty.quota
        .iter()
        .filter_map(|rule| {
            let scope = scope_of(rule, params)?;
            Some((
                (rule_key(rule), scope),
                (sign, sign * amount_of(rule, params)),
            ))
        })
        .collect()
}

/// What a request for an action on an asset holds while in flight, per counter:
/// only what the action adds to the asset (the asset holds the rest itself). A
/// shrink holds nothing and frees nothing before it is done, so no other request
/// can spend room that a failed shrink would not give back.
fn increase_moves(
    ty: &ResourceType,
    asset: &Value,
    after: &Value,
) -> BTreeMap<(String, String), (i64, i64)> {
    let before = holder_moves(ty, asset, 1);
    holder_moves(ty, after, 1)
        .into_iter()
        .filter_map(|(key, (holders, total))| {
            let (had, held) = before.get(&key).copied().unwrap_or_default();
            let increase = ((holders - had).max(0), total.saturating_sub(held).max(0));
            (increase != (0, 0)).then_some((key, increase))
        })
        .collect()
}

/// A request for an action that would take an asset from `asset` to `after`
/// starts (`+1`) or stops (`-1`) holding the increase, in one statement.
pub async fn reserve(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    (asset, after): (&Value, &Value),
    sign: i64,
) -> Result<(), StorageError> {
    let moves: Moves = increase_moves(ty, asset, after)
        .into_iter()
        .map(|(key, (holders, total))| (key, (sign * holders, sign * total)))
        .collect();
    add_all(conn, &ty.name, &moves).await
}

/// What `scope` holds under the type's rule `rule_index` besides `asset` itself
/// (when it counts there) and the increase that a request for an action on it,
/// in flight with the parameters `reserved`, already holds: the room an action on
/// the asset may use.
pub fn without_asset(
    ty: &ResourceType,
    (rule_index, scope): (usize, &str),
    usage: QuotaUsage,
    asset: &Value,
    reserved: Option<&Value>,
) -> QuotaUsage {
    let Some(rule) = ty.quota.get(rule_index) else {
        return usage;
    };
    let key = (rule_key(rule), scope.to_string());
    let held = holder_moves(ty, asset, 1).get(&key).copied();
    let reserved = reserved.and_then(|after| increase_moves(ty, asset, after).get(&key).copied());
    let (holders, total) = [held, reserved]
        .into_iter()
        .flatten()
        .fold((0, 0), |(h, t), (holders, total)| (h + holders, t + total));
    QuotaUsage {
        count: usage
            .count
            .saturating_sub(u64::try_from(holders).unwrap_or(0)),
        sum: usage.sum.saturating_sub(total),
    }
}

/// A counting holder's parameters change (a new revision of an in-flight request).
pub async fn replace(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    before: &Value,
    after: &Value,
) -> Result<(), StorageError> {
    if before != after {
        adjust(conn, ty, before, -1).await?;
        adjust(conn, ty, after, 1).await?;
    }
    Ok(())
}

/// What the scope holds under the type's rule `rule_index`.
pub async fn usage(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    rule_index: usize,
    scope: &str,
) -> Result<QuotaUsage, StorageError> {
    let Some(rule) = ty.quota.get(rule_index) else {
        return Ok(QuotaUsage::default());
    };
    let row = sqlx::query(
        "SELECT holders, total FROM quota_usage WHERE type_name = $1 AND rule = $2 AND scope = $3",
    )
    .bind(&ty.name)
    .bind(rule_key(rule))
    .bind(scope)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(QuotaUsage::default());
    };
    let holders: i64 = row.try_get("holders")?;
    Ok(QuotaUsage {
        count: u64::try_from(holders).unwrap_or(0),
        sum: row.try_get("total")?,
    })
}

/// The usage of several of the type's rules, each in its scope, read in one
/// statement (a pre-check asks for all of them on every keystroke); in the order
/// asked, a rule without a counter yet counting nothing.
pub async fn usages(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    asked: &[(usize, String)],
) -> Result<Vec<QuotaUsage>, StorageError> {
    let keys: Vec<Option<String>> = asked
        .iter()
        .map(|(index, _)| ty.quota.get(*index).map(rule_key))
        .collect();
    let wanted: Vec<(usize, &str, &str)> = asked
        .iter()
        .zip(&keys)
        .enumerate()
        .filter_map(|(i, ((_, scope), key))| Some((i, key.as_deref()?, scope.as_str())))
        .collect();
    let mut found = vec![QuotaUsage::default(); asked.len()];
    if wanted.is_empty() {
        return Ok(found);
    }
    let pairs: Vec<String> = (0..wanted.len())
        .map(|n| format!("(rule = ${} AND scope = ${})", 2 * n + 2, 2 * n + 3))
        .collect();
    let sql = format!(
        "SELECT rule, scope, holders, total FROM quota_usage WHERE type_name = $1 AND ({})",
        pairs.join(" OR ")
    );
    let mut query = sqlx::query(&sql).bind(&ty.name);
    for (_, key, scope) in &wanted {
        query = query.bind(*key).bind(*scope);
    }
    for row in query.fetch_all(&mut *conn).await? {
        let (rule, scope): (String, String) = (row.try_get("rule")?, row.try_get("scope")?);
        let holders: i64 = row.try_get("holders")?;
        let usage = QuotaUsage {
            count: u64::try_from(holders).unwrap_or(0),
            sum: row.try_get("total")?,
        };
        for (i, key, asked_scope) in &wanted {
            if *key == rule && *asked_scope == scope {
                found[*i] = usage;
            }
        }
    }
    Ok(found)
}

/// Which types a start recounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recount {
    /// Those whose counted rules changed since their counters were built (or that
    /// have none yet): what a start needs, since every change since then moved the
    /// counters in its own transaction.
    Changed,
    /// Every type: after rows were written beside the services (the seed), or to
    /// check the counters against the rows.
    All,
}

/// How the counting works; bumping it makes the next start recount every type.
/// 2: a request for an action holds only its increase (before, it was counted
/// as a whole holder on a recount and as nothing otherwise).
const COUNTING: &str = "2";

/// What a type's counters depend on: the scope and sum of each rule (a maximum is
/// read at check time and needs no recount), and which actions' requests hold
/// their increase: a request for an action the catalog dropped (or made retiring)
/// lets go of nothing when it ends, so what it held goes with the recount.
fn fingerprint(ty: &ResourceType) -> String {
    let keys: Vec<String> = ty.quota.iter().map(rule_key).collect();
    let holding: Vec<&str> = ty
        .actions
        .iter()
        .filter(|a| !a.retires)
        .map(|a| a.name.as_str())
        .collect();
    format!(
        "{COUNTING};{};actions={}",
        keys.join(";"),
        holding.join(",")
    )
}

/// Rebuilds counters from the rows (active assets and in-flight requests) for the
/// types `which` names, and drops those of types no longer in the catalog. Returns
/// how many types were recounted.
pub async fn recount(
    conn: &mut AnyConnection,
    engine: Engine,
    catalog: &Catalog,
    which: Recount,
) -> Result<usize, StorageError> {
    if engine == Engine::Postgres {
        // Writers adjusting a counter wait until the recount commits; the recount
        // waits for those already adjusting, so none is counted twice or lost.
        sqlx::query("LOCK TABLE quota_usage IN EXCLUSIVE MODE")
            .execute(&mut *conn)
            .await?;
    }
    let counted: BTreeMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT type_name, rules FROM quota_settings")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let gone: Vec<String> =
        sqlx::query_scalar::<_, String>("SELECT DISTINCT type_name FROM quota_usage")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .chain(counted.keys().cloned())
            .filter(|name| !catalog.types.contains_key(name))
            .collect();
    for name in &gone {
        forget(conn, name).await?;
    }
    let mut recounted = 0;
    for ty in catalog.types.values() {
        let rules = fingerprint(ty);
        if which == Recount::Changed && counted.get(&ty.name) == Some(&rules) {
            continue;
        }
        forget(conn, &ty.name).await?;
        count_type(conn, ty).await?;
        sqlx::query("INSERT INTO quota_settings (type_name, rules) VALUES ($1, $2)")
            .bind(&ty.name)
            .bind(&rules)
            .execute(&mut *conn)
            .await?;
        recounted += 1;
    }
    Ok(recounted)
}

/// Removes a type's counters and the note of how they were counted.
async fn forget(conn: &mut AnyConnection, type_name: &str) -> Result<(), StorageError> {
    for table in ["quota_usage", "quota_settings"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE type_name = $1"))
            .bind(type_name)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Counts one type's holders into its counters (none are there yet).
async fn count_type(conn: &mut AnyConnection, ty: &ResourceType) -> Result<(), StorageError> {
    if ty.quota.is_empty() {
        return Ok(());
    }
    let in_flight: Vec<String> = RequestState::ALL
        .iter()
        .filter(|s| s.is_in_flight())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let in_flight = in_flight.join(", ");
    let holders: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT params FROM assets WHERE type_name = $1 AND state = $2 \
             UNION ALL SELECT params FROM requests WHERE type_name = $1 \
             AND params IS NOT NULL AND asset_id IS NULL AND state IN ({in_flight})",
    ))
    .bind(&ty.name)
    .bind(super::assets::ACTIVE)
    .fetch_all(&mut *conn)
    .await?;
    let actions: Vec<(String, String, String)> = sqlx::query_as(&format!(
        "SELECT r.action, a.params, r.params FROM requests r JOIN assets a ON a.id = r.asset_id \
             WHERE r.type_name = $1 AND r.params IS NOT NULL AND r.action IS NOT NULL \
             AND r.state IN ({in_flight})",
    ))
    .bind(&ty.name)
    .fetch_all(&mut *conn)
    .await?;
    let mut counters: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut count = |moves: BTreeMap<(String, String), (i64, i64)>| {
        for (key, (holders, total)) in moves {
            let entry = counters.entry(key).or_default();
            entry.0 += holders;
            entry.1 += total;
        }
    };
    for text in &holders {
        count(holder_moves(ty, &parse_json(text, "parameters")?, 1));
    }
    for (action, asset, after) in &actions {
        if ty.action(action).is_some_and(|a| !a.retires) {
            let asset: Value = parse_json(asset, "parameters")?;
            count(increase_moves(
                ty,
                &asset,
                &parse_json(after, "parameters")?,
            ));
        }
    }
    add_all(conn, &ty.name, &counters.into_iter().collect()).await
}
