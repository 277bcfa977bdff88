//! Rendering a request into what it changes: the files for the GitOps repository,
//! the checks that prove it landed, and the monitoring that watches it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, CheckKind, ResourceType};
use crate::template;

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
    let ctx = template::render_context(ty, params, resource_name, requires);
    let mut env = template::environment();
    for (name, source) in &catalog.templates {
        env.add_template(name, source)
            .map_err(|e| fail(format!("templates/{name}"), template::error_text(&e)))?;
    }
    let mut files = Vec::with_capacity(ty.outputs.len());
    for (i, output) in ty.outputs.iter().enumerate() {
        let path = render_path(&format!("outputs[{i}].path"), &output.path, &ctx)?;
        let what = format!("templates/{}", output.template);
        let content = env
            .get_template(&output.template)
            .and_then(|t| t.render(&ctx))
            .map_err(|e| fail(&what, template::error_text(&e)))?;
        files.push(RenderedFile { path, content });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(pair) = files.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(fail(
            "outputs",
            format!("two outputs render to {}", pair[0].path),
        ));
    }
    Ok(ChangeSet { files })
}

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
            let kind = match &spec.kind {
                CheckKind::GitopsFile { path } => CheckKind::GitopsFile {
                    path: render_path(&format!("checks[{i}].path"), path, &ctx)?,
                },
            };
            let description = match &spec.description {
                Some(text) => render(&format!("checks[{i}].description"), text, &ctx)?,
                None => default_description(&kind),
            };
            Ok(RenderedCheck { kind, description })
        })
        .collect()
}

fn default_description(kind: &CheckKind) -> String {
    match kind {
        CheckKind::GitopsFile { path } => format!("{path} is in the GitOps repository"),
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
