//! The step record drivers keep across a job's attempts, in the database: the
//! CI/CD run a pipeline step started, read back when the job resumes.

use async_trait::async_trait;

use crate::drivers::{DriverError, ExternalRun, Recalled, StepJournal};
use crate::storage::pipeline_runs::{self, PipelineRun, StepKey};
use crate::storage::{Db, StorageError, jobs, now_millis};

#[derive(Clone)]
pub(super) struct RunJournal {
    db: Db,
    key: StepKey,
    /// The job and the worker that must still hold it for an intent to be
    /// written: one whose lease another worker took triggers nothing.
    holder: (i64, String),
}

impl RunJournal {
    pub(super) fn new(db: Db, key: StepKey, holder: (i64, String)) -> RunJournal {
        RunJournal { db, key, holder }
    }
}

/// The database blinked: the step is worth another attempt, which reads the
/// record again.
fn retryable(error: impl Into<StorageError>) -> DriverError {
    DriverError::Retryable(format!("the step's record: {}", error.into()))
}

#[async_trait]
impl StepJournal for RunJournal {
    async fn recall(&self) -> Result<Recalled, DriverError> {
        let mut conn = self.db.pool.acquire().await.map_err(retryable)?;
        let run = pipeline_runs::find(&mut conn, self.key)
            .await
            .map_err(retryable)?;
        Ok(match run {
            None => Recalled::Nothing,
            Some(run) if run.status_url == pipeline_runs::INTENDED => Recalled::Intended,
            Some(run) => Recalled::Started(ExternalRun {
                status_url: run.status_url,
                started_at: run.started_at,
            }),
        })
    }

    async fn intend(&self) -> Result<bool, DriverError> {
        let mut tx = self.db.write().await.map_err(retryable)?;
        let (job, worker) = (&self.holder.0, self.holder.1.as_str());
        if !jobs::holds(&mut tx, *job, worker)
            .await
            .map_err(retryable)?
        {
            return Err(DriverError::Retryable(
                "another worker took this job over: this attempt triggers nothing".into(),
            ));
        }
        let intended = pipeline_runs::intend(&mut tx, self.key, now_millis())
            .await
            .map_err(retryable)?;
        tx.commit().await.map_err(retryable)?;
        Ok(intended)
    }

    async fn withdraw(&self) -> Result<(), DriverError> {
        let mut tx = self.db.write().await.map_err(retryable)?;
        pipeline_runs::withdraw(&mut tx, self.key)
            .await
            .map_err(retryable)?;
        tx.commit().await.map_err(retryable)?;
        Ok(())
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

    async fn ended(&self) -> Result<(), DriverError> {
        let mut tx = self.db.write().await.map_err(retryable)?;
        pipeline_runs::end(&mut tx, self.key, now_millis())
            .await
            .map_err(retryable)?;
        tx.commit().await.map_err(retryable)?;
        Ok(())
    }

    fn detached(&self) -> std::sync::Arc<dyn StepJournal> {
        std::sync::Arc::new(self.clone())
    }
}
