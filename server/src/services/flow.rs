//! The flow metrics: the value-stream view of every team's requests, for the
//! platform team and auditors. The portal's page and `GET /api/v1/metrics/flow`
//! both ask this one function.

use slipway_core::flow::{self, FlowMetrics, FlowQuery};
use slipway_core::policy;
use slipway_core::validate::FieldError;

use std::collections::HashMap;
use std::sync::Arc;
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

/// Figures computed lately, by window and trend type. One computation at a time
/// per window: people opening the page together wait for one reading, not one
/// each, and someone opening another window does not wait for theirs (up to
/// [`READ_AT_ONCE`] windows are read at once).
#[derive(Debug)]
pub struct FlowFigures {
    windows: std::sync::Mutex<HashMap<Window, Arc<tokio::sync::Mutex<Figures>>>>,
    /// Long windows read at once, whichever they are: each reads every step of
    /// its weeks, and a few callers varying the window must not take every core.
    reading: tokio::sync::Semaphore,
}

/// How many long windows are read at once on a replica.
const READ_AT_ONCE: usize = 2;

impl Default for FlowFigures {
    fn default() -> FlowFigures {
        FlowFigures {
            windows: std::sync::Mutex::default(),
            reading: tokio::sync::Semaphore::new(READ_AT_ONCE),
        }
    }
}

/// A window's figures, when they were computed and the newest flow step then
/// (for windows shown only as fresh as the steps); `None` until they are.
type Figures = Option<(Instant, Option<i64>, FlowMetrics)>;

impl FlowFigures {
    /// The place of a window's figures, made when first asked for; the places
    /// of windows whose figures are too old to show are let go.
    fn place(&self, key: Window) -> Arc<tokio::sync::Mutex<Figures>> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        windows.retain(|_, place| {
            Arc::strong_count(place) > 1
                || place.try_lock().is_ok_and(|f| {
                    f.as_ref()
                        .is_some_and(|(at, _, _)| at.elapsed() < FIGURES_FOR)
                })
        });
        windows.entry(key).or_default().clone()
    }
}

/// The weeks asked for (first, last) and the trend's type.
type Window = (i64, i64, Option<String>);

/// Whether the flow metrics are for `caller`: asked first, so that someone
/// they are not for is told so before anything about their query.
pub fn may_see(caller: &Caller) -> ServiceResult<()> {
    policy::may_see_flow_metrics(caller).map_err(ServiceError::refused)
}

/// The figures of the window the query asks for (the last 12 weeks by default),
/// with the requests in each step now.
#[tracing::instrument(skip_all, fields(weeks = ?query.weeks, type_name = ?query.type_name))]
pub async fn flow_metrics(
    state: &AppState,
    caller: &Caller,
    query: &FlowQuery,
) -> ServiceResult<FlowMetrics> {
    may_see(caller)?;
    let (since, until) = query
        .window(storage::now_millis())
        .map_err(|message| ServiceError::Invalid(vec![FieldError::new("weeks", message)]))?;
    // A type since removed from the catalog is still in the history it made.
    let trend_type = query
        .trend_type()
        .map_err(|message| ServiceError::Invalid(vec![FieldError::new("type", message)]))?;
    let mut figures = window_figures(state, (since, until, trend_type.map(str::to_string))).await?;
    // Read at every view, outside the window's cache: the figure is of this
    // moment, not of a window (a window's cached figures would carry it stale for
    // up to [`FIGURES_FOR`], and each window would hold its own copy of the same
    // thing). Its read is one range of an index over the open requests only,
    // cheap enough for every view.
    let rows = storage::flow::waiting(&state.db.pool).await?;
    figures.waiting = flow::waiting_now(&rows, storage::now_millis());
    Ok(figures)
}

/// A window's figures: computed afresh, or shared with whoever asked lately.
async fn window_figures(state: &AppState, key: Window) -> ServiceResult<FlowMetrics> {
    let (since, until) = (key.0, key.1);
    // The default window (and shorter ones) is shown as fresh as the steps:
    // again only while no step was recorded since (one read of the newest
    // step's id), so people opening the page together share one reading
    // without anyone seeing figures older than the last change. Longer ones
    // are shared for [`FIGURES_FOR`] whatever happened meanwhile.
    let fresh_only = until - since < flow::DEFAULT_WEEKS;
    let place = state.flow_figures.place(key.clone());
    let mut computed = place.lock().await;
    let newest = if fresh_only {
        storage::flow::newest_step(&state.db.pool).await?
    } else {
        None
    };
    if let Some((at, stamp, figures)) = computed.as_ref()
        && at.elapsed() < FIGURES_FOR
        && (!fresh_only || *stamp == newest)
    {
        return Ok(figures.clone());
    }
    let _reading = state
        .flow_figures
        .reading
        .acquire()
        .await
        .map_err(|e| ServiceError::Internal(format!("flow figures: {e}")))?;
    let input = storage::flow::read(&state.db.pool, since, until).await?;
    let figures = flow::compute(&input, key.2.as_deref());
    *computed = Some((Instant::now(), newest, figures.clone()));
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_being_computed_holds_up_only_itself() {
        let figures = FlowFigures::default();
        let year = figures.place((0, 52, None));
        let computing = year.try_lock();
        assert!(computing.is_ok());
        assert!(figures.place((0, 26, None)).try_lock().is_ok());
        assert!(figures.place((0, 52, None)).try_lock().is_err());
        assert!(
            figures
                .place((0, 52, Some("k8s-namespace".into())))
                .try_lock()
                .is_ok()
        );
        drop(computing);
        drop(year);
        // Nothing computed and nobody waiting: the places are let go.
        figures.place((1, 2, None));
        let kept = figures
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        assert_eq!(kept, 1);
    }
}
