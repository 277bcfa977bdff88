//! What running an approved request does, step by step: the type's `execute` steps
//! with their inputs taken from the approved change set. Pure data; the server's
//! drivers carry the steps out.

use serde_json::Value;

use crate::catalog::{ExecutionStep, ResourceType};
use crate::render::{ChangeSet, RenderError, RenderedFile};
use crate::template;

mod pipeline;

/// The libpq variables a step beside a PostgreSQL server's admin connection may
/// still set itself: which database, and how the session behaves. Every other
/// `PG*` variable (where and as whom to connect, TLS and channel binding, a
/// password, service or config file) is the server's settings' alone: a step
/// that could set one could send the admin's credentials elsewhere or weaken how
/// they travel. `PGAPPNAME` is the run's own: the server finds the run's
/// sessions by it, to end them when the run is stopped.
const PG_STEP_VARIABLES: [&str; 6] = [
    "PGDATABASE",
    "PGOPTIONS",
    "PGCONNECT_TIMEOUT",
    "PGCLIENTENCODING",
    "PGDATESTYLE",
    "PGTZ",
];

/// The variable that marks every process of one command run: what the program
/// starts inherits it, also a process that leaves its group (`setsid`, `ssh -f`),
/// which the server finds by it and ends with the run.
pub const STEP_RUN_ENV: &str = "SLIPWAY_STEP_RUN";

/// psql's variables that make it read a file of meta-commands or start another
/// program (a start-up file, a pager, an editor, a shell): beside the admin's
/// password file, what psql runs is only what the step's checked files say.
const PSQL_PROGRAM_VARIABLES: [&str; 9] = [
    "PSQLRC",
    "PSQL_HISTORY",
    "PSQL_PAGER",
    "PAGER",
    "PSQL_EDITOR",
    "PSQL_EDITOR_LINENUMBER_ARG",
    "EDITOR",
    "VISUAL",
    "SHELL",
];

/// Whether beside a PostgreSQL server only the server's settings may set this
/// variable: where and as whom libpq connects, and what psql loads or starts.
pub fn is_pg_connection_variable(name: &str) -> bool {
    (name.starts_with("PG") && !PG_STEP_VARIABLES.contains(&name))
        || PSQL_PROGRAM_VARIABLES.contains(&name)
}

pub use pipeline::{PipelineVerdict, PlannedPipeline, run_key};

/// Facts about the run that commit messages and other step inputs may name.
#[derive(Debug, Clone, Copy)]
pub struct RunInfo<'a> {
    pub request_id: i64,
    pub revision: i64,
    pub requester: &'a str,
    /// How many runs of the request came before this one (0 for the first; a
    /// retry after a failure is the next): a retried pipeline step starts a new
    /// run under a new key, where a resumed one follows its own.
    pub round: i64,
}

/// One step ready for its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedStep {
    /// Commit these files (sorted by path) with this message.
    Gitops {
        files: Vec<RenderedFile>,
        /// Paths to remove in the same commit (a retired asset's files).
        removed: Vec<String>,
        message: String,
    },
    /// Run a program on these files.
    Command(PlannedCommand),
    /// Trigger a CI/CD run and follow it.
    Pipeline(PlannedPipeline),
}

/// A command with its arguments and environment rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Written into the scratch directory at their paths before the program runs.
    pub files: Vec<RenderedFile>,
    pub env: Vec<(String, String)>,
    /// (variable, secret parameter): the driver sets the variable to the value.
    pub secret_env: Vec<(String, String)>,
    /// (variable, secret): the driver sets the variable to the secret's
    /// SCRAM-SHA-256 verifier.
    pub secret_env_scram: Vec<(String, String)>,
    pub timeout_seconds: Option<u64>,
    /// A PostgreSQL server of the settings whose connection the driver passes
    /// as libpq variables.
    pub postgres_server: Option<String>,
    /// Exit statuses after which the job is tried again rather than failed.
    pub retry_exit_codes: Vec<i32>,
}

impl PlannedStep {
    pub fn driver(&self) -> &'static str {
        match self {
            PlannedStep::Gitops { .. } => "gitops",
            PlannedStep::Command(_) => "command",
            PlannedStep::Pipeline(_) => "pipeline",
        }
    }

    /// The rendered files the step hands to its driver.
    pub fn files(&self) -> &[RenderedFile] {
        match self {
            PlannedStep::Gitops { files, .. } => files,
            PlannedStep::Command(command) => &command.files,
            PlannedStep::Pipeline(_) => &[],
        }
    }
}

/// The type's steps for one request. Files come from the approved change set (the
/// bytes the reviewer saw), never from a new rendering; only the small texts a step
/// adds, like a commit message, are rendered here.
pub fn plan(
    ty: &ResourceType,
    params: &Value,
    resource_name: &str,
    change_set: &ChangeSet,
    run: RunInfo<'_>,
) -> Result<Vec<PlannedStep>, RenderError> {
    let base = template::context(ty, params, Some(resource_name));
    let ctx = minijinja::context! {
        request_id => run.request_id,
        revision => run.revision,
        requester => run.requester,
        ..base
    };
    ty.execute
        .iter()
        .enumerate()
        .map(|(i, step)| match step {
            ExecutionStep::Gitops { outputs, message } => {
                // A step that commits every output carries the removals too.
                let (files, removed) = match outputs {
                    None => (change_set.files.clone(), change_set.removed.clone()),
                    Some(names) => (files_of(change_set, names, i)?, Vec::new()),
                };
                let message = match message {
                    Some(source) => {
                        template::render_str(source, &ctx).map_err(|m| RenderError {
                            what: format!("execute[{i}].message"),
                            message: m,
                        })?
                    }
                    None => default_message(ty, resource_name, run),
                };
                Ok(PlannedStep::Gitops {
                    files,
                    removed,
                    message,
                })
            }
            ExecutionStep::Pipeline(step) => {
                let key = run_key(run.request_id, run.revision, i, run.round);
                let ctx = minijinja::context! { run_key => key.clone(), ..ctx.clone() };
                pipeline::plan(i, step, &ctx, key).map(PlannedStep::Pipeline)
            }
            ExecutionStep::Command(command) => {
                let files = match &command.inputs {
                    None => change_set.files.clone(),
                    Some(names) => files_of(change_set, names, i)?,
                };
                let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
                let ctx = minijinja::context! { inputs => paths, ..ctx.clone() };
                let render = |what: String, source: &str| {
                    template::render_str(source, &ctx)
                        .map_err(|message| RenderError { what, message })
                };
                let args = command
                    .args
                    .iter()
                    .enumerate()
                    .map(|(j, arg)| render(format!("execute[{i}].args[{j}]"), arg))
                    .collect::<Result<Vec<_>, _>>()?;
                crate::render::refuse_smuggled_options(
                    &format!("execute[{i}]"),
                    &command.args,
                    &args,
                )?;
                let env = command
                    .env
                    .iter()
                    .map(|(name, value)| {
                        Ok((
                            name.clone(),
                            render(format!("execute[{i}].env.{name}"), value)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, RenderError>>()?;
                Ok(PlannedStep::Command(PlannedCommand {
                    program: command.program.clone(),
                    args,
                    files,
                    env,
                    secret_env: command
                        .secret_env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    secret_env_scram: command
                        .secret_env_scram
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    timeout_seconds: command.timeout_seconds,
                    postgres_server: command.postgres_server.clone(),
                    retry_exit_codes: command.retry_exit_codes.clone(),
                }))
            }
        })
        .collect()
}

fn files_of(
    change_set: &ChangeSet,
    names: &[String],
    step: usize,
) -> Result<Vec<RenderedFile>, RenderError> {
    for name in names {
        if !change_set.outputs.values().any(|n| n == name) {
            return Err(RenderError {
                what: format!("execute[{step}].outputs"),
                message: format!(
                    "the approved change set has no file rendered from the output {name:?}; \
                     a change set rendered before the type named its outputs must be revised"
                ),
            });
        }
    }
    Ok(change_set
        .files
        .iter()
        .filter(|f| {
            change_set
                .outputs
                .get(&f.path)
                .is_some_and(|n| names.contains(n))
        })
        .cloned()
        .collect())
}

fn default_message(ty: &ResourceType, resource_name: &str, run: RunInfo<'_>) -> String {
    format!(
        "{} {} (request #{}, revision {})\n\nRequested by {} through Slipway.",
        ty.name, resource_name, run.request_id, run.revision, run.requester
    )
}

#[cfg(test)]
mod tests;
