use serde_json::json;

use super::*;
use crate::render::RenderedFile;

fn set(files: &[(&str, &str)]) -> ChangeSet {
    ChangeSet {
        files: files
            .iter()
            .map(|(p, c)| RenderedFile {
                path: p.to_string(),
                content: c.to_string(),
            })
            .collect(),
        ..ChangeSet::default()
    }
}

#[test]
fn statuses_cover_added_removed_modified_unchanged() {
    let before = set(&[("a", "1\n"), ("b", "x\n"), ("c", "same\n")]);
    let after = set(&[("b", "y\n"), ("c", "same\n"), ("d", "new\n")]);
    let diff = change_set_diff(&before, &after);
    let summary: Vec<(&str, FileStatus)> =
        diff.iter().map(|d| (d.path.as_str(), d.status)).collect();
    assert_eq!(
        summary,
        [
            ("a", FileStatus::Removed),
            ("b", FileStatus::Modified),
            ("c", FileStatus::Unchanged),
            ("d", FileStatus::Added)
        ]
    );
    assert_eq!(diff[0].lines[0].tag, LineTag::Removed);
    let b: Vec<(LineTag, &str)> = diff[1]
        .lines
        .iter()
        .map(|l| (l.tag, l.text.as_str()))
        .collect();
    assert_eq!(b, [(LineTag::Removed, "x"), (LineTag::Added, "y")]);
    assert!(diff[2].lines.is_empty());
    assert_eq!(diff[3].lines[0].new_line, Some(1));
}

#[test]
fn modified_files_keep_three_lines_of_context() {
    let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    let new = old.replace("line 10\n", "line ten\n");
    let diff = change_set_diff(&set(&[("f", &old)]), &set(&[("f", &new)]));
    let lines = &diff[0].lines;
    assert_eq!(lines.len(), 3 + 2 + 3);
    assert_eq!(lines[0].text, "line 7");
    assert_eq!(lines[0].tag, LineTag::Context);
    assert_eq!(lines[3].text, "line 10");
    assert_eq!(lines[3].tag, LineTag::Removed);
    assert_eq!(lines[4].text, "line ten");
    assert_eq!(lines[4].new_line, Some(10));
    assert_eq!(lines[7].text, "line 13");
}

#[test]
fn param_changes_list_only_changed_keys() {
    let before = json!({"name": "a", "size": "small", "ha": false, "gone": 1});
    let after = json!({"name": "a", "size": "large", "ha": null, "new": [1]});
    assert_eq!(
        param_changes(&before, &after),
        vec![
            ParamChange {
                name: "size".into(),
                before: Some(json!("small")),
                after: Some(json!("large"))
            },
            ParamChange {
                name: "ha".into(),
                before: Some(json!(false)),
                after: None
            },
            ParamChange {
                name: "gone".into(),
                before: Some(json!(1)),
                after: None
            },
            ParamChange {
                name: "new".into(),
                before: None,
                after: Some(json!([1]))
            },
        ]
    );
    assert!(param_changes(&before, &before).is_empty());
}

/// Two megabyte-sized files with no line in common: without a deadline Myers'
/// search takes minutes (the product of their lengths, so this test would hang);
/// with one, the diff is coarse but whole and comes back in about the deadline.
#[test]
fn files_with_nothing_in_common_are_diffed_within_the_deadline() {
    let old: String = (0..60_000).map(|n| format!("old {n}\n")).collect();
    let new: String = (0..60_000).map(|n| format!("new {n}\n")).collect();
    // A small edit in another file keeps its fine diff: it gets its own time.
    let small_old: String = (0..200).map(|n| format!("line {n}\n")).collect();
    let small_new = small_old.replace("line 100\n", "line one hundred\n");
    let diff = change_set_diff(
        &set(&[("big", &old), ("small", &small_old)]),
        &set(&[("big", &new), ("small", &small_new)]),
    );
    let small = &diff[1].lines;
    assert_eq!(
        small.iter().filter(|l| l.tag != LineTag::Context).count(),
        2,
        "{small:?}"
    );
    let lines = &diff[0].lines;
    assert_eq!(
        lines.iter().filter(|l| l.tag == LineTag::Removed).count(),
        60_000
    );
    assert_eq!(
        lines.iter().filter(|l| l.tag == LineTag::Added).count(),
        60_000
    );
}
