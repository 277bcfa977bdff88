//! What changed between two revisions, so a reviewer reads only the difference.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use similar::{ChangeTag, TextDiff, TextDiffConfig};

use crate::render::ChangeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileDiff {
    pub path: String,
    pub status: FileStatus,
    pub lines: Vec<DiffLine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FileStatus {
    Added,
    Removed,
    Modified,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffLine {
    pub tag: LineTag,
    /// Without the trailing newline.
    pub text: String,
    /// 1-based line numbers; a jump between consecutive lines marks skipped context.
    #[serde(default)]
    pub old_line: Option<usize>,
    #[serde(default)]
    pub new_line: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LineTag {
    Context,
    Added,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamChange {
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

const CONTEXT_LINES: usize = 3;

/// How long the line diff of one file may search for the shortest difference:
/// two files with no line in common cost Myers' algorithm the product of their
/// lengths, billions of steps for a rendered file of a megabyte. Past the
/// deadline the diff is still right, only coarser.
#[cfg(not(target_arch = "wasm32"))]
pub const DIFF_TIME: std::time::Duration = std::time::Duration::from_millis(200);
/// How long all the files of one change set may take together.
#[cfg(not(target_arch = "wasm32"))]
pub const DIFF_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// One entry per path in either change set, in path order.
pub fn change_set_diff(before: &ChangeSet, after: &ChangeSet) -> Vec<FileDiff> {
    let find = |set: &ChangeSet, path: &str| {
        set.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.content.clone())
    };
    let paths: BTreeSet<&str> = before
        .files
        .iter()
        .chain(after.files.iter())
        .map(|f| f.path.as_str())
        .collect();
    #[cfg(not(target_arch = "wasm32"))]
    let all_done_by = std::time::Instant::now() + DIFF_BUDGET;
    // Each file gets its own time (one costly file must not make every later
    // one coarse), within the change set's budget.
    let configured = || {
        #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
        let mut config = TextDiff::configure();
        // The browser has no clock this can read (it only diffs on the server).
        #[cfg(not(target_arch = "wasm32"))]
        config.deadline((std::time::Instant::now() + DIFF_TIME).min(all_done_by));
        config
    };
    paths
        .into_iter()
        .map(|path| {
            let old = find(before, path);
            let new = find(after, path);
            let status = match (&old, &new) {
                (None, _) => FileStatus::Added,
                (_, None) => FileStatus::Removed,
                (Some(a), Some(b)) if a == b => FileStatus::Unchanged,
                _ => FileStatus::Modified,
            };
            let lines = match status {
                FileStatus::Unchanged => Vec::new(),
                _ => line_diff(
                    &configured(),
                    old.as_deref().unwrap_or_default(),
                    new.as_deref().unwrap_or_default(),
                ),
            };
            FileDiff {
                path: path.to_string(),
                status,
                lines,
            }
        })
        .collect()
}

fn line_diff(config: &TextDiffConfig, old: &str, new: &str) -> Vec<DiffLine> {
    let diff = config.diff_lines(old, new);
    let mut lines = Vec::new();
    for group in diff.grouped_ops(CONTEXT_LINES) {
        for op in group {
            for change in diff.iter_changes(&op) {
                let tag = match change.tag() {
                    ChangeTag::Equal => LineTag::Context,
                    ChangeTag::Insert => LineTag::Added,
                    ChangeTag::Delete => LineTag::Removed,
                };
                lines.push(DiffLine {
                    tag,
                    text: change.value().trim_end_matches(['\n', '\r']).to_string(),
                    old_line: change.old_index().map(|i| i + 1),
                    new_line: change.new_index().map(|i| i + 1),
                });
            }
        }
    }
    lines
}

/// Changed top-level parameters only: first those of `before` in its order, then new ones.
pub fn param_changes(before: &Value, after: &Value) -> Vec<ParamChange> {
    let empty = serde_json::Map::new();
    let old = before.as_object().unwrap_or(&empty);
    let new = after.as_object().unwrap_or(&empty);
    let added = new.keys().filter(|k| !old.contains_key(*k));
    old.keys()
        .chain(added)
        .filter_map(|name| {
            let before = old.get(name).filter(|v| !v.is_null()).cloned();
            let after = new.get(name).filter(|v| !v.is_null()).cloned();
            (before != after).then(|| ParamChange {
                name: name.clone(),
                before,
                after,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
