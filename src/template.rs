//! One place that decides how catalog templates and expressions are evaluated,
//! so the loader's compile check and the renderers cannot drift apart.

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Map;

use crate::catalog::ResourceType;
use crate::secret;

/// Instructions one render may run. The shipped templates take a few thousand;
/// a loop whose length a parameter sets (or a loop in a loop) stops with an
/// error naming the limit instead of holding a runtime thread for minutes.
pub const TEMPLATE_FUEL: u64 = 2_000_000;

/// How deep a rendering may nest (a loop or a condition counts 1); the shipped
/// templates nest a few levels.
pub const TEMPLATE_RECURSION_LIMIT: usize = 48;

/// The most one rendered output file may hold. Fuel counts instructions, not
/// bytes: `{{ "x" * 50000000 }}` in a loop is a few instructions and gigabytes.
pub const MAX_RENDERED_FILE_BYTES: usize = 1024 * 1024;

/// The most a rendered short text may hold: a name, a path, a message, an
/// argument, a description.
pub const MAX_RENDERED_TEXT_BYTES: usize = 64 * 1024;

/// Collects a rendering and fails the write that would take it past `limit`, so
/// the render stops there instead of building the whole text in memory. Text a
/// template builds before it writes (a `{% set %}` block, a filter over a
/// block, `join`) is held by minijinja until then and is bounded only by the
/// fuel: templates are the catalog's, reviewed like code, and `catalog check`
/// renders every type before a catalog is used.
struct CappedOutput {
    bytes: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other(
                "the rendering is over its size limit",
            ));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `template` into at most `limit` bytes; past it, an error naming the limit.
pub(crate) fn render_capped(
    template: &minijinja::Template<'_, '_>,
    ctx: &Value,
    limit: usize,
) -> Result<String, String> {
    let mut output = CappedOutput {
        bytes: Vec::new(),
        limit,
        exceeded: false,
    };
    // `render_captured_to` is 2.24's `render_to_write`: it writes as it renders.
    let rendered = template.render_captured_to(ctx, &mut output).map(drop);
    if output.exceeded {
        return Err(format!(
            "the rendered text is longer than the {} a rendering may be",
            describe_bytes(limit)
        ));
    }
    rendered.map_err(|e| error_text(&e))?;
    // Every write came from a Rust `str`, so the bytes are UTF-8.
    String::from_utf8(output.bytes).map_err(|e| e.to_string())
}

/// "1 MiB", "64 KiB" or "100 bytes", for messages about a limit.
fn describe_bytes(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Strict undefined: a typo in a template must fail loudly, never render "".
pub(crate) fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    // Fuel counts steps, not bytes: a value that doubles at each step reaches
    // gigabytes in thirty. A loop a parameter lengthens cannot carry a value
    // from one iteration to the next: `namespace()`, the one way to, is not
    // offered (macros are not compiled in). What a template builds in a few
    // steps of its own text is its authors' to review, as `catalog check` shows.
    env.remove_global("namespace");
    env.set_recursion_limit(TEMPLATE_RECURSION_LIMIT);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Outputs are YAML and paths, never HTML: escaping would corrupt them.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env
}

/// Every template sees each parameter at top level plus `resource_type`
/// and, once known, `resource_name`. A secret parameter is never its value: the
/// reference to where it will be kept once the resource is named, else its placeholder.
pub(crate) fn context(
    ty: &ResourceType,
    params: &serde_json::Value,
    resource_name: Option<&str>,
) -> Value {
    let mut map = match params {
        serde_json::Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    secret::for_templates(ty, &mut map, resource_name);
    map.insert("resource_type".into(), ty.name.clone().into());
    if let Some(name) = resource_name {
        map.insert("resource_name".into(), name.into());
    }
    Value::from_serialize(&map)
}

/// The context an action's rules see: `context` plus `current`, the asset's
/// recorded parameters (secrets stay placeholders: a rule never reads one).
pub(crate) fn action_context(
    ty: &ResourceType,
    params: &serde_json::Value,
    current: &serde_json::Value,
) -> Value {
    let mut map = match params {
        serde_json::Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    secret::for_templates(ty, &mut map, None);
    map.insert("resource_type".into(), ty.name.clone().into());
    map.insert("current".into(), current.clone());
    Value::from_serialize(&map)
}

/// The context output templates see: `context` plus the names of required assets
/// and, for an action that refers to an earlier request, that request's parameters.
pub(crate) fn render_context(
    ty: &ResourceType,
    params: &serde_json::Value,
    resource_name: &str,
    (requires, referred): (&[String], Option<&serde_json::Value>),
) -> Value {
    let mut map = match params {
        serde_json::Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    secret::for_templates(ty, &mut map, Some(resource_name));
    map.insert("resource_type".into(), ty.name.clone().into());
    map.insert("resource_name".into(), resource_name.into());
    map.insert("requires".into(), requires.to_vec().into());
    if let Some(referred) = referred {
        let mut referred = referred.as_object().cloned().unwrap_or_default();
        secret::for_templates(ty, &mut referred, Some(resource_name));
        map.insert("referred".into(), serde_json::Value::Object(referred));
    }
    Value::from_serialize(&map)
}

pub(crate) fn error_text(err: &minijinja::Error) -> String {
    if err.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!(
            "the template ran past the {TEMPLATE_FUEL} steps a rendering may take (a loop \
             too long, or a loop in a loop)"
        );
    }
    let mut text = err.to_string();
    if let Some(detail) = err.detail()
        && !text.contains(detail)
    {
        text = format!("{text}: {detail}");
    }
    text
}

/// Renders a short text (a name, a path, a message), at most
/// [`MAX_RENDERED_TEXT_BYTES`] long.
pub(crate) fn render_str(source: &str, ctx: &Value) -> Result<String, String> {
    let env = environment();
    let template = env.template_from_str(source).map_err(|e| error_text(&e))?;
    render_capped(&template, ctx, MAX_RENDERED_TEXT_BYTES)
}

/// Renders a template whose output is JSON text (a pipeline's body): every
/// string it outputs is escaped as the inside of a JSON string, so a quote in a
/// value stays in `"{{ value }}"` instead of ending it and adding a field. What
/// `tojson` made is JSON already and goes out as it is. Booleans and none are
/// written as JSON spells them: minijinja's own `True`, `False` and `none` would
/// make `{"dry_run": {{ flag }}}` invalid JSON.
pub(crate) fn render_json_str(source: &str, ctx: &Value) -> Result<String, String> {
    let mut env = environment();
    env.set_formatter(|out, state, value| match value.kind() {
        ValueKind::Bool => write_output(out, if value.is_true() { "true" } else { "false" }),
        ValueKind::None => write_output(out, "null"),
        _ => match value.as_str() {
            Some(text) if !value.is_safe() => {
                let quoted = serde_json::Value::from(text).to_string();
                write_output(out, &quoted[1..quoted.len() - 1])
            }
            _ => minijinja::escape_formatter(out, state, value),
        },
    });
    // A body may carry a rendered document, so it gets a file's room.
    let template = env.template_from_str(source).map_err(|e| error_text(&e))?;
    render_capped(&template, ctx, MAX_RENDERED_FILE_BYTES)
}

/// What a value substituted into a URL keeps as it is: RFC 3986's unreserved
/// characters. Everything else (`/`, `?`, `#`, `@`, `%`, `&`, `=`, a space, …)
/// is percent-encoded, so a value is one path segment or one query component
/// and can never reach another endpoint, add a query or name a user.
const URL_VALUE_KEEPS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Renders a template whose output is a URL (a pipeline's trigger URL): the
/// template's own text stays as written, and every value it substitutes is
/// percent-encoded (see [`URL_VALUE_KEEPS`]), `| safe` or not, so a parameter
/// like `x/../../other?` stays inside its segment. Booleans are `true` and
/// `false`; none has no spelling in a URL and is an error. A value of only
/// dots still makes a `.` or `..` segment: the caller checks the rendered path.
pub(crate) fn render_url_str(source: &str, ctx: &Value) -> Result<String, String> {
    render_url_keeping(source, ctx, URL_VALUE_KEEPS)
}

/// What a value keeps in a check's URL: also `:`, `[` and `]`, so that a
/// parameter the catalog means to hold a host and port (`db.internal:8080`,
/// `[::1]:8080`) still can. What would end the host early (`/`, `?`, `#`, `@`)
/// is encoded, so `{{ name }}.apps.internal` cannot become another host.
const CHECK_URL_VALUE_KEEPS: &AsciiSet = &URL_VALUE_KEEPS.remove(b':').remove(b'[').remove(b']');

/// [`render_url_str`] for an `http` check's URL (see [`CHECK_URL_VALUE_KEEPS`]).
pub(crate) fn render_check_url_str(source: &str, ctx: &Value) -> Result<String, String> {
    render_url_keeping(source, ctx, CHECK_URL_VALUE_KEEPS)
}

fn render_url_keeping(
    source: &str,
    ctx: &Value,
    keeps: &'static AsciiSet,
) -> Result<String, String> {
    let mut env = environment();
    env.set_formatter(move |out, _state, value| {
        let text = match value.kind() {
            // `{{ x if y }}` without an else: nothing, as everywhere else.
            ValueKind::Undefined => return Ok(()),
            ValueKind::None => {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "a value in a URL is none; give it a value or leave it out with {% if %}",
                ));
            }
            ValueKind::Bool => if value.is_true() { "true" } else { "false" }.to_string(),
            _ => match value.as_str() {
                Some(text) => text.to_string(),
                None => value.to_string(),
            },
        };
        write_output(out, &utf8_percent_encode(&text, keeps).to_string())
    });
    let template = env.template_from_str(source).map_err(|e| error_text(&e))?;
    render_capped(&template, ctx, MAX_RENDERED_TEXT_BYTES)
}

fn write_output(out: &mut minijinja::Output<'_>, text: &str) -> Result<(), minijinja::Error> {
    out.write_str(text)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
}

pub(crate) fn eval_bool(expression: &str, ctx: &Value) -> Result<bool, String> {
    let env = environment();
    let expr = env
        .compile_expression(expression)
        .map_err(|e| error_text(&e))?;
    let value = expr.eval(ctx).map_err(|e| error_text(&e))?;
    if value.is_undefined() {
        return Err("the expression is undefined".into());
    }
    Ok(value.is_true())
}

pub(crate) fn check_template(source: &str) -> Result<(), String> {
    environment()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| error_text(&e))
}

/// The variables a template reads from its context.
pub(crate) fn variables_of(source: &str) -> Result<std::collections::HashSet<String>, String> {
    environment()
        .template_from_str(source)
        .map(|t| t.undeclared_variables(false))
        .map_err(|e| error_text(&e))
}

pub(crate) fn check_expression(expression: &str) -> Result<(), String> {
    environment()
        .compile_expression(expression)
        .map(|_| ())
        .map_err(|e| error_text(&e))
}

/// The longest segment of a rendered path, in bytes: what file systems and git
/// checkouts (Argo CD's, a developer's laptop) hold.
const MAX_PATH_SEGMENT_BYTES: usize = 255;
/// The longest rendered path, in bytes.
const MAX_PATH_BYTES: usize = 1024;

/// Rendered paths become paths in a git repository: they must stay inside it,
/// hold no control character (libgit2 cannot take a NUL), never name git's own
/// directory, and fit every checkout.
pub(crate) fn check_relative_path(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err("the path is empty".into());
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the path {path:?} holds the control character {:?}",
            c
        ));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "the path is {} bytes long; at most {MAX_PATH_BYTES} are allowed",
            path.len()
        ));
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(format!(
            "the path {path:?} must be relative, not start with '/'"
        ));
    }
    if path.contains('\\') {
        return Err(format!("the path {path:?} must use '/' as separator"));
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(format!("the path {path:?} has an empty segment")),
            ".." | "." => {
                return Err(format!("the path {path:?} must not contain '{segment}'"));
            }
            _ if names_git_directory(segment) => {
                return Err(format!("the path {path:?} must not name git's .git"));
            }
            _ if segment.len() > MAX_PATH_SEGMENT_BYTES => {
                return Err(format!(
                    "the path {path:?} has a segment of {} bytes; at most {MAX_PATH_SEGMENT_BYTES} are allowed",
                    segment.len()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a path segment names git's own directory on some checkout, as git's
/// `is_ntfs_dotgit` and `is_hfs_dotgit` see it: `.git` in any case, with the
/// trailing dots and spaces NTFS drops (and anything after a `:`, its stream
/// separator), its 8.3 short name `git~1`, or with code points HFS+ ignores.
/// Where Slipway commits its own files in the GitOps repository (the audit
/// trail's checkpoint): no asset's output may be written there.
pub const RESERVED_DIRECTORY: &str = "audit";

/// A path an asset's file may be deployed at: a [`check_relative_path`] outside
/// Slipway's own directory, and not one of git's control files, which would
/// change how every reconciler's clone reads the repository (`.gitattributes`
/// filters, `.gitmodules` fetching other repositories).
pub(crate) fn check_deployable_path(path: &str) -> Result<(), String> {
    let folded = |segment: &str| -> String {
        segment
            .chars()
            .filter(|c| !is_default_ignorable(*c))
            .flat_map(char::to_lowercase)
            .collect()
    };
    if path
        .split('/')
        .next()
        .is_some_and(|first| folded(first).trim_end_matches(['.', ' ']) == RESERVED_DIRECTORY)
    {
        return Err(format!(
            "the path {path:?} is in {RESERVED_DIRECTORY}/, where Slipway keeps its own files"
        ));
    }
    let control = [".gitattributes", ".gitmodules"];
    if path.split('/').any(|segment| {
        let name = folded(segment);
        control.contains(&name.trim_end_matches(['.', ' ']))
    }) {
        return Err(format!(
            "the path {path:?} names one of git's own files ({})",
            control.join(", ")
        ));
    }
    Ok(())
}

fn names_git_directory(segment: &str) -> bool {
    let visible: String = segment
        .chars()
        .filter(|c| !is_default_ignorable(*c))
        .flat_map(char::to_lowercase)
        .collect();
    let before_stream = visible.split(':').next().unwrap_or_default();
    let name = before_stream.trim_end_matches(['.', ' ']);
    name == ".git" || name == "git~1"
}

/// Unicode's Default_Ignorable_Code_Point: characters a file system (HFS+) or a
/// viewer may drop, so `.g\u{200c}it` opens `.git`.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request named `checkpoint` must not write over the audit trail's
    /// checkpoint, nor a value make a reconciler's clone fetch submodules.
    #[test]
    fn deployed_paths_keep_out_of_slipways_directory_and_gits_files() {
        for good in [
            "dev/audit/x.yaml",
            "auditing/x.yaml",
            "dev/x.gitattributes.yaml",
        ] {
            assert_eq!(check_deployable_path(good), Ok(()), "{good}");
        }
        for bad in [
            "audit/checkpoint.json",
            "Audit/x.yaml",
            "audit./x.yaml",
            "au\u{00AD}dit/x.yaml",
            ".gitmodules",
            "dev/.gitattributes",
            "dev/.GitAttributes ",
        ] {
            assert!(check_deployable_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_must_stay_inside_the_repository() {
        assert!(check_relative_path("dev/payments/x.yaml").is_ok());
        let long_segment = format!("a/{}.yaml", "x".repeat(300));
        let long_path = "abc/".repeat(300) + "x";
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "a\\b",
            "a/",
            "a/b\0c.yaml",
            "a/b\nc.yaml",
            "a/.git/config",
            "a/.GIT/hooks/x",
            ".git./config",
            ".git /config",
            "a/.git. . /x",
            ".git::$INDEX_ALLOCATION/config",
            "git~1/config",
            "GIT~1/config",
            ".g\u{200c}it/config",
            "\u{feff}.git/config",
            ".gi\u{200b}t/hooks/x",
            ".GI\u{2060}T/x",
            &long_segment,
            &long_path,
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad:?}");
        }
        for fine in [
            ".github/workflows/x.yaml",
            "a/.gitignore",
            "git~2/x",
            "a/git/x",
        ] {
            assert!(check_relative_path(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let ctx = Value::from_serialize(serde_json::json!({"n": 100000}));
        // No output: the size limit would stop a loop that writes first.
        let nested = "{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}";
        let error = render_str(nested, &ctx).err().unwrap_or_default();
        assert!(error.contains("2000000 steps"), "{error}");
    }

    /// Doubling a value step after step is a few steps and gigabytes: neither
    /// way to repeat a step on its own result is open to a template.
    #[test]
    fn a_template_cannot_double_a_value_step_after_step() {
        let ctx = Value::from_serialize(serde_json::json!({"n": 40}));
        let through_a_loop = r#"{% set ns = namespace(s="xxxxxxxx") %}{% for i in range(n) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"#;
        let error = render_str(through_a_loop, &ctx).err().unwrap_or_default();
        assert!(error.contains("namespace"), "{error}");
        let through_a_macro = r#"{% macro grow(s, k) %}{% if k > 0 %}{{ grow(s ~ s, k - 1) }}{% endif %}{% endmacro %}{{ grow("xxxxxxxx", n) }}"#;
        let error = render_str(through_a_macro, &ctx).err().unwrap_or_default();
        assert!(error.contains("unknown statement macro"), "{error}");
        // Doubling within one iteration is as long as the template's own text.
        let within = r#"{% for i in range(n) %}{% set s = "ab" ~ "ab" %}{{ s }}{% endfor %}"#;
        assert_eq!(render_str(within, &ctx).map(|s| s.len()), Ok(160));
    }

    #[test]
    fn a_rendering_stops_at_its_size_limit_not_after_gigabytes() {
        let ctx = Value::from_serialize(serde_json::json!({}));
        let huge = r#"{% for i in range(100) %}{{ "x" * 50000000 }}{% endfor %}"#;
        assert_eq!(
            render_str(huge, &ctx),
            Err("the rendered text is longer than the 64 KiB a rendering may be".into())
        );
        let env = environment();
        let template = env
            .template_from_str(huge)
            .map_err(|e| error_text(&e))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            render_capped(&template, &ctx, MAX_RENDERED_FILE_BYTES),
            Err("the rendered text is longer than the 1 MiB a rendering may be".into())
        );
        let fits = "{{ 'x' * 65536 }}";
        assert_eq!(render_str(fits, &ctx).map(|t| t.len()), Ok(65536));
        assert!(render_str("{{ 'x' * 65537 }}", &ctx).is_err());
    }

    #[test]
    fn a_json_body_spells_booleans_and_none_as_json_does() {
        let ctx = Value::from_serialize(serde_json::json!({
            "flag": true, "off": false, "nothing": null, "count": 3, "name": "web",
        }));
        let source = r#"{"dry_run": {{ flag }}, "off": {{ off }}, "nothing": {{ nothing }}, "count": {{ count }}, "name": "{{ name }}", "not": {{ not flag }}}"#;
        let body = render_json_str(source, &ctx).unwrap_or_else(|e| panic!("{e}"));
        let parsed: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(
            parsed,
            serde_json::json!({
                "dry_run": true, "off": false, "nothing": null, "count": 3, "name": "web",
                "not": false,
            })
        );
    }

    #[test]
    fn a_value_in_a_url_is_percent_encoded_and_the_template_text_stays() {
        let ctx = Value::from_serialize(serde_json::json!({
            "name": "x/../../other/dispatches?",
            "at": "evil.example@ci#frag",
            "spaced": "a b&c=d%2F",
            "plain": "Web-1.2_x~",
            "flag": true,
            "count": 42,
            "nothing": null,
        }));
        let source = "https://ci.example.com/api/v4/run/{{ name }}/{{ at }}?q={{ spaced }}&p={{ plain }}&dry={{ flag }}&n={{ count }}{{ '/x' | safe }}";
        assert_eq!(
            render_url_str(source, &ctx),
            Ok(
                "https://ci.example.com/api/v4/run/x%2F..%2F..%2Fother%2Fdispatches%3F/\
                evil.example%40ci%23frag?q=a%20b%26c%3Dd%252F&p=Web-1.2_x~&dry=true&n=42%2Fx"
                    .to_string()
            )
        );
        let refused = render_url_str("https://ci.example.com/{{ nothing }}", &ctx);
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("none")),
            "{refused:?}"
        );
        assert_eq!(
            render_url_str("https://ci.example.com/{{ name if false }}x", &ctx),
            Ok("https://ci.example.com/x".to_string())
        );
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let ctx = Value::from_serialize(serde_json::json!({"a": 1}));
        assert_eq!(render_str("{{ a }}", &ctx), Ok("1".to_string()));
        assert!(render_str("{{ b }}", &ctx).is_err());
        assert!(eval_bool("b == 'x'", &ctx).is_err());
        assert_eq!(eval_bool("a == 1", &ctx), Ok(true));
        assert_eq!(eval_bool("b is defined", &ctx), Ok(false));
    }
}
