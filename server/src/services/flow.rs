//! The flow metrics: the value-stream view of every team's requests, for the
//! platform team and auditors. The portal's page and `GET /api/v1/metrics/flow`
//! both ask this one function.

use slipway_core::flow::{self, FlowMetrics, FlowQuery};
use slipway_core::policy;
use slipway_core::validate::FieldError;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Caller, ServiceError, ServiceResult};
use crate::state::AppState;
use crate::storage;

/// How long the figures of a window longer than the default are shown again: a
/// year's window reads every flow step of the year (about a second and a half
/// at 700,000 on SQLite), so people opening it together, or paging between its
/// views, share one reading; the figures are weekly ones, a few seconds old
/// changes none of them much.
pub const FIGURES_FOR: Duration = Duration::from_secs(15);

/// Figures computed lately, by window and trend type. One computation at a time:
/// people opening the page together wait for one reading, not one each.
#[derive(Debug, Default)]
pub struct FlowFigures {
    computed: tokio::sync::Mutex<HashMap<Window, (Instant, FlowMetrics)>>,
}

/// The weeks asked for (first, last) and the trend's type.
type Window = (i64, i64, Option<String>);

/// The figures of the window the query asks for (the last 12 weeks by default).
#[tracing::instrument(skip_all, fields(weeks = ?query.weeks, type_name = ?query.type_name))]
pub async fn flow_metrics(
    state: &AppState,
    caller: &Caller,
    query: &FlowQuery,
) -> ServiceResult<FlowMetrics> {
    policy::may_see_flow_metrics(caller).map_err(ServiceError::refused)?;
    let (since, until) = query
        .window(storage::now_millis())
        .map_err(|message| ServiceError::Invalid(vec![FieldError::new("weeks", message)]))?;
    // A type since removed from the catalog is still in the history it made.
    let trend_type = query
        .trend_type()
        .map_err(|message| ServiceError::Invalid(vec![FieldError::new("type", message)]))?;
    // The default window (and shorter ones) reads few enough steps to be read
    // fresh at every view; only longer ones are shared.
    if until - since < flow::DEFAULT_WEEKS {
        let input = storage::flow::read(&state.db.pool, since, until).await?;
        return Ok(flow::compute(&input, trend_type));
    }
    let key = (since, until, trend_type.map(str::to_string));
    let mut computed = state.flow_figures.computed.lock().await;
    if let Some((at, figures)) = computed.get(&key)
        && at.elapsed() < FIGURES_FOR
    {
        return Ok(figures.clone());
    }
    let input = storage::flow::read(&state.db.pool, since, until).await?;
    let figures = flow::compute(&input, trend_type);
    computed.retain(|_, (at, _)| at.elapsed() < FIGURES_FOR);
    computed.insert(key, (Instant::now(), figures.clone()));
    Ok(figures)
}
