//! Rendering a request into what it changes: the files for the GitOps repository,
//! the checks that prove it landed, and the monitoring that watches it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, CheckKind, ResourceType};
use crate::{checks, template};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenderedFile {
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeSet {
    /// Sorted by path.
    pub files: Vec<RenderedFile>,
    /// Which output each path was rendered from (path -> output name), so an
    /// execution step can take the outputs it names. Not part of the hash: it
    /// follows from the type, and change sets stored before it existed lack it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub outputs: std::collections::BTreeMap<String, String>,
    /// Paths the change removes from the GitOps repository (sorted): the files of
    /// an asset an action retires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

impl ChangeSet {
    /// The identity of what a reviewer approved: an approval is only valid for this hash.
    pub fn hash(&self) -> String {
        let mut files: Vec<&RenderedFile> = self.files.iter().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut hasher = Sha256::new();
        for file in files {
            hasher.update(file.path.as_bytes());
            hasher.update([0]);
            hasher.update(file.content.as_bytes());
            hasher.update([0]);
        }
        // Only a change that removes files hashes its removals, so the hash of
        // every change set stored before removals existed stays what it was.
        for path in &self.removed {
            hasher.update(b"-");
            hasher.update(path.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }
}

/// The identity of a request's parameters, independent of key order: an approval
/// binds these as well as the change set, because they become the CMDB record.
pub fn params_hash(params: &Value) -> String {
    fn canonical(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let sorted: std::collections::BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, canonical(v))).collect();
                Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    let text = serde_json::to_string(&canonical(params)).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenderedCheck {
    pub kind: CheckKind,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MonitoringItem {
    pub name: String,
    pub kind: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct RenderError {
    /// Which template failed, e.g. "outputs[0].path".
    pub what: String,
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.message)
    }
}

fn fail(what: impl Into<String>, message: impl Into<String>) -> RenderError {
    RenderError {
        what: what.into(),
        message: message.into(),
    }
}

fn render(what: &str, source: &str, ctx: &minijinja::Value) -> Result<String, RenderError> {
    template::render_str(source, ctx).map_err(|m| fail(what, m))
}

fn render_path(what: &str, source: &str, ctx: &minijinja::Value) -> Result<String, RenderError> {
    let path = render(what, source, ctx)?.trim().to_string();
    template::check_relative_path(&path).map_err(|m| fail(what, m))?;
    Ok(path)
}

/// Renders the type's outputs. `requires` names the assets that satisfied the type's
/// `requires` entries, in their order; templates read them as `requires[0]`, … so a
/// database lands in the namespace that was actually found.
pub fn change_set(
    catalog: &Catalog,
    ty: &ResourceType,
    params: &Value,
    resource_name: &str,
    requires: &[String],
) -> Result<ChangeSet, RenderError> {
    change_set_referring(catalog, ty, params, resource_name, (requires, None))
}

/// [`change_set`] of an action that refers to an earlier request: its templates
/// read that request's parameters as `referred`.
pub fn change_set_referring(
    catalog: &Catalog,
    ty: &ResourceType,
    params: &Value,
    resource_name: &str,
    (requires, referred): (&[String], Option<&Value>),
) -> Result<ChangeSet, RenderError> {
    let ctx = template::render_context(ty, params, resource_name, (requires, referred));
    let mut env = template::environment();
    for (name, source) in &catalog.templates {
        env.add_template(name, source)
            .map_err(|e| fail(format!("templates/{name}"), template::error_text(&e)))?;
    }
    let mut files = Vec::with_capacity(ty.outputs.len());
    let mut outputs = std::collections::BTreeMap::new();
    for (i, output) in ty.outputs.iter().enumerate() {
        let what = format!("outputs[{i}].path");
        let path = render_path(&what, &output.path, &ctx)?;
        template::check_deployable_path(&path).map_err(|m| fail(&what, m))?;
        let what = format!("templates/{}", output.template);
        let source = env
            .get_template(&output.template)
            .map_err(|e| fail(&what, template::error_text(&e)))?;
        let content = template::render_capped(&source, &ctx, template::MAX_RENDERED_FILE_BYTES)
            .map_err(|m| fail(&what, m))?;
        let file = RenderedFile { path, content };
        check_syntax(&file)
            .map_err(|e| fail(&what, format!("the rendered {} {}", e.what, e.message)))?;
        outputs.insert(file.path.clone(), output.name.clone());
        files.push(file);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // A checkout on a case-insensitive file system (macOS, Windows) holds one
    // file for `A.yaml` and `a.yaml`: one output would overwrite the other.
    let mut seen = std::collections::BTreeMap::new();
    for file in &files {
        if let Some(earlier) = seen.insert(file.path.to_lowercase(), &file.path) {
            let message = if *earlier == file.path {
                format!("two outputs render to {}", file.path)
            } else {
                format!(
                    "two outputs render to {earlier} and {}, one file where case is not told apart",
                    file.path
                )
            };
            return Err(fail("outputs", message));
        }
    }
    let mut removed = Vec::with_capacity(ty.removes.len());
    for (i, source) in ty.removes.iter().enumerate() {
        let what = format!("removes[{i}]");
        let path = render_path(&what, source, &ctx)?;
        // Removing Slipway's own files or git's is as harmful as writing them.
        template::check_deployable_path(&path).map_err(|m| fail(&what, m))?;
        if !files.iter().any(|f| f.path == path) && !removed.contains(&path) {
            removed.push(path);
        }
    }
    removed.sort();
    Ok(ChangeSet {
        files,
        outputs,
        removed,
    })
}

/// Whether a change set may write or remove `path`: relative, inside the
/// repository, outside Slipway's own directory and none of git's control files.
pub fn check_deployable_path(path: &str) -> Result<(), String> {
    template::check_relative_path(path)?;
    template::check_deployable_path(path)
}

/// A path a file may be written at inside a directory of its own (a command
/// step's scratch directory): relative, without `..`, no control character.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    template::check_relative_path(path)
}

/// A rendered file whose name says it is YAML or JSON must parse as such, before
/// a reviewer sees it and again before a driver applies it: a template that
/// produces broken YAML fails here, naming the file, not in Argo CD an hour later.
/// Other files are taken as they are.
pub fn check_syntax(file: &RenderedFile) -> Result<(), RenderError> {
    let lower = file.path.to_ascii_lowercase();
    let problem = if lower.ends_with(".json") {
        serde_json::from_str::<serde::de::IgnoredAny>(&file.content)
            .err()
            .map(|e| format!("is not valid JSON: {e}"))
    } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        // Deep brackets and aliases cost the parser far more than their size:
        // refused, or bounded, before it reads them.
        if let Some(why) = crate::catalog::nesting::manifest_refusal(&file.content) {
            return Err(fail(&file.path, format!("is not YAML to apply: it {why}")));
        }
        // Manifests often hold several documents separated by `---`; each must parse.
        serde_norway::Deserializer::from_str(&file.content)
            .enumerate()
            .find_map(|(i, document)| {
                serde::de::IgnoredAny::deserialize(document)
                    .err()
                    .map(|e| format!("is not valid YAML (document {}): {e}", i + 1))
            })
    } else {
        None
    };
    match problem {
        Some(message) => Err(fail(&file.path, message)),
        None => Ok(()),
    }
}

/// The type's acceptance checks with every field rendered and checked: a URL that
/// does not parse, an address without a port or a pattern that does not compile
/// fails here, naming the field, before anything is contacted.
pub fn checks(
    ty: &ResourceType,
    params: &Value,
    resource_name: &str,
) -> Result<Vec<RenderedCheck>, RenderError> {
    let ctx = template::context(ty, params, Some(resource_name));
    ty.checks
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let kind = render_check(i, &spec.kind, &ctx)?;
            let description = match &spec.description {
                Some(text) => render(&format!("checks[{i}].description"), text, &ctx)?,
                None => default_description(&kind),
            };
            Ok(RenderedCheck { kind, description })
        })
        .collect()
}

/// A rendered argument that starts with `-` where its template does not: a value
/// from the request (`--file=/etc/shadow`, `-c`) would be read by the program as
/// an option. An option must be written in the template itself; a value that may
/// start with `-` goes after a `--` argument, which ends a program's options.
pub(crate) fn refuse_smuggled_options(
    place: &str,
    templates: &[String],
    rendered: &[String],
) -> Result<(), RenderError> {
    let options_end = templates.iter().position(|t| t == "--");
    for (j, (template, value)) in templates.iter().zip(rendered).enumerate() {
        let after_end = options_end.is_some_and(|end| j > end);
        if value.starts_with('-') && !template.trim_start().starts_with('-') && !after_end {
            return Err(RenderError {
                what: format!("{place}.args[{j}]"),
                message:
                    "renders to a value that starts with '-', which the program would read as an \
                          option: write options in the template itself, and put values that may \
                          start with '-' after a \"--\" argument"
                        .into(),
            });
        }
    }
    Ok(())
}

fn render_check(
    i: usize,
    kind: &CheckKind,
    ctx: &minijinja::Value,
) -> Result<CheckKind, RenderError> {
    let field = |name: &str| format!("checks[{i}].{name}");
    let text = |name: &str, source: &str| -> Result<String, RenderError> {
        Ok(render(&field(name), source, ctx)?.trim().to_string())
    };
    Ok(match kind {
        CheckKind::GitFile { path } => CheckKind::GitFile {
            path: render_path(&field("path"), path, ctx)?,
        },
        CheckKind::Http {
            url,
            status,
            body_contains,
            body_matches,
            deadline_seconds,
        } => {
            // Values are percent-encoded as in a pipeline's URL: a parameter
            // such as `grafana.internal/api#` must not move the check to
            // another host the outbound rule allows.
            let url = template::render_check_url_str(url, ctx)
                .map_err(|m| fail(field("url"), m))?
                .trim()
                .to_string();
            checks::check_http_url(&url).map_err(|m| fail(field("url"), m))?;
            let body_matches = match body_matches {
                Some(source) => {
                    let pattern = text("body_matches", source)?;
                    checks::BodyPattern::new(&pattern)
                        .map_err(|m| fail(field("body_matches"), m))?;
                    Some(pattern)
                }
                None => None,
            };
            CheckKind::Http {
                url,
                status: *status,
                // Not trimmed: the author may mean the spaces.
                body_contains: body_contains
                    .as_deref()
                    .map(|source| render(&field("body_contains"), source, ctx))
                    .transpose()?,
                body_matches,
                deadline_seconds: *deadline_seconds,
            }
        }
        CheckKind::Tcp {
            address,
            deadline_seconds,
        } => {
            let address = text("address", address)?;
            checks::parse_address(&address).map_err(|m| fail(field("address"), m))?;
            CheckKind::Tcp {
                address,
                deadline_seconds: *deadline_seconds,
            }
        }
        CheckKind::Command {
            program,
            args,
            timeout_seconds,
        } => {
            let rendered: Vec<String> = args
                .iter()
                .enumerate()
                .map(|(j, arg)| render(&format!("checks[{i}].args[{j}]"), arg, ctx))
                .collect::<Result<_, _>>()?;
            refuse_smuggled_options(&format!("checks[{i}]"), args, &rendered)?;
            CheckKind::Command {
                program: program.clone(),
                args: rendered,
                timeout_seconds: *timeout_seconds,
            }
        }
        CheckKind::Postgres {
            server,
            database,
            user,
            password_secret,
            query,
            expect,
            deadline_seconds,
        } => CheckKind::Postgres {
            server: server.clone(),
            database: text("database", database)?,
            user: text("user", user)?,
            password_secret: password_secret.clone(),
            query: query.clone(),
            expect: expect
                .as_deref()
                .map(|source| text("expect", source))
                .transpose()?,
            deadline_seconds: *deadline_seconds,
        },
    })
}

fn default_description(kind: &CheckKind) -> String {
    match kind {
        CheckKind::GitFile { path } => format!("{path} is in the GitOps repository"),
        CheckKind::Http { url, status, .. } => format!("{url} answers {status}"),
        CheckKind::Tcp { address, .. } => format!("{address} accepts connections"),
        CheckKind::Command { .. } => format!("`{}` succeeds", kind.target()),
        CheckKind::Postgres { user, database, .. } => {
            format!("{user} can sign in to the database {database} and query it")
        }
    }
}

pub fn monitoring(
    ty: &ResourceType,
    params: &Value,
    resource_name: &str,
) -> Result<Vec<MonitoringItem>, RenderError> {
    let ctx = template::context(ty, params, Some(resource_name));
    ty.monitoring
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            Ok(MonitoringItem {
                name: render(&format!("monitoring[{i}].name"), &spec.name, &ctx)?,
                kind: render(&format!("monitoring[{i}].kind"), &spec.kind, &ctx)?,
                target: render(&format!("monitoring[{i}].target"), &spec.target, &ctx)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// Renders every type of the catalog twice and reports what fails: once with
/// its schema's defaults (plus a sample value for each required parameter
/// without one), once with every optional parameter given a value too, so a
/// template branch behind an optional parameter is rendered before a request
/// takes it. A template that breaks or produces unparsable YAML or JSON shows up
/// in `catalog check`, not in the first request. One report per type: the first
/// sample that fails.
pub fn check_samples(catalog: &Catalog) -> Vec<crate::catalog::CatalogError> {
    let mut errors = Vec::new();
    for ty in catalog.types.values() {
        let file = format!("types/{}.yaml", ty.name);
        check_type(catalog, (ty, None), (&file, ""), &mut errors);
        // Each day-2 action renders as its own request type; one that refers to
        // an earlier request sees a sample of that action's parameters.
        for (i, action) in ty.actions.iter().enumerate() {
            let prefix = format!("actions[{i}].");
            let referred = action
                .refers_to
                .as_ref()
                .and_then(|r| ty.action(&r.action))
                .map(|r| sample_params(&r.request_type, Fill::Defaults));
            let sample = (&action.request_type, referred.as_ref());
            check_type(catalog, sample, (&file, &prefix), &mut errors);
        }
    }
    errors
}

fn check_type(
    catalog: &Catalog,
    sample: (&ResourceType, Option<&Value>),
    at: (&str, &str),
    errors: &mut Vec<crate::catalog::CatalogError>,
) {
    for fill in [Fill::Defaults, Fill::Everything] {
        if let Err(error) = check_sample(catalog, sample, fill, at) {
            errors.push(error);
            return;
        }
    }
}

/// Which parameters a sample gives values to.
#[derive(Clone, Copy)]
enum Fill {
    /// The defaults, and a sample for each required parameter without one.
    Defaults,
    /// Every parameter but secrets: booleans turned from their default, an
    /// `enum`'s last value, a number's `maximum`, one item in each array.
    Everything,
}

/// Renders one type (or an action's request type) with sample values; a problem
/// is reported in `file` at `prefix` + the failing field.
fn check_sample(
    catalog: &Catalog,
    (ty, referred): (&ResourceType, Option<&Value>),
    fill: Fill,
    (file, prefix): (&str, &str),
) -> Result<(), crate::catalog::CatalogError> {
    let params = sample_params(ty, fill);
    let values = match fill {
        Fill::Defaults => "the defaults and sample values",
        Fill::Everything => "every optional parameter given a value",
    };
    let report = |e: RenderError| crate::catalog::CatalogError {
        file: file.to_string(),
        path: format!("{prefix}{}", e.what),
        message: format!("rendered with {values} {params}: {}", e.message),
    };
    let ctx = template::context(ty, &params, None);
    let name = render("naming.template", &ty.naming.template, &ctx).map_err(report)?;
    let name = name.trim();
    let requires: Vec<String> = ty
        .requires
        .iter()
        .map(|r| format!("sample-{}", r.type_name))
        .collect();
    let change_set =
        change_set_referring(catalog, ty, &params, name, (&requires, referred)).map_err(report)?;
    let run = crate::execution::RunInfo {
        request_id: 1,
        revision: 1,
        requester: "sample-requester",
        round: 0,
    };
    crate::execution::plan(ty, &params, name, &change_set, run).map_err(report)?;
    checks(ty, &params, name).map_err(report)?;
    monitoring(ty, &params, name).map_err(report)?;
    Ok(())
}

/// The sample parameters of a type for `fill`.
fn sample_params(ty: &ResourceType, fill: Fill) -> Value {
    let mut params = ty.default_params();
    let named = |key: &str| -> Vec<String> {
        ty.parameters
            .get(key)
            .and_then(|r| r.as_array())
            .map(|r| {
                r.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let to_fill = match fill {
        Fill::Defaults => named("required"),
        Fill::Everything => ty
            .parameters
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
    };
    for name in to_fill {
        let schema = ty
            .parameters
            .pointer(&format!("/properties/{name}"))
            .cloned()
            .unwrap_or_default();
        let secret = schema.get("x-secret").and_then(Value::as_bool) == Some(true);
        match fill {
            Fill::Defaults if params.contains_key(&name) => continue,
            Fill::Everything if secret => continue,
            Fill::Everything if schema.get("type").and_then(Value::as_str) == Some("boolean") => {
                let default = params.get(&name).and_then(Value::as_bool).unwrap_or(false);
                params.insert(name, Value::Bool(!default));
                continue;
            }
            Fill::Everything if schema.get("enum").is_some() && params.contains_key(&name) => {
                // The default renders in the first sample; the other end here.
                let last = schema
                    .get("enum")
                    .and_then(Value::as_array)
                    .and_then(|e| e.last());
                if let Some(last) = last {
                    params.insert(name, last.clone());
                }
                continue;
            }
            Fill::Everything if params.contains_key(&name) => continue,
            _ => {}
        }
        params.insert(name, sample_value(&schema, fill));
    }
    Value::Object(params)
}

/// A value of the schema's type: an `enum`'s first (or, filling everything,
/// last) value, a number's `minimum` (or `maximum`).
fn sample_value(schema: &Value, fill: Fill) -> Value {
    let pick = |e: &Vec<Value>| match fill {
        Fill::Defaults => e.first().cloned(),
        Fill::Everything => e.last().cloned(),
    };
    if let Some(value) = schema.get("enum").and_then(Value::as_array).and_then(pick) {
        return value;
    }
    let bound = match fill {
        Fill::Defaults => "minimum",
        Fill::Everything => "maximum",
    };
    match schema.get("type").and_then(Value::as_str) {
        Some("integer" | "number") => schema
            .get(bound)
            .or_else(|| schema.get("minimum"))
            .cloned()
            .unwrap_or_else(|| Value::from(1)),
        Some("boolean") => Value::Bool(matches!(fill, Fill::Everything)),
        Some("array") => match fill {
            Fill::Defaults => Value::Array(Vec::new()),
            Fill::Everything => Value::Array(vec![sample_value(
                schema.get("items").unwrap_or(&Value::Null),
                fill,
            )]),
        },
        Some("object") => Value::Object(serde_json::Map::new()),
        _ => Value::from("sample"),
    }
}
