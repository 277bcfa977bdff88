//! The step record drivers keep across a job's attempts, in the database: the
//! CI/CD run a pipeline step started, read back when the job resumes.

use async_trait::async_trait;

use crate::drivers::{DriverError, ExternalRun, StepJournal};
use crate::storage::pipeline_runs::{self, PipelineRun, StepKey};
use crate::storage::{Db, StorageError};

#[derive(Clone)]
pub(super) struct RunJournal {
    db: Db,
    key: StepKey,
}

impl RunJournal {
    pub(super) fn new(db: Db, key: StepKey) -> RunJournal {
        RunJournal { db, key }
    }
}

/// The database blinked: the step is worth another attempt, which reads the
/// record again.
fn retryable(error: impl Into<StorageError>) -> DriverError {
    DriverError::Retryable(format!("the step's record: {}", error.into()))
}

#[async_trait]
impl StepJournal for RunJournal {
    async fn recall(&self) -> Result<Option<ExternalRun>, DriverError> {
        let mut conn = self.db.pool.acquire().await.map_err(retryable)?;
        let run = pipeline_runs::find(&mut conn, self.key)
            .await
            .map_err(retryable)?;
        Ok(run.map(|run| ExternalRun {
            status_url: run.status_url,
            started_at: run.started_at,
        }))
    }

    async fn remember(&self, run: &ExternalRun) -> Result<(), DriverError> {
        let mut tx = self.db.write().await.map_err(retryable)?;
        pipeline_runs::record(
            &mut tx,
            self.key,
            &PipelineRun {
                status_url: run.status_url.clone(),
                started_at: run.started_at,
            },
        )
        .await
        .map_err(retryable)?;
        tx.commit().await.map_err(retryable)?;
        Ok(())
    }

    fn detached(&self) -> std::sync::Arc<dyn StepJournal> {
        std::sync::Arc::new(self.clone())
    }
}
