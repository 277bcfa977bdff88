//! The catalog: dictionaries of terms and resource types, loaded from YAML files.
//! A resource type is data; nothing in Rust knows any particular type.

mod fields;
mod file;
mod keywords;
mod loader;
mod lookup;
pub mod nesting;
mod pipeline;
mod schema;
mod version;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use fields::{ChoiceOption, FieldKind, FieldSpec};
pub use lookup::{Lookup, is_plain_name};
pub use pipeline::{PipelineStep, PipelineToken};

/// A catalog file as read by the caller (the server from disk, tests from `include_str!`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Relative to the catalog root, '/'-separated, e.g. "types/postgres-database.yaml".
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub dictionaries: BTreeMap<String, Dictionary>,
    pub types: BTreeMap<String, ResourceType>,
    /// Keyed by the path under `templates/`, e.g. "postgres-database/cluster.yaml.j2".
    pub templates: BTreeMap<String, String>,
}

impl Catalog {
    /// Reads `dictionaries/*.yaml`, `types/*.yaml` and `templates/**`; other files are ignored.
    /// Every problem found is reported, not just the first.
    pub fn from_files(files: &[SourceFile]) -> Result<Catalog, CatalogErrors> {
        loader::load(files)
    }

    pub fn resource_type(&self, name: &str) -> Option<&ResourceType> {
        self.types.get(name)
    }

    /// The type a request is checked and run as: the type itself for a creation,
    /// the action's request type for a day-2 action.
    pub fn request_type(&self, name: &str, action: Option<&str>) -> Option<&ResourceType> {
        let ty = self.types.get(name)?;
        match action {
            None => Some(ty),
            Some(action) => ty.action(action).map(|a| &a.request_type),
        }
    }

    pub fn dictionary(&self, name: &str) -> Option<&Dictionary> {
        self.dictionaries.get(name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogErrors(pub Vec<CatalogError>);

impl fmt::Display for CatalogErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CatalogErrors {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogError {
    pub file: String,
    /// Where inside the file, e.g. "parameters.properties.size.enum"; "" for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

impl std::error::Error for CatalogError {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dictionary {
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Term {
    pub key: String,
    pub title: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceType {
    pub name: String,
    pub title: String,
    pub description: String,
    /// The team responsible for this offering; its reviewers review requests of it.
    pub owner: String,
    /// The parameter that names the team a request is for, and the dictionary of
    /// teams it draws from. Absent: requests of this type belong to no team.
    pub owner_param: Option<OwnerParam>,
    /// The parameter that names the environment, so lists can filter by it.
    pub environment_param: Option<String>,
    /// Parameters whose values asset search finds, besides the name and the team.
    pub search: Vec<String>,
    /// The JSON Schema, with every `x-dictionary` already resolved into
    /// `enum` (the keys) and `x-enum-titles` (the titles).
    pub parameters: serde_json::Value,
    pub naming: Naming,
    pub quota: Vec<QuotaRule>,
    pub requires: Vec<Requirement>,
    pub review: ReviewPolicy,
    pub risk_hints: Vec<RiskHint>,
    pub outputs: Vec<OutputSpec>,
    /// What runs after approval, in order. Never empty: a type that declares no
    /// `execute` gets one GitOps step committing every output.
    pub execute: Vec<ExecutionStep>,
    /// How often and how long the worker tries the steps before giving up.
    pub limits: ExecutionLimits,
    /// Secrets Slipway makes up for each request (a database owner's password):
    /// never a form field, shown once to the requester, handed to drivers and checks.
    #[serde(default)]
    pub generated_secrets: Vec<GeneratedSecret>,
    pub checks: Vec<CheckSpec>,
    pub monitoring: Vec<MonitoringSpec>,
    /// Paths (templates) the change set removes from the GitOps repository: the
    /// outputs of the type an action retires. Empty for a type's creation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removes: Vec<String>,
    /// Day-2 operations on an asset of this type, in the order written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<TypeAction>,
    /// The catalog version of the type (see `version.rs`): recorded with every
    /// change set, so an asset says what made it and a template change is noticed.
    /// An action's request type carries its type's version.
    #[serde(default)]
    pub version: String,
}

/// A day-2 operation declared by a type: a small type bound to an existing asset.
/// A request for it walks the same flow as a creation, with `request_type` in the
/// role of the type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeAction {
    /// The action's id in URLs and the API: `scale`, `decommission`.
    pub name: String,
    pub title: String,
    pub description: String,
    /// Completing it retires the asset; its outputs are removed from the repository.
    pub retires: bool,
    /// The action's own form (a JSON Schema of `type: object`, dictionaries
    /// resolved): the only parameters a request for it gives.
    pub parameters: serde_json::Value,
    /// The type a request for this action is checked, reviewed, rendered, run
    /// and verified as: the type's parameters with the action's laid over them,
    /// the action's review, hints, outputs, steps and checks (or the type's).
    pub request_type: ResourceType,
    /// What refuses a request for the action given the asset as it is (a volume
    /// that cannot shrink, a major version that cannot go back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ActionRule>,
    /// Parameters of the action whose values, all together, a completed request
    /// of the action on the same asset may not have used: a second backup under
    /// a name already taken would render the same file, commit nothing and
    /// report a backup that was never taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_by: Vec<String>,
    /// The completed request of another action on the same asset that a request
    /// for this one needs: a restore needs the backup it names, taken and done
    /// (one never taken, or failed, would render a recovery from nothing), and
    /// its templates read that request's parameters as `referred` (the version
    /// the backup was taken at, not the asset's today).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refers_to: Option<ActionReference>,
}

/// Which completed request an action needs: one of `action` on the same asset
/// whose values of the parameters `by` are the request's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionReference {
    pub action: String,
    pub by: Vec<String>,
}

/// A pre-check rule of an action: when `when` (an expression over the request's
/// parameters and `current`, the asset's recorded ones) is true, the request is
/// refused with `message` (a template over the same) on `field` ("" for the
/// whole request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRule {
    pub when: String,
    pub field: String,
    pub message: String,
}

impl TypeAction {
    /// The most actions one type may declare, and the longest title and
    /// description: an asset page lists them all.
    pub const MAX_PER_TYPE: usize = 16;
    pub const MAX_TITLE: usize = 60;
    pub const MAX_DESCRIPTION: usize = 500;
    pub const MAX_NAME: usize = 32;
    pub const MAX_RULES: usize = 16;
    /// The action Slipway adds to every type with outputs and opens itself when
    /// the type's templates change: the asset rendered again, reviewed as a diff.
    pub const UPGRADE: &'static str = "upgrade-templates";

    /// Whether this is the template upgrade Slipway opens, not one a type declared.
    pub fn is_upgrade(&self) -> bool {
        self.name == Self::UPGRADE
    }

    /// Whether the action's change set stands for all the asset has deployed
    /// (its retirement, or its templates rendered again): a file the asset has
    /// deployed that the change does not write is removed with it.
    pub fn covers_every_output(&self) -> bool {
        self.retires || self.is_upgrade()
    }

    /// The form of the action: its request type with only the action's own
    /// parameters, for the generated form and its checks in the browser.
    pub fn form_type(&self) -> ResourceType {
        let mut form = self.request_type.clone();
        form.parameters = self.parameters.clone();
        form
    }

    /// The form of this action on the asset called `resource_name`: the action's
    /// parameters, named as the asset is. An action never renames, and the form's
    /// checks would otherwise render the type's naming template from parameters the
    /// form does not hold (name, team, environment) and refuse every submit.
    pub fn form_type_for(&self, resource_name: &str) -> ResourceType {
        let mut form = self.form_type();
        form.naming.template = format!("{{% raw %}}{resource_name}{{% endraw %}}");
        form
    }

    /// The names of the action's own parameters, in form order.
    pub fn param_names(&self) -> Vec<String> {
        self.parameters
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `name` is a valid action name: lowercase letters, digits and '-',
    /// starting with a letter, at most [`Self::MAX_NAME`] characters.
    pub fn is_valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && name.len() <= Self::MAX_NAME
            && !name.ends_with('-')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }
}

impl ResourceType {
    /// The action of this type called `name`.
    pub fn action(&self, name: &str) -> Option<&TypeAction> {
        self.actions.iter().find(|a| a.name == name)
    }
}

impl ResourceType {
    /// The form's fields, in the schema's property order.
    pub fn fields(&self) -> Vec<FieldSpec> {
        fields::fields(&self.parameters)
    }

    pub fn default_params(&self) -> serde_json::Map<String, serde_json::Value> {
        fields::default_params(&self.parameters)
    }

    /// The title of a parameter, falling back to its name.
    pub fn param_title(&self, name: &str) -> String {
        self.parameters
            .pointer(&format!("/properties/{name}/title"))
            .and_then(|t| t.as_str())
            .unwrap_or(name)
            .to_string()
    }

    /// Every parameter's title, in the schema's order (for pages that list them).
    pub fn param_titles(&self) -> Vec<crate::views::ParamTitle> {
        self.parameters
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|props| {
                props
                    .keys()
                    .map(|name| crate::views::ParamTitle {
                        name: name.clone(),
                        title: self.param_title(name),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The parameters marked `x-secret: true`, in schema order.
    pub fn secret_params(&self) -> Vec<String> {
        schema::secret_params(&self.parameters)
    }

    pub fn is_secret(&self, name: &str) -> bool {
        schema::is_secret(&self.parameters, name)
    }

    /// Whether drivers and checks may be handed `name`'s value: a secret parameter
    /// or a generated secret.
    pub fn has_secret_value(&self, name: &str) -> bool {
        self.is_secret(name) || self.generated_secrets.iter().any(|g| g.name == name)
    }

    /// The environment a set of parameters is for, when the type declares one.
    pub fn environment<'a>(&self, params: &'a serde_json::Value) -> Option<&'a str> {
        params.get(self.environment_param.as_deref()?)?.as_str()
    }

    /// Whether the parameter is declared `type: integer`.
    pub fn is_integer_param(&self, name: &str) -> bool {
        schema::property_type(&self.parameters, name) == Some("integer")
    }

    /// Whether the schema's `required` lists the parameter: a request always gives it.
    pub fn is_required(&self, name: &str) -> bool {
        self.parameters
            .get("required")
            .and_then(|r| r.as_array())
            .is_some_and(|required| required.iter().any(|entry| entry.as_str() == Some(name)))
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.parameters
            .get("properties")
            .and_then(|p| p.get(name))
            .is_some()
    }

    /// Whether a step commits its files to the GitOps repository: only then
    /// do its assets hold paths there (a pipeline's or a command's files are
    /// handed to a program, never deployed).
    pub fn commits_to_gitops(&self) -> bool {
        self.execute
            .iter()
            .any(|step| matches!(step, ExecutionStep::Gitops { .. }))
    }
}

impl ResourceType {
    /// The team a set of parameters is for, when the type declares one. `None`
    /// also when the type names an owner parameter the parameters leave out (or
    /// give as something other than text): the policy refuses such a request
    /// rather than take it for one of a type without teams.
    pub fn owning_team<'a>(&self, params: &'a serde_json::Value) -> Option<&'a str> {
        let owner = self.owner_param.as_ref()?;
        params.get(&owner.param).and_then(|v| v.as_str())
    }

    /// The type as a person who may ask only for `teams` sees it: the owning-team
    /// field offers just those (with their titles), so the form and its checks agree
    /// with what the server will accept.
    pub fn for_teams(&self, teams: &[String]) -> ResourceType {
        let mut narrowed = self.clone();
        let Some(owner) = &self.owner_param else {
            return narrowed;
        };
        let Some(field) = narrowed
            .parameters
            .get_mut("properties")
            .and_then(|p| p.get_mut(&owner.param))
            .and_then(|f| f.as_object_mut())
        else {
            return narrowed;
        };
        let keys = field
            .get("enum")
            .and_then(|e| e.as_array())
            .cloned()
            .unwrap_or_default();
        // Titles that do not line up with the values (the loader refuses them)
        // would label one team with another's name: better none.
        let titles = field
            .get("x-enum-titles")
            .and_then(|e| e.as_array())
            .filter(|titles| titles.len() == keys.len())
            .cloned();
        let keep: Vec<usize> = (0..keys.len())
            .filter(|i| {
                keys[*i]
                    .as_str()
                    .is_some_and(|k| teams.iter().any(|t| t == k))
            })
            .collect();
        field.insert(
            "enum".into(),
            keep.iter().map(|i| keys[*i].clone()).collect(),
        );
        if let Some(titles) = titles {
            field.insert(
                "x-enum-titles".into(),
                keep.iter()
                    .filter_map(|i| titles.get(*i).cloned())
                    .collect(),
            );
        }
        if keep.len() == 1 {
            field.insert("default".into(), keys[keep[0]].clone());
        }
        narrowed
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerParam {
    pub param: String,
    /// The dictionary the parameter's values come from (its `x-dictionary`).
    pub dictionary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Naming {
    /// A minijinja template over the parameters, e.g. "{{ team }}-{{ name }}".
    pub template: String,
    /// The rule a rendered name must follow (an ECMA-262 regular expression, as in
    /// JSON Schema), and the rule in words for error messages.
    pub pattern: String,
    pub pattern_description: String,
    pub max_length: usize,
}

pub const DEFAULT_MAX_NAME_LENGTH: usize = 63;
/// A DNS-1123 label: names end up as Kubernetes names, hostnames and database names.
pub const DEFAULT_NAME_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";
pub const DEFAULT_NAME_PATTERN_DESCRIPTION: &str =
    "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaRule {
    /// Parameter names whose values define the scope the rule counts in.
    pub per: Vec<String>,
    pub max_count: Option<u64>,
    /// An integer parameter summed over the scope.
    pub sum: Option<String>,
    pub max: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    pub type_name: String,
    /// Parameter of the required type -> template over this request's parameters.
    pub r#match: BTreeMap<String, String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewPolicy {
    pub approver_role: String,
    pub required: u32,
    /// A minijinja expression over the parameters; true means the policy approves.
    pub auto_approve_when: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskHint {
    pub when: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// How execution steps refer to this output; defaults to its template's path.
    pub name: String,
    pub path: String,
    /// A file under `templates/`.
    pub template: String,
}

/// How persistent the worker is with a type's execution: a transient failure (a
/// remote down, a step past its time) is retried with growing, jittered pauses
/// until `max_attempts` runs have been made; then the request fails into manual
/// handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionLimits {
    pub max_attempts: u32,
    /// How long one step may run before it is stopped and counted as a failed attempt.
    pub step_timeout_seconds: u64,
}

impl ExecutionLimits {
    pub const MAX_ATTEMPTS: std::ops::RangeInclusive<u32> = 1..=25;
    pub const STEP_TIMEOUT_SECONDS: std::ops::RangeInclusive<u64> = 1..=86_400;
}

impl Default for ExecutionLimits {
    fn default() -> Self {
        ExecutionLimits {
            max_attempts: 5,
            step_timeout_seconds: 600,
        }
    }
}

/// A secret Slipway generates for every request of a type: random letters and
/// digits, sealed like a secret parameter, kept through revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedSecret {
    /// How steps and checks name it (`secret_env`, `password_secret`).
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub length: usize,
}

impl GeneratedSecret {
    pub const LENGTH: std::ops::RangeInclusive<usize> = 16..=128;
    pub const DEFAULT_LENGTH: usize = 32;
}

/// One step of a type's execution: a driver and the rendered inputs it is given.
/// Drivers are idempotent, so a step that runs twice has the effect of once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "kebab-case")]
pub enum ExecutionStep {
    /// Commits rendered outputs to the GitOps repository.
    Gitops {
        /// The names of the outputs to commit; `None` commits every output.
        outputs: Option<Vec<String>>,
        /// A template for the commit message; `None` uses one naming the request.
        message: Option<String>,
    },
    /// Runs an allow-listed program on rendered files in a scratch directory.
    Command(CommandStep),
    /// Triggers a CI/CD run over HTTP and follows it to its end.
    Pipeline(PipelineStep),
}

/// A `command` step: a program (allowed by the server's settings, never run
/// through a shell), its arguments as a list of templates, the outputs written
/// into its working directory, and its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandStep {
    /// A program name looked up on the server's PATH, or an absolute path.
    pub program: String,
    /// Templates, one argument each: a value with spaces stays one argument.
    pub args: Vec<String>,
    /// The outputs written into the scratch directory (by name); `None`: all.
    pub inputs: Option<Vec<String>>,
    /// Environment variables: name -> template (never a secret's value).
    pub env: BTreeMap<String, String>,
    /// Environment variables holding the value of a secret parameter: name -> parameter.
    pub secret_env: BTreeMap<String, String>,
    /// Environment variables holding a secret's SCRAM-SHA-256 verifier (what
    /// PostgreSQL stores of a password), name -> secret: `ALTER ROLE … PASSWORD`
    /// given the verifier sets the same password without the password itself
    /// in the statement, which a server may log.
    #[serde(default)]
    pub secret_env_scram: BTreeMap<String, String>,
    /// How long the program may run before it is stopped; `None`: the server's default.
    pub timeout_seconds: Option<u64>,
    /// A PostgreSQL server named in the settings, handed to the program as the
    /// libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
    #[serde(default)]
    pub postgres_server: Option<String>,
    /// Exit statuses that say the program could not do its work for now (psql's
    /// 2: the connection failed or was lost) rather than that the work failed:
    /// the job is tried again, within the type's attempts, instead of failing
    /// the request at once.
    #[serde(default)]
    pub retry_exit_codes: Vec<i32>,
}

impl ExecutionStep {
    /// The drivers a step may name, as the catalog spells them.
    pub const DRIVERS: &'static [&'static str] = &["gitops", "command", "pipeline"];

    /// The step a type without `execute` gets: commit everything it renders.
    pub fn commit_all() -> ExecutionStep {
        ExecutionStep::Gitops {
            outputs: None,
            message: None,
        }
    }

    pub fn driver(&self) -> &'static str {
        match self {
            ExecutionStep::Gitops { .. } => "gitops",
            ExecutionStep::Command(_) => "command",
            ExecutionStep::Pipeline(_) => "pipeline",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub kind: CheckKind,
    pub description: Option<String>,
}

/// What an acceptance check looks at. In a type every text field is a template;
/// [`crate::render::checks`] renders them with the request's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CheckKind {
    /// The path holds the approved content in the GitOps repository: at the remote
    /// when one is configured, else in the local repository.
    #[serde(rename = "git-file", alias = "gitops-file")]
    GitFile { path: String },
    /// The URL answers with the expected status (and body), tried until the deadline.
    Http {
        url: String,
        status: u16,
        /// A text the body must contain.
        body_contains: Option<String>,
        /// A pattern (JSON Schema `pattern` syntax, unanchored) the body must match.
        body_matches: Option<String>,
        deadline_seconds: u64,
    },
    /// `host:port` accepts a TCP connection, tried until the deadline.
    Tcp {
        address: String,
        deadline_seconds: u64,
    },
    /// An allow-listed program run with these arguments exits with status 0.
    Command {
        program: String,
        args: Vec<String>,
        /// `None`: the server's default command timeout.
        timeout_seconds: Option<u64>,
    },
    /// Connects to a database of a PostgreSQL server named in the settings as a
    /// role whose password is a secret of the request, and runs a query; passes
    /// when the first column of its first row reads `expect` (or, without one,
    /// when the query succeeds). Tried until the deadline.
    Postgres {
        server: String,
        database: String,
        user: String,
        password_secret: String,
        query: String,
        expect: Option<String>,
        deadline_seconds: u64,
    },
}

impl CheckKind {
    /// The kinds a check may name, as the catalog spells them.
    pub const KINDS: &'static [&'static str] = &["git-file", "http", "tcp", "command", "postgres"];

    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::GitFile { .. } => "git-file",
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Command { .. } => "command",
            CheckKind::Postgres { .. } => "postgres",
        }
    }

    /// What the check looks at, in one line: the path, URL, address or program.
    pub fn target(&self) -> String {
        match self {
            CheckKind::GitFile { path } => path.clone(),
            CheckKind::Http { url, .. } => url.clone(),
            CheckKind::Tcp { address, .. } => address.clone(),
            CheckKind::Command { program, args, .. } => std::iter::once(program.as_str())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            CheckKind::Postgres {
                server,
                database,
                user,
                ..
            } => format!("{user}@{server}/{database}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringSpec {
    pub name: String,
    pub kind: String,
    pub target: String,
}

#[cfg(test)]
mod tests;
