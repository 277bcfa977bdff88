//! Pre-check: quotas, dependencies and risk hints. The server looks up usage and
//! existing assets; the rules and the verdict live here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{QuotaRule, ResourceType};
use crate::template;
use crate::validate::{FieldError, ParamValidator, oversized, whole_number};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaQuery {
    pub rule_index: usize,
    /// Parameter -> the value this request has; usage is counted where all match.
    pub scope: BTreeMap<String, String>,
    pub sum_param: Option<String>,
}

/// Existing assets plus in-flight requests of the type in the scope, excluding this request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    pub count: u64,
    pub sum: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependencyQuery {
    pub type_name: String,
    /// Parameter of the required type -> the value it must have.
    pub r#match: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyFound {
    pub asset_name: Option<String>,
    /// The request that is retiring the asset found (a decommission in flight):
    /// nothing new may come to depend on it.
    #[serde(default)]
    pub retired_by: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaCheck {
    pub description: String,
    pub used: i64,
    pub requested: i64,
    pub limit: i64,
    pub unit: String,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DependencyCheck {
    pub type_name: String,
    pub description: String,
    pub found: Option<String>,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrecheckReport {
    pub resource_name: Option<String>,
    pub field_errors: Vec<FieldError>,
    pub quotas: Vec<QuotaCheck>,
    pub dependencies: Vec<DependencyCheck>,
    /// Hints for requester and reviewer; they never block.
    pub risks: Vec<String>,
}

impl PrecheckReport {
    pub fn passed(&self) -> bool {
        self.field_errors.is_empty()
            && self.quotas.iter().all(|q| q.ok)
            && self.dependencies.iter().all(|d| d.ok)
    }
}

/// Scope values as stored and compared by the server: strings as-is, others as JSON.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Why a rule cannot be counted against these parameters: a scope or summed
/// parameter is given but holds nothing the quota can read (a list, or a number
/// too large for a sum). `None` when every value is readable or simply absent.
fn unreadable_value(rule: &QuotaRule, params: &Value) -> Option<(String, &'static str)> {
    let given = |param: &str| params.get(param).filter(|value| !value.is_null());
    let scope = rule.per.iter().find_map(|param| {
        let value = given(param)?;
        scalar_text(value).is_none().then(|| {
            (
                param.clone(),
                "holds a list or an object, which cannot scope a quota",
            )
        })
    });
    scope.or_else(|| {
        let sum = rule.sum.as_ref()?;
        whole_number(given(sum)?).is_none().then(|| {
            (
                sum.clone(),
                "is not a whole number the quota can count (at most 9223372036854775807)",
            )
        })
    })
}

/// A failing line for every rule a given value keeps from being counted: a rule
/// that cannot be read must block, never be passed over.
fn unreadable_quota_lines(
    ty: &ResourceType,
    params: &Value,
    refused: &[FieldError],
) -> Vec<QuotaCheck> {
    ty.quota
        .iter()
        .filter(|rule| !counts_a_refused_field(rule, refused))
        .filter_map(|rule| {
            let (field, why) = unreadable_value(rule, params)?;
            let (limit, unit) = match (&rule.sum, rule.max, rule.max_count) {
                (Some(sum), Some(max), _) => (clamp(max), ty.param_title(sum)),
                (_, _, max_count) => (clamp(max_count.unwrap_or(0)), "requests".to_string()),
            };
            Some(QuotaCheck {
                description: format!("{field} {why}: the quota on it cannot be checked"),
                used: 0,
                requested: 0,
                limit,
                unit,
                ok: false,
            })
        })
        .collect()
}

/// One query per rule whose scope parameters (and summed parameter) this request has.
/// A rule with a given but unreadable value has none; [`quota_report`] fails it.
/// Parameters over the size limit have none: nothing looks them up.
pub fn quota_queries(ty: &ResourceType, params: &Value) -> Vec<QuotaQuery> {
    if oversized(params).is_some() {
        return Vec::new();
    }
    ty.quota
        .iter()
        .enumerate()
        .filter_map(|(rule_index, rule)| {
            let scope = rule
                .per
                .iter()
                .map(|p| Some((p.clone(), scalar_text(params.get(p)?)?)))
                .collect::<Option<BTreeMap<_, _>>>()?;
            if let Some(sum) = &rule.sum {
                whole_number(params.get(sum)?)?;
            }
            Some(QuotaQuery {
                rule_index,
                scope,
                sum_param: rule.sum.clone(),
            })
        })
        .collect()
}

/// The assets the type requires, as lookups rendered from these parameters;
/// an error for parameters over the size limit, which are never rendered.
pub fn dependency_queries(
    ty: &ResourceType,
    params: &Value,
) -> Result<Vec<DependencyQuery>, String> {
    if let Some(too_large) = oversized(params) {
        return Err(too_large.message);
    }
    let ctx = template::context(ty, params, None);
    ty.requires
        .iter()
        .map(|req| {
            let r#match = req
                .r#match
                .iter()
                .map(|(param, source)| {
                    template::render_str(source, &ctx)
                        .map(|value| (param.clone(), value))
                        .map_err(|e| format!("requirement {}: {param}: {e}", req.type_name))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?;
            Ok(DependencyQuery {
                type_name: req.type_name.clone(),
                r#match,
            })
        })
        .collect()
}

/// Hints whose condition holds; a hint whose parameters are missing stays silent,
/// and parameters over the size limit are not read.
pub fn risk_hints(ty: &ResourceType, params: &Value) -> Vec<String> {
    if oversized(params).is_some() {
        return Vec::new();
    }
    let ctx = template::context(ty, params, None);
    ty.risk_hints
        .iter()
        .filter(|hint| template::eval_bool(&hint.when, &ctx) == Ok(true))
        .filter_map(|hint| template::render_str(&hint.message, &ctx).ok())
        .collect()
}

/// Only an expression that evaluates cleanly to true approves: errors never do,
/// nor parameters over the size limit (never read).
pub fn auto_approves(ty: &ResourceType, params: &Value) -> bool {
    let Some(when) = &ty.review.auto_approve_when else {
        return false;
    };
    if oversized(params).is_some() {
        return false;
    }
    let ctx = template::context(ty, params, None);
    template::eval_bool(when, &ctx) == Ok(true)
}

pub fn evaluate(
    validator: &ParamValidator,
    ty: &ResourceType,
    params: &Value,
    quota_usage: &[QuotaUsage],
    deps: &[DependencyFound],
) -> PrecheckReport {
    // Parameters over the size limit are refused before any rule, lookup or
    // template reads them: each one's cost grows with the input.
    if let Some(too_large) = oversized(params) {
        return PrecheckReport {
            resource_name: None,
            field_errors: vec![too_large],
            quotas: Vec::new(),
            dependencies: Vec::new(),
            risks: Vec::new(),
        };
    }
    let field_errors = validator.check(params);
    let quotas = quota_report(ty, params, quota_usage, &field_errors);
    let dependencies = match dependency_queries(ty, params) {
        Ok(queries) => queries
            .iter()
            .enumerate()
            .map(|(i, query)| dependency_check(ty, i, query, deps.get(i)))
            .collect(),
        Err(_) => Vec::new(),
    };
    PrecheckReport {
        resource_name: validator.resource_name(params).ok(),
        field_errors,
        quotas,
        dependencies,
        risks: risk_hints(ty, params),
    }
}

/// The quota lines of these parameters under the type's rules, given what each
/// rule's scope holds besides them (in the order of [`quota_queries`]). A rule
/// that counts a field with an error of its own (`refused`) has no line: the
/// field's error already blocks and says what is wrong, and a line would count
/// a value that is never stored (a negative size "freeing" quota).
pub fn quota_report(
    ty: &ResourceType,
    params: &Value,
    usages: &[QuotaUsage],
    refused: &[FieldError],
) -> Vec<QuotaCheck> {
    let mut lines: Vec<QuotaCheck> = quota_queries(ty, params)
        .iter()
        .zip(usages.iter().map(Some).chain(std::iter::repeat(None)))
        .filter(|(query, _)| !query_counts_a_refused_field(ty, query, refused))
        .flat_map(|(query, usage)| quota_checks(ty, params, query, usage, None))
        .collect();
    lines.extend(unreadable_quota_lines(ty, params, refused));
    lines
}

/// Whether a rule scopes or sums a field that has an error of its own.
fn counts_a_refused_field(rule: &QuotaRule, refused: &[FieldError]) -> bool {
    refused
        .iter()
        .any(|error| rule.per.contains(&error.field) || rule.sum.as_ref() == Some(&error.field))
}

fn query_counts_a_refused_field(
    ty: &ResourceType,
    query: &QuotaQuery,
    refused: &[FieldError],
) -> bool {
    ty.quota
        .get(query.rule_index)
        .is_some_and(|rule| counts_a_refused_field(rule, refused))
}

/// The quota lines of a day-2 action that takes an asset from `asset` to
/// `params`, given what each scope holds besides the asset. Only an increase can
/// break a limit: where the asset already counts at least as much, the line
/// passes even in a scope over its limit (lowered since), so an upgrade or a
/// shrink is never held up by quota.
pub fn action_quota_report(
    ty: &ResourceType,
    asset: &Value,
    params: &Value,
    usages: &[QuotaUsage],
    refused: &[FieldError],
) -> Vec<QuotaCheck> {
    let held_now = quota_queries(ty, asset);
    let mut lines: Vec<QuotaCheck> = quota_queries(ty, params)
        .iter()
        .zip(usages.iter().map(Some).chain(std::iter::repeat(None)))
        .filter(|(query, _)| !query_counts_a_refused_field(ty, query, refused))
        .flat_map(|(query, usage)| {
            let held = held_now
                .iter()
                .find(|q| q.rule_index == query.rule_index && q.scope == query.scope)
                .map(|q| Held {
                    count: 1,
                    sum: q
                        .sum_param
                        .as_ref()
                        .and_then(|sum| asset.get(sum))
                        .and_then(whole_number)
                        .unwrap_or(0),
                });
            quota_checks(ty, params, query, usage, held.or(Some(Held::NOTHING)))
        })
        .collect();
    lines.extend(unreadable_quota_lines(ty, params, refused));
    lines
}

/// What the asset an action acts on already holds in a rule's scope.
#[derive(Debug, Clone, Copy)]
struct Held {
    count: i64,
    sum: i64,
}

impl Held {
    const NOTHING: Held = Held { count: 0, sum: 0 };
}

fn scope_text(scope: &BTreeMap<String, String>, rule: &QuotaRule) -> String {
    let parts: Vec<String> = rule
        .per
        .iter()
        .filter_map(|p| Some(format!("{} {}", p.replace('_', " "), scope.get(p)?)))
        .collect();
    if parts.is_empty() {
        "overall".into()
    } else {
        parts.join(", ")
    }
}

/// A rule's lines; `held` is what an asset acted on holds there already (none
/// for a request that makes a new one).
fn quota_checks(
    ty: &ResourceType,
    params: &Value,
    query: &QuotaQuery,
    usage: Option<&QuotaUsage>,
    held: Option<Held>,
) -> Vec<QuotaCheck> {
    let Some(rule) = ty.quota.get(query.rule_index) else {
        return Vec::new();
    };
    let scope = scope_text(&query.scope, rule);
    let mut checks = Vec::new();
    if let Some(max_count) = rule.max_count {
        let used = usage.map(|u| i64::try_from(u.count).unwrap_or(i64::MAX));
        let unit = "requests".to_string();
        let mut check = quota_check(&scope, (used, 1), clamp(max_count), unit, held.is_some());
        check.ok |= used.is_some() && held.is_some_and(|h| h.count >= 1);
        checks.push(check);
    }
    if let (Some(sum), Some(max)) = (&rule.sum, rule.max) {
        let requested = params.get(sum).and_then(whole_number).unwrap_or(0);
        let unit = ty.param_title(sum);
        let used = usage.map(|u| u.sum);
        let on_asset = held.is_some();
        let mut check = quota_check(&scope, (used, requested), clamp(max), unit, on_asset);
        check.ok |= used.is_some() && held.is_some_and(|h| h.sum >= requested);
        checks.push(check);
    }
    checks
}

fn clamp(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Unknown usage (the server sent too few answers) fails closed.
fn quota_check(
    scope: &str,
    (used, requested): (Option<i64>, i64),
    limit: i64,
    unit: String,
    on_asset: bool,
) -> QuotaCheck {
    let Some(used) = used else {
        return QuotaCheck {
            description: format!("{scope}: usage of {unit} unknown, limit {limit}"),
            used: 0,
            requested,
            limit,
            unit,
            ok: false,
        };
    };
    // A total past what 64 bits hold is past any limit (a saturated sum would
    // equal a limit of i64::MAX and pass).
    let total = used.checked_add(requested);
    let shown = total.map_or_else(|| format!("more than {}", i64::MAX), |t| t.to_string());
    QuotaCheck {
        // An action's usage leaves its asset out: the line says so, or "60 of
        // 128 used" would read wrong beside an asset that holds 60 itself.
        description: if on_asset {
            format!(
                "{scope}: {used} of {limit} {unit} used besides this asset, this change makes {shown}"
            )
        } else {
            format!("{scope}: {used} of {limit} {unit} used, this request makes {shown}")
        },
        used,
        requested,
        limit,
        unit,
        ok: total.is_some_and(|total| total <= limit),
    }
}

fn dependency_check(
    ty: &ResourceType,
    index: usize,
    query: &DependencyQuery,
    found: Option<&DependencyFound>,
) -> DependencyCheck {
    let wanted: Vec<String> = query
        .r#match
        .iter()
        .map(|(k, v)| format!("{} {v}", k.replace('_', " ")))
        .collect();
    let what = format!("a {} with {}", query.type_name, wanted.join(", "));
    let description = match ty.requires.get(index).and_then(|r| r.description.as_ref()) {
        Some(text) => format!("{text} ({what})"),
        None => what,
    };
    let retired_by = found.and_then(|f| f.retired_by);
    let found = found.and_then(|f| f.asset_name.clone());
    let description = match (&found, retired_by) {
        (Some(name), Some(request)) => {
            format!("{description}: {name} is being retired by request #{request}")
        }
        _ => description,
    };
    DependencyCheck {
        type_name: query.type_name.clone(),
        description,
        ok: found.is_some() && retired_by.is_none(),
        found,
    }
}

#[cfg(test)]
mod tests;
