//! Rendered files, and what changed between two revisions of them.

use leptos::prelude::*;
use serde_json::Value;
use slipway_core::diff::{FileDiff, FileStatus, LineTag, ParamChange};
use slipway_core::render::ChangeSet;
use slipway_core::views::{DeployedDiff, ParamTitle, ReviewDiff, title_of};

#[component]
pub fn ChangeSetView(change_set: ChangeSet, hash: String) -> impl IntoView {
    view! {
        <section class="change-set" aria-label="Rendered files">
            <h2>"Rendered files"</h2>
            // The full hash as text, for anyone to read or copy (not in a tooltip).
            <details class="hash-detail">
                <summary class="muted">"Change set " <code class="hash">{short(&hash)}</code></summary>
                <p class="muted">"Full hash: " <code class="hash" data-testid="change-set-hash">{hash.clone()}</code></p>
            </details>
            {change_set
                .files
                .into_iter()
                .map(|file| {
                    let label = format!("File {}", file.path);
                    view! {
                        <details class="file">
                            <summary><code>{file.path.clone()}</code></summary>
                            // Scrolled with the arrow keys, so it takes the focus.
                            <pre tabindex="0" role="region" aria-label=label><code>{file.content}</code></pre>
                        </details>
                    }
                })
                .collect_view()}
        </section>
    }
}

pub fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn show(value: &Option<Value>) -> String {
    value
        .as_ref()
        .map_or_else(|| "(not set)".into(), slipway_core::views::param_text)
}

/// What changed since the revision this reviewer last saw: parameters, then each file.
#[component]
pub fn ReviewDiffView(
    diff: ReviewDiff,
    /// The parameters' titles from the schema.
    #[prop(optional)]
    titles: Vec<ParamTitle>,
) -> impl IntoView {
    view! {
        <section class="review-diff" aria-labelledby="diff-heading">
            <h2 id="diff-heading">{format!("Changes since revision {}", diff.base_revision)}</h2>
            <p class="muted">{format!("You last saw revision {}; this is revision {}.", diff.base_revision, diff.revision)}</p>
            <DiffBody params=diff.params files=diff.files titles />
        </section>
    }
}

/// A day-2 action's change against what its asset had deployed when it was asked
/// for: the recorded parameters, then each file the action touches.
#[component]
pub fn DeployedDiffView(
    diff: DeployedDiff,
    asset_name: String,
    #[prop(optional)] titles: Vec<ParamTitle>,
) -> impl IntoView {
    view! {
        <section class="review-diff" aria-labelledby="deployed-diff-heading" data-testid="deployed-diff">
            <h2 id="deployed-diff-heading">"Changes against what is deployed"</h2>
            <p class="muted">{format!("Compared with what {asset_name} had deployed when the action was asked for.")}</p>
            <DiffBody params=diff.params files=diff.files titles />
        </section>
    }
}

#[component]
fn DiffBody(
    params: Vec<ParamChange>,
    files: Vec<FileDiff>,
    titles: Vec<ParamTitle>,
) -> impl IntoView {
    let unchanged = files
        .iter()
        .filter(|f| f.status == FileStatus::Unchanged)
        .count();
    let changed: Vec<FileDiff> = files
        .into_iter()
        .filter(|f| f.status != FileStatus::Unchanged)
        .collect();
    let params_view = if params.is_empty() {
        view! { <p class="muted">"No parameter changes."</p> }.into_any()
    } else {
        view! {
            <table class="params-diff">
                <caption>"Parameters"</caption>
                <thead><tr><th scope="col">"Parameter"</th><th scope="col">"Before"</th><th scope="col">"After"</th></tr></thead>
                <tbody>
                    {params.iter().map(|p| view! {
                        <tr><th scope="row">{title_of(&titles, &p.name).to_string()}</th><td class="del">{show(&p.before)}</td><td class="add">{show(&p.after)}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
        .into_any()
    };
    view! {
        {params_view}
        {changed.into_iter().map(|file| view! { <FileDiffView file /> }).collect_view()}
        {(unchanged > 0).then(|| view! { <p class="muted">{format!("{unchanged} file(s) unchanged.")}</p> })}
    }
}

#[component]
fn FileDiffView(file: FileDiff) -> impl IntoView {
    let status = match file.status {
        FileStatus::Added => "added",
        FileStatus::Removed => "removed",
        FileStatus::Modified => "modified",
        FileStatus::Unchanged => "unchanged",
    };
    let label = format!("Changes to {}", file.path);
    view! {
        <div class="file-diff">
            <h3><code>{file.path.clone()}</code> " " <span class="muted">{status}</span></h3>
            <pre class="diff" tabindex="0" role="region" aria-label=label>
                {file.lines.into_iter().map(|line| {
                    let (class, mark) = match line.tag {
                        LineTag::Added => ("add", "+"),
                        LineTag::Removed => ("del", "-"),
                        LineTag::Context => ("ctx", " "),
                    };
                    view! { <span class=class>{format!("{mark} {}\n", line.text.trim_end_matches('\n'))}</span> }
                }).collect_view()}
            </pre>
        </div>
    }
}
