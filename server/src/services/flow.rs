//! The flow metrics: the value-stream view of every team's requests, for the
//! platform team and auditors. The portal's page and `GET /api/v1/metrics/flow`
//! both ask this one function.

use slipway_core::flow::{self, FlowInput, FlowMetrics, FlowQuery, What};
use slipway_core::policy;
use slipway_core::validate::FieldError;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Caller, ServiceError, ServiceResult};
use crate::state::AppState;
use crate::storage;

/// How long the steps read for a window longer than the default are used again:
/// a year's window reads every flow step of the year (about a second and a half
/// at 700,000 on SQLite), so people opening it together, or paging between its
/// types and actions, share one reading; the figures are weekly ones, a few
/// seconds old changes none of them much.
pub const FIGURES_FOR: Duration = Duration::from_secs(15);

/// The most windows whose readings are kept at once. A reading of a year holds
/// its aggregate rows (per type, request action, week and step: a few thousand),
/// so a handful bound the memory; a window beyond them lets go of the one read
/// longest ago that nobody is using.
const KEPT_WINDOWS: usize = 6;

/// The steps read lately, by window: every type's and action's figures are
/// computed from one reading of the window, so following another type or action
/// in the same window does not read again. One reading at a time per window:
/// people opening the page together wait for one reading, not one each, and
/// someone opening another window does not wait for theirs (up to
/// [`READ_AT_ONCE`] windows are read at once).
#[derive(Debug)]
pub struct FlowFigures {
    windows: std::sync::Mutex<HashMap<Window, Arc<tokio::sync::Mutex<Reading>>>>,
    /// The closed weeks of the windows read as fresh as the steps: a week that
    /// has ended gains no steps, so only the current week is read at each
    /// change (see [`CLOSED_WEEKS_FOR`]).
    closed: std::sync::Mutex<HashMap<Window, ClosedWeeks>>,
    /// Long windows read at once, whichever they are: each reads every step of
    /// its weeks, and a few callers varying the window must not take every core.
    reading: tokio::sync::Semaphore,
    /// How many times a window's steps were read: for tests and operators, who
    /// can tell a page served from a reading from one that read.
    reads: AtomicU64,
    /// How many times closed weeks were read for a window read in parts.
    closed_reads: AtomicU64,
}

/// How long the closed weeks of a window are used again. They gain no steps,
/// save one a replica whose clock runs behind records in the week its clock
/// says, or a transaction begun before the week turned commits after: the
/// count of their steps is compared at each use, and read again on any change.
/// The time bounds what a count cannot see: the request actions filled in on
/// older steps (see `housekeeping`, which also lets the kept weeks go).
pub const CLOSED_WEEKS_FOR: Duration = Duration::from_secs(600);

/// A window's closed weeks as read: when, how many steps they held, and their
/// aggregates.
type ClosedWeeks = (Instant, i64, Arc<FlowInput>);

/// How many long windows are read at once on a replica.
const READ_AT_ONCE: usize = 2;

impl Default for FlowFigures {
    fn default() -> FlowFigures {
        FlowFigures {
            windows: std::sync::Mutex::default(),
            closed: std::sync::Mutex::default(),
            reading: tokio::sync::Semaphore::new(READ_AT_ONCE),
            reads: AtomicU64::new(0),
            closed_reads: AtomicU64::new(0),
        }
    }
}

/// A window's steps as read, when they were read and the newest flow step then
/// (for windows used only as fresh as the steps); `None` until they are.
type Reading = Option<(Instant, Option<i64>, Arc<FlowInput>)>;

/// The place of one window's reading.
type Place = Arc<tokio::sync::Mutex<Reading>>;

/// When an idle place's reading was made (inner `None`: nothing was read), or
/// `None` while someone holds or waits for the place: only an idle place may
/// be let go.
fn idle(place: &Place) -> Option<Option<Instant>> {
    if Arc::strong_count(place) > 1 {
        return None;
    }
    place
        .try_lock()
        .ok()
        .map(|r| r.as_ref().map(|(at, _, _)| *at))
}

impl FlowFigures {
    /// The place of a window's reading, made when first asked for. The places of
    /// windows whose readings are too old to use are let go, and beyond
    /// [`KEPT_WINDOWS`] the idle ones read longest ago.
    fn place(&self, key: Window) -> Place {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        windows.retain(|_, place| match idle(place) {
            Some(read) => read.is_some_and(|at| at.elapsed() < FIGURES_FOR),
            None => true,
        });
        if !windows.contains_key(&key) {
            while windows.len() >= KEPT_WINDOWS {
                let oldest = windows
                    .iter()
                    .filter_map(|(k, place)| idle(place).map(|read| (read, *k)))
                    .min();
                // Every kept window is in use: this one is kept beside them, and
                // let go as soon as it is not.
                let Some((_, oldest)) = oldest else { break };
                windows.remove(&oldest);
            }
        }
        windows.entry(key).or_default().clone()
    }

    /// A window's closed weeks, when kept and not kept too long.
    fn closed_weeks(&self, window: Window) -> Option<ClosedWeeks> {
        let mut closed = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        closed.retain(|_, (at, _, _)| at.elapsed() < CLOSED_WEEKS_FOR);
        closed.get(&window).cloned()
    }

    /// Keeps a window's closed weeks, letting go of the ones read longest ago
    /// beyond [`KEPT_WINDOWS`].
    fn keep_closed_weeks(&self, window: Window, weeks: ClosedWeeks) {
        let mut closed = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while closed.len() >= KEPT_WINDOWS && !closed.contains_key(&window) {
            let Some(oldest) = closed
                .iter()
                .min_by_key(|(_, (at, ..))| *at)
                .map(|(k, _)| *k)
            else {
                break;
            };
            closed.remove(&oldest);
        }
        closed.insert(window, weeks);
    }

    /// Lets go of every window's kept closed weeks: their steps were changed
    /// in place (the request actions filled in on older steps).
    pub fn forget_closed_weeks(&self) {
        self.closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// How many times the closed weeks of a window read in parts were read.
    pub fn closed_reads(&self) -> u64 {
        self.closed_reads.load(Ordering::Relaxed)
    }

    /// How many times a window's steps were read since the server started.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

/// The weeks asked for: first and last.
type Window = (i64, i64);

/// Whether the flow metrics are for `caller`: asked first, so that someone
/// they are not for is told so before anything about their query.
pub fn may_see(caller: &Caller) -> ServiceResult<()> {
    policy::may_see_flow_metrics(caller).map_err(ServiceError::refused)
}

/// The window, the trend's type and what its requests do, as the query asks
/// (each named in the refusal when it cannot be read).
fn read_query(query: &FlowQuery) -> ServiceResult<(Window, Option<&str>, What)> {
    let invalid = |field: &'static str| {
        move |message: String| ServiceError::Invalid(vec![FieldError::new(field, message)])
    };
    let window = query
        .window(storage::now_millis())
        .map_err(invalid("weeks"))?;
    // A type since removed from the catalog is still in the history it made;
    // so is an action.
    let trend_type = query.trend_type().map_err(invalid("type"))?;
    let what = query.what().map_err(invalid("action"))?;
    Ok((window, trend_type, what))
}

/// The figures of the window the query asks for (the last 12 weeks by default),
/// of the requests it asks for (creations by default), with the requests in
/// each step now.
#[tracing::instrument(skip_all, fields(weeks = ?query.weeks, type_name = ?query.type_name, action = ?query.action))]
pub async fn flow_metrics(
    state: &AppState,
    caller: &Caller,
    query: &FlowQuery,
) -> ServiceResult<FlowMetrics> {
    may_see(caller)?;
    let (window, trend_type, what) = read_query(query)?;
    let input = window_input(state, window).await?;
    let mut figures = flow::compute(&input, trend_type, &what);
    // Read at every view, outside the window's cache: the figure is of this
    // moment, not of a window (a window's cached reading would carry it stale for
    // up to [`FIGURES_FOR`], and each window would hold its own copy of the same
    // thing). Its read is one range of an index over the open requests only,
    // cheap enough for every view.
    let rows = storage::flow::waiting(&state.db.pool, &what).await?;
    figures.waiting = flow::waiting_now(&rows, storage::now_millis());
    Ok(figures)
}

/// A window's steps: read afresh, or shared with whoever asked lately, for any
/// type and action.
async fn window_input(state: &AppState, (since, until): Window) -> ServiceResult<Arc<FlowInput>> {
    // The default window (and shorter ones) is used as fresh as the steps:
    // again only while no step was recorded since (one read of the newest
    // step's id), so people opening the page together share one reading
    // without anyone seeing figures older than the last change. Longer ones
    // are shared for [`FIGURES_FOR`] whatever happened meanwhile.
    let fresh_only = until - since < flow::DEFAULT_WEEKS;
    let place = state.flow_figures.place((since, until));
    let mut read = place.lock().await;
    let newest = if fresh_only {
        storage::flow::newest_step(&state.db.pool).await?
    } else {
        None
    };
    if let Some((at, stamp, input)) = read.as_ref()
        && at.elapsed() < FIGURES_FOR
        && (!fresh_only || *stamp == newest)
    {
        return Ok(Arc::clone(input));
    }
    let _reading = state
        .flow_figures
        .reading
        .acquire()
        .await
        .map_err(|e| ServiceError::Internal(format!("flow figures: {e}")))?;
    let this_week = flow::week_of(storage::now_millis());
    let input = if fresh_only && since < this_week && this_week <= until {
        Arc::new(joined_input(state, (since, until), this_week).await?)
    } else {
        Arc::new(storage::flow::read(&state.db.pool, since, until).await?)
    };
    state.flow_figures.reads.fetch_add(1, Ordering::Relaxed);
    *read = Some((Instant::now(), newest, Arc::clone(&input)));
    Ok(input)
}

/// A window read as its closed weeks (kept, see [`CLOSED_WEEKS_FOR`]) and the
/// weeks from `this_week`: what a step changes is read, not the whole window
/// (a tenth of it for the default twelve weeks).
async fn joined_input(
    state: &AppState,
    (since, until): Window,
    this_week: i64,
) -> ServiceResult<FlowInput> {
    let closed = closed_weeks(state, (since, this_week - 1)).await?;
    let pool = &state.db.pool;
    let current = storage::flow::read(pool, this_week, until).await?;
    let twice = storage::flow::counted_twice(pool, (since, this_week, until)).await?;
    Ok(flow::join(&closed, current, &twice))
}

/// The closed weeks' aggregates: kept while they hold the steps they held
/// when read and for at most [`CLOSED_WEEKS_FOR`], else read again. The lock
/// is not held while reading (a reading of other weeks is not held up by it).
async fn closed_weeks(state: &AppState, window: Window) -> ServiceResult<Arc<FlowInput>> {
    let pool = &state.db.pool;
    let steps = storage::flow::steps_in(pool, window.0, window.1).await?;
    let kept = state.flow_figures.closed_weeks(window);
    if let Some((_, held, input)) = kept
        && held == steps
    {
        return Ok(input);
    }
    let input = Arc::new(storage::flow::read(pool, window.0, window.1).await?);
    state
        .flow_figures
        .closed_reads
        .fetch_add(1, Ordering::Relaxed);
    state
        .flow_figures
        .keep_closed_weeks(window, (Instant::now(), steps, Arc::clone(&input)));
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_being_read_holds_up_only_itself() {
        let figures = FlowFigures::default();
        let year = figures.place((0, 52));
        let computing = year.try_lock();
        assert!(computing.is_ok());
        assert!(figures.place((0, 26)).try_lock().is_ok());
        assert!(figures.place((0, 52)).try_lock().is_err());
        drop(computing);
        drop(year);
        // Nothing read and nobody waiting: the places are let go.
        figures.place((1, 2));
        assert_eq!(kept(&figures), 1);
    }

    fn kept(figures: &FlowFigures) -> usize {
        figures
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Fills a window's place with a reading made now.
    fn read_now(figures: &FlowFigures, key: Window) {
        let place = figures.place(key);
        let mut reading = place.try_lock();
        if let Ok(reading) = reading.as_mut() {
            **reading = Some((Instant::now(), None, Arc::default()));
        }
    }

    #[test]
    fn a_handful_of_windows_are_kept_and_those_in_use_stay() {
        let figures = FlowFigures::default();
        for weeks in 1..=20 {
            read_now(&figures, (100 - weeks + 1, 100));
        }
        assert_eq!(kept(&figures), KEPT_WINDOWS);
        // The newest readings are the ones kept.
        let place = figures.place((100 - 19, 100));
        let reading = place.try_lock();
        assert!(reading.as_ref().is_ok_and(|r| r.is_some()));
        drop(reading);
        // Windows in use are never let go, even beyond the bound.
        let held: Vec<Place> = (0..KEPT_WINDOWS as i64 + 2)
            .map(|i| figures.place((i, 200)))
            .collect();
        assert!(kept(&figures) >= held.len());
        drop(held);
        drop(place);
        read_now(&figures, (7, 7));
        assert!(kept(&figures) <= KEPT_WINDOWS);
    }
}
