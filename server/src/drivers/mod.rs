//! Drivers carry out a type's execution steps somewhere real. They sit behind one
//! trait so the orchestrator runs any step the same way: hand it the planned step,
//! record what it reports.
//!
//! The contract every driver keeps: **idempotent**. A re-run of the same step
//! after a crash at any point (before, during or after its effect) has no second
//! effect; the orchestrator relies on this instead of distributed transactions.

pub mod command;
pub mod gitops;
pub mod pipeline;
pub mod progress;

use async_trait::async_trait;
use slipway_core::execution::PlannedStep;
use slipway_core::secret::SecretValues;
use tokio_util::sync::CancellationToken;

pub use progress::ProgressLines;

/// What a step is run for, besides its own inputs.
pub struct StepContext<'a> {
    /// The request's secret parameters, decrypted for this run only. A driver may
    /// hand them to what it runs (as environment); it never writes them anywhere.
    pub secrets: &'a SecretValues,
    /// Cancelled when the step must end early (its time ran out, its request was
    /// cancelled, the server shuts down): a driver that started a program stops it.
    pub stop: &'a CancellationToken,
    /// Where a driver reports lines as they happen, for people watching the request
    /// live; blanks secrets and caps what it passes on.
    pub progress: &'a ProgressLines,
    /// Where a driver that starts something outside (a CI/CD run) records it, so
    /// that a later attempt of the same step follows it instead of starting another.
    pub journal: &'a dyn StepJournal,
    /// For a step run beside a PostgreSQL server in a job: how its sessions
    /// there are named. `None` outside a job (a name of the run's own).
    pub sessions: Option<&'a StepSessions>,
}

impl<'a> StepContext<'a> {
    /// For a program run outside a job (an acceptance check), which has
    /// nothing to resume.
    pub fn outside_a_job(
        secrets: &'a SecretValues,
        stop: &'a CancellationToken,
        progress: &'a ProgressLines,
    ) -> StepContext<'a> {
        StepContext {
            secrets,
            stop,
            progress,
            journal: &NoJournal,
            sessions: None,
        }
    }
}

/// A run a step started somewhere else, as recorded for the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRun {
    /// Where the run's status is read.
    pub status_url: String,
    /// When it was started (ms since the epoch): its deadline counts from here.
    pub started_at: i64,
}

/// What an earlier attempt of a step left of its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recalled {
    /// No attempt came as far as triggering it.
    Nothing,
    /// An attempt was about to trigger it and no run was recorded: it may have
    /// started (the attempt died or lost its job between the two).
    Intended,
    /// The run it started.
    Started(ExternalRun),
}

/// The record of one step of one revision, kept across the job's attempts.
#[async_trait]
pub trait StepJournal: Send + Sync {
    /// What an earlier attempt of this step left.
    async fn recall(&self) -> Result<Recalled, DriverError>;
    /// Records that this attempt is about to trigger the run, while it still
    /// holds its job; false when an earlier attempt came as far (recall it).
    async fn intend(&self) -> Result<bool, DriverError>;
    /// Takes this attempt's intent back: its trigger is known not to have gone
    /// out (no connection was made, or the CI/CD system answered that it was
    /// busy), so the next attempt may send it.
    async fn withdraw(&self) -> Result<(), DriverError>;
    /// Records the run before it is followed; the first record stays.
    async fn remember(&self, run: &ExternalRun) -> Result<(), DriverError>;
    /// Records that the run was seen to end: a retry starts a new one.
    async fn ended(&self) -> Result<(), DriverError>;
    /// The same journal, owned: for work that must finish even when the step
    /// is stopped (a run started must be recorded).
    fn detached(&self) -> std::sync::Arc<dyn StepJournal>;
}

/// The application names a step's sessions on its PostgreSQL server carry: a
/// prefix recorded for the step of the revision by its first attempt, then the
/// attempt's own step record, so that each attempt ends only its own sessions
/// when it is stopped, and a later one finds every earlier one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSessions {
    pub prefix: String,
    /// The attempt's step record (`job_steps.id`).
    pub attempt: i64,
    /// Whether an earlier attempt recorded the prefix: what it sent may still
    /// be running there.
    pub earlier: bool,
}

impl StepSessions {
    /// A new prefix: `slipway-step-` and 24 hex digits (a name, with the
    /// attempt, stays within PostgreSQL's 63 bytes).
    pub fn fresh_prefix() -> String {
        use rand::Rng as _;
        let bits: u128 = rand::rng().random::<u128>() >> 32;
        format!("slipway-step-{bits:024x}")
    }

    /// This attempt's `application_name` (`PGAPPNAME`).
    pub fn application_name(&self) -> String {
        format!("{}-{}", self.prefix, self.attempt)
    }
}

/// For a step run outside a job, which has nothing to resume.
pub struct NoJournal;

#[async_trait]
impl StepJournal for NoJournal {
    async fn recall(&self) -> Result<Recalled, DriverError> {
        Ok(Recalled::Nothing)
    }

    async fn intend(&self) -> Result<bool, DriverError> {
        Ok(true)
    }

    async fn withdraw(&self) -> Result<(), DriverError> {
        Ok(())
    }

    async fn remember(&self, _run: &ExternalRun) -> Result<(), DriverError> {
        Ok(())
    }

    async fn ended(&self) -> Result<(), DriverError> {
        Ok(())
    }

    fn detached(&self) -> std::sync::Arc<dyn StepJournal> {
        std::sync::Arc::new(NoJournal)
    }
}

/// What a finished step did, for the job's record and the request's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOutcome {
    /// One line for people, e.g. "committed 1a2b… to main".
    pub summary: String,
    /// The commit the step made or found, for drivers that commit.
    pub commit: Option<String>,
    /// Lines the driver reports along the way, in order.
    pub log: Vec<String>,
}

/// Why a step did not finish. The text names what failed and never holds a
/// credential or a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Worth another attempt later: a remote was down, a push lost a race too often.
    #[error("{0}")]
    Retryable(String),
    /// Another attempt would fail the same way: the step itself is wrong.
    #[error("{0}")]
    Permanent(String),
}

impl DriverError {
    /// The same error with `note` after its message.
    pub fn noted(self, note: &str) -> DriverError {
        match self {
            DriverError::Retryable(message) => DriverError::Retryable(message + note),
            DriverError::Permanent(message) => DriverError::Permanent(message + note),
        }
    }
}

#[async_trait]
pub trait Driver: Send + Sync {
    /// The name a type's `execute` step gives, e.g. "gitops".
    fn name(&self) -> &'static str;

    /// Whether a step, once handed to this driver, takes effect whatever the
    /// job does meanwhile (a push on its way cannot be called back). Such a step
    /// is not started after a stop, and once started it is waited for rather
    /// than abandoned on a stop, so that what is recorded (its commit) is what
    /// happened; the step's timeout still bounds the wait.
    fn finishes_once_started(&self) -> bool {
        false
    }

    /// Carries the step out, or finds it already done. Must be idempotent.
    async fn run(
        &self,
        step: &PlannedStep,
        ctx: &StepContext<'_>,
    ) -> Result<StepOutcome, DriverError>;
}

/// The drivers of one server, chosen by the step's kind.
#[derive(Clone)]
pub struct Drivers {
    pub gitops: gitops::GitOpsRepo,
    pub command: command::CommandDriver,
    pub pipeline: pipeline::PipelineDriver,
}

impl Drivers {
    pub fn for_step(&self, step: &PlannedStep) -> &dyn Driver {
        match step {
            PlannedStep::Gitops { .. } => &self.gitops,
            PlannedStep::Command(_) => &self.command,
            PlannedStep::Pipeline(_) => &self.pipeline,
        }
    }
}
