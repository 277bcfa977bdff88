use super::*;

fn deep(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

#[test]
fn deep_flow_collections_are_refused_and_quoted_brackets_are_not() {
    let deep_seqs = format!("x: {}", deep(300));
    assert!(refusal(&deep_seqs).is_some());
    let deep_maps = format!("x: {}{}", "{a: ".repeat(300), "}".repeat(300));
    assert!(refusal(&deep_maps).is_some());
    let fine = format!("x: {}", deep(256));
    assert_eq!(refusal(&fine), None);
    for quoted in [
        format!("x: [\"{}\", '{}']", "[".repeat(1000), "{".repeat(1000)),
        format!("x: ['it''s {}']", "{".repeat(1000)),
        format!("x: [\"a \\\" {}\"]", "[".repeat(1000)),
        format!("x: {{a: \"{}\"}}", "[".repeat(1000)),
        format!("# {}\nx: 1", "[".repeat(1000)),
    ] {
        assert_eq!(refusal(&quoted), None, "{quoted:.60}");
    }
    // A quote that opens no string hides nothing after it.
    let deep = deep(300);
    for hiding in [
        format!("a: b \"\nc: {deep}"),
        format!("a: |\n  '\nc: {deep}"),
        format!("[x \", {deep}]"),
        format!("[ -\" {deep}]"),
        format!("[\"]\", {}]", "[\"]\", ".repeat(300)),
    ] {
        assert!(refusal(&hiding).is_some(), "{hiding:.60}");
    }
}

/// A quote inside a plain scalar (`a:"`, read by libyaml as the text `a:"`)
/// opens no string: the brackets after it nest as deep as they look.
#[test]
fn a_quote_inside_a_plain_scalar_hides_no_brackets() {
    let deep = deep(300);
    for hiding in [
        format!("x: [a:\", {deep}]"),
        format!("x: [a:', {deep}]"),
        format!("x: {{k: b:\", v: {deep}}}"),
        format!("x: {{k: b:', v: {deep}}}"),
        format!("x: [a\"b, {deep}]"),
        format!("x: a:\"\ny: {deep}"),
        format!("x: it's\ny: {deep}"),
        // A plain scalar goes on over a line indented past its block...
        format!("a: b\n \"\nc: {deep}"),
        // ...and a document may start on a line of its own.
        format!("a: b\n---\n\"x\": {deep}"),
    ] {
        let why = refusal(&hiding).unwrap_or_default();
        assert!(
            why.starts_with("nests deeper than 256"),
            "{hiding:.60}: {why}"
        );
    }
    // Where YAML does open a string, its brackets are text.
    for quoted in [
        format!("x: [a, \"{}\"]", "[".repeat(1000)),
        format!("x: [a: \"{}\"]", "[".repeat(1000)),
        format!("x: {{a: '{}'}}", "{".repeat(1000)),
        format!("- \"{}\"", "[".repeat(1000)),
        format!("? '{}'\n: 1", "[".repeat(1000)),
        format!("x:\n  \"{}\"", "[".repeat(1000)),
        format!("x: !tag \"{}\"", "[".repeat(1000)),
    ] {
        assert_eq!(refusal(&quoted), None, "{quoted:.60}");
    }
}

/// A block scalar holds the lines indented past its block (or as far as its
/// indicator says), no more: a line less indented is read again as YAML.
#[test]
fn a_block_scalar_ends_where_libyaml_ends_it() {
    let deep = deep(300);
    for hiding in [
        format!("k: |\n    text\n  {deep}"),
        format!("- k: |\n  {deep}"),
        format!("k: |2\n {deep}"),
        format!("k: >-\n  text\nc: {deep}"),
        format!("a:\n  k: |\n    t\n  c: {deep}"),
    ] {
        assert!(refusal(&hiding).is_some(), "{hiding:?}");
    }
    for text in [
        format!("k: |\n  {}\n  &x *y\nc: 1", "[".repeat(1000)),
        format!("- k: |\n    {}\n- 2", "{".repeat(1000)),
        format!("k: |2\n    {}\n", "[".repeat(1000)),
        format!("k: |\n\n  a\n\n  {}\n", "[".repeat(1000)),
    ] {
        assert_eq!(refusal(&text), None, "{text:?}");
    }
}

/// libyaml ends a comment at any of its line breaks, CR, NEL, LS and PS too.
#[test]
fn every_line_break_ends_a_comment() {
    let deep = deep(300);
    for separator in ["\n", "\r", "\r\n", "\u{85}", "\u{2028}", "\u{2029}"] {
        let text = format!("a: 1 # note{separator}b: {deep}");
        assert!(refusal(&text).is_some(), "{separator:?}");
    }
}

#[test]
fn anchors_and_aliases_are_refused_with_their_line() {
    let bomb = "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n";
    let why = refusal(bomb).unwrap_or_default();
    assert!(why.starts_with("sets the anchor `&a` (line 1)"), "{why}");
    assert!(why.contains("write each value out"), "{why}");
    for (text, start) in [
        ("x: 1\ny: *a\n", "uses the alias `*a` (line 2)"),
        (
            "base: &defaults\n  size: 1\n",
            "sets the anchor `&defaults` (line 1)",
        ),
        (
            "x:\n  <<: *defaults\n",
            "uses the alias `*defaults` (line 2)",
        ),
        ("- &x a\n", "sets the anchor `&x` (line 1)"),
        ("[a, *b]", "uses the alias `*b` (line 1)"),
        ("{*b : c}", "uses the alias `*b` (line 1)"),
        ("x: !t &a v", "sets the anchor `&a` (line 1)"),
        ("x: [a:\", *b]", "uses the alias `*b` (line 1)"),
        ("x: |\n  a\ny: *b", "uses the alias `*b` (line 3)"),
    ] {
        let why = refusal(text).unwrap_or_default();
        assert!(why.starts_with(start), "{text:?}: {why}");
    }
}

/// `&` and `*` are text inside a scalar, a quoted string or a comment, as
/// shell lines and globs in manifests have them.
#[test]
fn ampersands_and_stars_in_text_are_not_anchors() {
    for text in [
        "cmd: a && b\n",
        "glob: x*.txt\n",
        "q: \"&a *b\"\n",
        "q: '&a *b'\n",
        "# &a *b\nx: 1\n",
        "s: |\n  &a\n  *b\n  echo a &>/dev/null\n",
        "s: >\n  * item\n",
        "x: [a&b, c*d]\n",
        "x: a\n  *b continues the text\n",
        "x: !a&b v\n",
    ] {
        assert_eq!(refusal(text), None, "{text:?}");
    }
}

/// The shipped catalog's files use neither anchors nor deep nesting.
#[test]
fn the_shipped_catalog_files_pass() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog");
    for folder in ["types", "dictionaries"] {
        for entry in std::fs::read_dir(root.join(folder))? {
            let path = entry?.path();
            let text = std::fs::read_to_string(&path)?;
            assert_eq!(refusal(&text), None, "{}", path.display());
        }
    }
    Ok(())
}

/// The scan reads each character a bounded number of times: a megabyte of
/// anything is read in well under a second.
#[test]
fn the_scan_is_linear() {
    let texts = [
        "a: b\n".repeat(200_000),
        format!("x: \"{}\"", "\\\"[".repeat(300_000)),
        format!("k: |\n{}", "  [[&x *y\n".repeat(100_000)),
        "[a, ".repeat(250) + &"x, ".repeat(300_000),
    ];
    let started = std::time::Instant::now();
    for text in &texts {
        let _ = refusal(text);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
