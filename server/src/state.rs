use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::audit_chain::CheckpointSigner;
use crate::catalog_source::LoadedCatalog;
use crate::config::Settings;
use crate::drivers::Drivers;
use crate::drivers::gitops::GitOpsRepo;
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::secrets::SecretBox;
use crate::storage::Db;

/// Everything a request handler or the worker needs, cloned cheaply into each.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub catalog: Arc<LoadedCatalog>,
    /// The local GitOps repository, for reading back what was committed.
    pub gitops: GitOpsRepo,
    /// What carries out a type's execution steps.
    pub drivers: Drivers,
    /// The gate of every connection a catalog asks for (checks, pipelines).
    pub outbound: Outbound,
    pub settings: Arc<Settings>,
    /// Encrypts and decrypts secret parameters; none when no key is configured and
    /// no type has secrets (start-up refuses the other cases).
    pub secrets: Option<SecretBox>,
    /// Wakes the worker when a job is enqueued, so it need not poll fast.
    pub jobs_ready: Arc<Notify>,
    /// The leases of the jobs this process runs, renewed together.
    pub leases: Arc<crate::orchestrator::LeaseKeeper>,
    /// Wakes the audit sealer after a call that may have written events.
    pub audit_pending: Arc<Notify>,
    /// API token calls waiting to be written to the audit log.
    pub token_uses: Arc<crate::services::token_uses::UseLog>,
    /// How fast each API token may call.
    pub token_pace: Arc<crate::services::token_pace::TokenPace>,
    /// How fast one person's pre-checks may come (the form's live check, the
    /// API's and chat's): each reads names, quotas and requirements.
    pub check_pace: Arc<crate::services::token_pace::TokenPace>,
    /// Signs audit checkpoints; none when no secret key is configured.
    pub audit_signer: Option<CheckpointSigner>,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down: long-lived answers (event streams)
    /// end then, or the graceful shutdown would wait on them forever.
    pub shutdown: CancellationToken,
    /// The live progress streams open now, bounded in all and per person.
    pub streams: Arc<crate::services::slots::Slots>,
    /// The bulk downloads being sent now, bounded in all and per person.
    pub downloads: Arc<crate::services::slots::Slots>,
    /// Flow metrics computed in the last minute.
    pub flow_figures: Arc<crate::services::flow::FlowFigures>,
    /// Password checks running now, at most one per core: each costs tens of
    /// milliseconds of CPU, and a flood of guesses must not starve the rest.
    pub password_checks: Arc<tokio::sync::Semaphore>,
}
