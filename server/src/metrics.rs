//! What `/metrics` tells Prometheus: counters and histograms the workers feed as
//! they go, and gauges read from the database at each scrape (requests by state
//! and type, the job queue), so every replica reports the same shared totals.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::storage::{Db, StorageError, jobs};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriverLabels {
    driver: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeAndState {
    resource_type: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    state: String,
}

/// How long the gauges read from the database (requests by type and state, the
/// queue) are reused: a scrape loop reads them at most this often.
pub const GAUGES_FOR: Duration = Duration::from_secs(5);
/// How long a scrape waits for the database gauges.
const GAUGES_WAIT: Duration = Duration::from_secs(2);

/// Step durations from 50 ms to about 14 minutes.
fn step_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

/// The process's metrics. Cheap to share: every handle inside is reference-counted.
pub struct Metrics {
    registry: Registry,
    /// Jobs this process took over from a worker whose lease lapsed.
    pub lease_takeovers: Counter,
    /// Sign-ins refused unchecked while their user name or address was locked
    /// out (the audit records the failure that started each lock, not these).
    pub sign_ins_throttled: Counter,
    step_seconds: Family<DriverLabels, Histogram, fn() -> Histogram>,
    driver_errors: Family<DriverLabels, Counter>,
    requests: Family<TypeAndState, Gauge>,
    jobs: Family<QueueLabels, Gauge>,
    /// Worker loops of this process that are running (a loop that panicked or
    /// ended is no longer counted).
    workers_alive: Gauge,
    /// Whether the last scrape could read the database's gauges: during an
    /// outage the process's own series still answer (workers, takeovers, step
    /// times are what one looks at then), beside a 0 here.
    database_up: Gauge,
    /// Since when this process's claims of jobs have failed, and the last error:
    /// workers that cannot claim (a read-only database after a failover, a full
    /// disk) are not ready, however many are alive.
    claims_failing: std::sync::Mutex<Option<(std::time::Instant, String)>>,
    /// When the database gauges were last read, held from reading them to
    /// encoding: two scrapes at once (a pair of Prometheus servers) must not
    /// encode each other's half-built families, and scrapes in a loop must not
    /// count every request ever stored each time.
    gauges_read: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// Counts a worker loop as alive for as long as it is held.
pub struct WorkerAlive(Gauge);

impl Drop for WorkerAlive {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("slipway");
        let lease_takeovers = Counter::default();
        registry.register(
            "job_lease_takeovers",
            "Jobs this process took over because their worker stopped renewing its lease",
            lease_takeovers.clone(),
        );
        let sign_ins_throttled = Counter::default();
        registry.register(
            "sign_ins_throttled",
            "Sign-in attempts refused unchecked while their user name or address was locked out",
            sign_ins_throttled.clone(),
        );
        let step_seconds: Family<DriverLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(step_buckets);
        registry.register(
            "step_duration_seconds",
            "How long execution steps took, by driver and outcome (done, failed)",
            step_seconds.clone(),
        );
        let driver_errors = Family::<DriverLabels, Counter>::default();
        registry.register(
            "driver_errors",
            "Execution steps that ended in an error, by driver",
            driver_errors.clone(),
        );
        let requests = Family::<TypeAndState, Gauge>::default();
        registry.register(
            "requests",
            "Requests stored, by resource type and state (read at scrape time, at most every 5 s)",
            requests.clone(),
        );
        let jobs = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "jobs",
            "Unfinished jobs, by state: queued (waiting or backing off), due (queued and runnable now), running",
            jobs.clone(),
        );
        let workers_alive = Gauge::default();
        registry.register(
            "workers_alive",
            "Worker loops running in this process",
            workers_alive.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "Whether the last scrape read the database's gauges (1) or could not reach the database (0)",
            database_up.clone(),
        );
        Metrics {
            registry,
            lease_takeovers,
            sign_ins_throttled,
            step_seconds,
            driver_errors,
            requests,
            jobs,
            workers_alive,
            database_up,
            claims_failing: std::sync::Mutex::new(None),
            gauges_read: tokio::sync::Mutex::new(None),
        }
    }

    pub fn observe_step(&self, driver: &str, took: Duration, succeeded: bool) {
        let labels = DriverLabels {
            driver: driver.to_string(),
            outcome: if succeeded { "done" } else { "failed" }.to_string(),
        };
        self.step_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if !succeeded {
            self.driver_errors.get_or_create(&labels).inc();
        }
    }

    /// Marks a worker loop alive until the returned guard drops.
    pub fn worker_started(&self) -> WorkerAlive {
        self.workers_alive.inc();
        WorkerAlive(self.workers_alive.clone())
    }

    pub fn workers_alive(&self) -> i64 {
        self.workers_alive.get()
    }

    /// A round of claims went through (or failed with `error`).
    pub fn claim_round(&self, error: Option<String>) {
        let mut failing = self
            .claims_failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *failing = match (error, failing.take()) {
            (None, _) => None,
            (Some(error), Some((since, _))) => Some((since, error)),
            (Some(error), None) => Some((std::time::Instant::now(), error)),
        };
    }

    /// How long claims have failed, and the last error, if they do.
    pub fn claims_failing(&self) -> Option<(Duration, String)> {
        let failing = self
            .claims_failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failing
            .as_ref()
            .map(|(since, error)| (since.elapsed(), error.clone()))
    }

    /// The exposition, with the database gauges as read at most
    /// [`GAUGES_FOR`] ago, or without them (and `database_up` 0) when the
    /// database cannot be read.
    pub async fn render(&self, db: &Db) -> Result<String, StorageError> {
        let mut read = self.gauges_read.lock().await;
        if read.is_none_or(|at| at.elapsed() >= GAUGES_FOR) {
            // Within a scrape's patience: a pool waits its acquire timeout (10 s,
            // a scraper's whole budget) for a database that is down.
            let gauges = tokio::time::timeout(GAUGES_WAIT, self.read_gauges(db)).await;
            match gauges {
                Ok(Ok(())) => {
                    self.database_up.set(1);
                }
                failed => {
                    let error = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => format!("no answer within {} s", GAUGES_WAIT.as_secs()),
                    };
                    tracing::error!(%error, "the metrics' database gauges could not be read");
                    // Last read's counts would look current: better none.
                    self.requests.clear();
                    self.jobs.clear();
                    self.database_up.set(0);
                }
            }
            // A failure is remembered as long as a reading: scrapes in a row
            // during an outage do not each wait for the database.
            *read = Some(std::time::Instant::now());
        }
        let mut text = String::new();
        encode(&mut text, &self.registry)
            .map_err(|e| StorageError::Corrupt(format!("encoding the metrics: {e}")))?;
        Ok(text)
    }

    async fn read_gauges(&self, db: &Db) -> Result<(), StorageError> {
        let mut conn = db.pool.acquire().await?;
        let by_type_and_state =
            crate::storage::requests::count_by_type_and_state(&mut conn).await?;
        let queue = jobs::queue_depth(&mut conn).await?;
        drop(conn);
        // Families are rebuilt so a type or state that emptied out disappears.
        self.requests.clear();
        for (type_name, state, count) in by_type_and_state {
            let labels = TypeAndState {
                resource_type: type_name,
                state,
            };
            self.requests.get_or_create(&labels).set(count);
        }
        self.jobs.clear();
        for (state, count) in [
            ("queued", queue.queued),
            ("due", queue.due),
            ("running", queue.running),
        ] {
            let labels = QueueLabels {
                state: state.to_string(),
            };
            self.jobs.get_or_create(&labels).set(count);
        }
        Ok(())
    }
}
