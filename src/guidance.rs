//! Guidance from history: hints on the request form drawn from what a team asked
//! for before. Three rules, each explainable in one sentence:
//!
//! - **most chosen** — the value a clear majority of the team's recent requests of
//!   the type chose for a field, when it differs from the catalog's default;
//! - **sent back** — the fields past review comments named when they sent one of
//!   those requests back for changes, with the latest such comment quoted;
//! - **unusual** — a number ten times the team's usual (its median) or a tenth of it.
//!
//! Every hint carries the sentence saying where it comes from. None is an error:
//! guidance never blocks a submit. The storage reads a bounded window of history
//! into [`History`]; everything here is pure, so the browser re-runs the unusual
//! value rule as the requester types, from the [`Guidance`] it fetched once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::{FieldKind, FieldSpec, ResourceType};

mod text;
pub use text::{MAX_COMMENT_CHARS, excerpt, names_field};

/// How far back the history reaches.
pub const WINDOW_DAYS: u32 = 180;
/// The most recent requests read, however many the window holds.
pub const MAX_REQUESTS: u32 = 500;
/// The fewest requests that set a field before its most chosen value is offered.
pub const MIN_REQUESTS: usize = 3;
/// The fewest numbers a usual value (a median) is taken from.
pub const MIN_SAMPLES: usize = 5;
/// How many times the usual value (or its fraction) a number must be to be unusual.
pub const UNUSUAL_RATIO: f64 = 10.0;

/// What the storage read: a team's recent requests of one type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The team the history is of.
    pub team: String,
    /// The parameters of each request, newest first.
    pub params: Vec<Value>,
    /// Review comments that sent one of those requests back, newest first.
    pub sent_back: Vec<SentBack>,
}

/// One "request changes" decision on a request of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct SentBack {
    pub request_id: i64,
    pub comment: String,
}

/// The hints for one team and type, and what the browser needs to flag an
/// unusual value as it is typed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Guidance {
    pub type_name: String,
    /// The team whose history this is; `None` when the type names no owning team
    /// or the caller acts for none (then there are no hints).
    pub team: Option<String>,
    /// How many of the team's requests of the type were read.
    pub requests: u32,
    pub window_days: u32,
    /// Most chosen values and past send-backs, in the form's field order.
    pub hints: Vec<Hint>,
    /// The team's usual value of each numeric field with enough history.
    pub usual: Vec<UsualValue>,
}

/// One hint about one field. Never an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hint {
    pub kind: HintKind,
    /// The parameter the hint is about.
    pub field: String,
    /// What the hint says.
    pub message: String,
    /// Where it comes from.
    pub source: String,
    /// For a most chosen value: the value, for a "use this" button.
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HintKind {
    MostChosen,
    SentBack,
    Unusual,
}

/// A numeric field's usual value in the team's history: the median of its samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsualValue {
    pub field: String,
    pub median: f64,
    pub samples: u32,
}

/// The hints a type's history gives. `type_title` names the type in the sources.
pub fn compute(ty: &ResourceType, history: &History) -> Guidance {
    let fields: Vec<FieldSpec> = ty.fields();
    let owner = ty.owner_param.as_ref().map(|o| o.param.as_str());
    let source = Source {
        team: &history.team,
        type_title: &ty.title,
    };
    let mut hints = Vec::new();
    let sent_back = sent_back_by_field(&fields, &history.sent_back);
    for field in &fields {
        if let Some(found) = sent_back.get(field.name.as_str()) {
            hints.push(sent_back_hint(field, found, history.params.len(), &source));
        }
        if Some(field.name.as_str()) != owner
            && let Some(hint) = most_chosen(field, &history.params, &source)
        {
            hints.push(hint);
        }
    }
    Guidance {
        type_name: ty.name.clone(),
        team: Some(history.team.clone()),
        requests: count(history.params.len()),
        window_days: WINDOW_DAYS,
        hints,
        usual: fields
            .iter()
            .filter_map(|f| usual_value(f, &history.params))
            .collect(),
    }
}

/// Names the history a hint comes from.
struct Source<'a> {
    team: &'a str,
    type_title: &'a str,
}

impl Source<'_> {
    fn describe(&self, requests: usize) -> String {
        let noun = if requests == 1 { "request" } else { "requests" };
        format!(
            "from {requests} {} {noun} for {} in the last {WINDOW_DAYS} days",
            self.team, self.type_title
        )
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The value a clear majority (more than half) of the requests that set the field
/// chose, when at least [`MIN_REQUESTS`] did and it is not the catalog's default.
/// Only choices, yes/no and whole numbers: free text (a name) has no default.
fn most_chosen(field: &FieldSpec, history: &[Value], source: &Source<'_>) -> Option<Hint> {
    let countable = matches!(
        field.kind,
        FieldKind::Choice { .. } | FieldKind::Boolean | FieldKind::Integer { .. }
    );
    if !countable || field.secret {
        return None;
    }
    // Keyed by the value's JSON text: 16 and "16" are different choices.
    let mut counts: BTreeMap<String, (usize, &Value)> = BTreeMap::new();
    let mut set = 0;
    for value in history.iter().filter_map(|p| p.get(&field.name)) {
        if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            continue;
        }
        set += 1;
        counts.entry(value.to_string()).or_insert((0, value)).0 += 1;
    }
    let (top, value) = counts.values().max_by_key(|(n, _)| *n)?;
    if set < MIN_REQUESTS || top * 2 <= set || field.default.as_ref() == Some(*value) {
        return None;
    }
    Some(Hint {
        kind: HintKind::MostChosen,
        field: field.name.clone(),
        message: format!(
            "{} of {set} of your team's requests chose {} for {}.",
            top,
            shown(field, value),
            field.title
        ),
        source: source.describe(set),
        value: Some((*value).clone()),
    })
}

/// A value as the form shows it: a choice by its label.
fn shown(field: &FieldSpec, value: &Value) -> String {
    if let (FieldKind::Choice { options }, Some(text)) = (&field.kind, value.as_str())
        && let Some(option) = options.iter().find(|o| o.value == text)
    {
        return option.label.clone();
    }
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        other => other.to_string(),
    }
}

/// The requests sent back for each field, and the newest comment that named it.
struct FieldSentBack<'a> {
    requests: Vec<i64>,
    latest: &'a str,
}

fn sent_back_by_field<'a>(
    fields: &'a [FieldSpec],
    comments: &'a [SentBack],
) -> BTreeMap<&'a str, FieldSentBack<'a>> {
    let mut found: BTreeMap<&str, FieldSentBack<'_>> = BTreeMap::new();
    for sent in comments {
        for field in fields.iter().filter(|f| names_field(&sent.comment, f)) {
            let entry = found
                .entry(field.name.as_str())
                .or_insert_with(|| FieldSentBack {
                    requests: Vec::new(),
                    latest: &sent.comment,
                });
            if !entry.requests.contains(&sent.request_id) {
                entry.requests.push(sent.request_id);
            }
        }
    }
    found
}

fn sent_back_hint(
    field: &FieldSpec,
    found: &FieldSentBack<'_>,
    requests: usize,
    source: &Source<'_>,
) -> Hint {
    let sent = found.requests.len();
    let (noun, verb) = if sent == 1 {
        ("request", "was")
    } else {
        ("requests", "were")
    };
    Hint {
        kind: HintKind::SentBack,
        field: field.name.clone(),
        message: format!(
            "{sent} {noun} like this one {verb} sent back for {}. The latest review said: “{}”",
            field.title,
            excerpt(found.latest, field)
        ),
        source: format!("review comments {}", source.describe(requests)),
        value: None,
    }
}

/// The median of a numeric field's values, from [`MIN_SAMPLES`] finite numbers or more.
fn usual_value(field: &FieldSpec, history: &[Value]) -> Option<UsualValue> {
    if !matches!(field.kind, FieldKind::Integer { .. }) || field.secret {
        return None;
    }
    let mut samples: Vec<f64> = history
        .iter()
        .filter_map(|p| p.get(&field.name)?.as_f64())
        .filter(|n| n.is_finite())
        .collect();
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let middle = samples.len() / 2;
    let median = if samples.len().is_multiple_of(2) {
        // Halved before adding so two huge numbers cannot overflow to infinity.
        samples[middle - 1] / 2.0 + samples[middle] / 2.0
    } else {
        samples[middle]
    };
    Some(UsualValue {
        field: field.name.clone(),
        median,
        samples: count(samples.len()),
    })
}

/// The numbers in `params` that are [`UNUSUAL_RATIO`] times the team's usual value
/// or less than its fraction. A usual value of zero or below has no such ratio.
pub fn unusual_values(
    ty: &ResourceType,
    guidance: &Guidance,
    params: &Map<String, Value>,
) -> Vec<Hint> {
    let Some(team) = guidance.team.as_deref() else {
        return Vec::new();
    };
    let source = Source {
        team,
        type_title: &ty.title,
    };
    let fields = ty.fields();
    guidance
        .usual
        .iter()
        .filter_map(|usual| {
            let value = params.get(&usual.field)?.as_f64()?;
            let field = fields.iter().find(|f| f.name == usual.field)?;
            unusual(field, usual, value, &source)
        })
        .collect()
}

fn unusual(field: &FieldSpec, usual: &UsualValue, value: f64, source: &Source<'_>) -> Option<Hint> {
    let median = usual.median;
    if !value.is_finite() || !median.is_finite() || median <= 0.0 {
        return None;
    }
    let comparison = if value >= median * UNUSUAL_RATIO {
        format!("{} times", number(value / median))
    } else if value <= median / UNUSUAL_RATIO {
        "less than a tenth of".to_string()
    } else {
        return None;
    };
    Some(Hint {
        kind: HintKind::Unusual,
        field: field.name.clone(),
        message: format!(
            "{} {} is unusual: {comparison} your team's usual {} (values {}× above or below it are flagged).",
            field.title,
            number(value),
            number(median),
            number(UNUSUAL_RATIO)
        ),
        source: format!(
            "the median {}",
            source.describe(usize::try_from(usual.samples).unwrap_or(usize::MAX))
        ),
        value: None,
    })
}

/// A number as people read it: whole numbers without a fraction, others to one
/// decimal, astronomically large ones in scientific notation.
fn number(n: f64) -> String {
    if n.abs() >= 1e15 {
        format!("{n:.2e}")
    } else if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    }
}

#[cfg(test)]
mod tests;
