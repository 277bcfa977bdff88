//! Free text written into structured files. Output templates are not escaped
//! (they write YAML, JSON, SQL and scripts, not HTML), so a value is written as
//! it was typed: one holding a quote and a line break ends `name: "{{ x }}"`
//! and adds keys or documents of its own, `\set owner {{ x }}` in a psql file
//! adds statements, and `echo {{ x }}` in a script adds commands. A parameter
//! whose values are free text for a file (no choices, no plain format, no
//! pattern that keeps them to safe characters: see `values`) may reach a YAML
//! or JSON file only as `{{ x | tojson }}`, a quoted and escaped string, and
//! any other file but prose not at all; a condition that only tests it
//! (`{% if x %}`) writes nothing. A type's actions are held to the same, and
//! so is what an action reads of the request it refers to (`referred.x`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::{Catalog, OutputSpec, ResourceType};
use super::{FileErrors, RESERVED_TEMPLATE_NAMES};
use crate::template;

mod values;

/// What an output file holds, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holds {
    /// YAML, JSON or TOML, where a JSON string is a quoted and escaped value.
    Data,
    /// SQL, where a JSON string is no quoting at all.
    Sql,
    /// Anything else but prose: a script, Terraform, a configuration file.
    Script,
}

/// A parameter an output template writes unsafely.
struct Spliced<'a> {
    /// As the template reads it: `note`, or `referred.note`.
    read_as: String,
    template: &'a str,
    holds: Holds,
    /// Why its values are free text for such a file.
    reason: String,
}

/// Refuses each free-text parameter that an output template writes as it is,
/// naming the first such template. An action's request type is checked as a
/// type of its own when it is built (its refusals land under `actions[i].`).
pub(super) fn check_free_text(ty: &ResourceType, catalog: &Catalog, fe: &mut FileErrors<'_>) {
    let mut found: BTreeMap<String, Spliced<'_>> = BTreeMap::new();
    for spliced in spliced(ty, catalog, &ty.parameters, None) {
        let path = format!("parameters.properties.{}", spliced.read_as);
        found.entry(path).or_insert(spliced);
    }
    for (path, spliced) in found {
        fe.push(path, message(&spliced));
    }
}

/// Refuses each free-text parameter of an action that another action, which
/// refers to it, writes as it is as `referred.<name>`; at the parameter, in
/// the action that declares it. Run once the type's actions are loaded.
pub(super) fn check_referred_free_text(
    ty: &ResourceType,
    catalog: &Catalog,
    fe: &mut FileErrors<'_>,
) {
    let mut found: BTreeMap<String, Spliced<'_>> = BTreeMap::new();
    for action in &ty.actions {
        let Some(reference) = &action.refers_to else {
            continue;
        };
        let Some(j) = ty.actions.iter().position(|a| a.name == reference.action) else {
            continue;
        };
        let theirs = &ty.actions[j].request_type;
        for spliced in spliced(
            &action.request_type,
            catalog,
            &theirs.parameters,
            Some(theirs),
        ) {
            let name = spliced.read_as.trim_start_matches("referred.");
            let declared = ty.actions[j]
                .parameters
                .get("properties")
                .and_then(|p| p.get(name))
                .is_some();
            let path = if declared {
                format!("actions[{j}].parameters.properties.{name}")
            } else {
                format!("parameters.properties.{name}")
            };
            found.entry(path).or_insert(spliced);
        }
    }
    for (path, spliced) in found {
        fe.push(path, message(&spliced));
    }
}

/// What `ty`'s output templates write unsafely of the parameters of `schema`:
/// its own (`referring` None), or those of the request it refers to, read as
/// `referred.<name>`.
fn spliced<'a>(
    ty: &'a ResourceType,
    catalog: &'a Catalog,
    schema: &Value,
    referring: Option<&ResourceType>,
) -> Vec<Spliced<'a>> {
    let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
        return Vec::new();
    };
    // A secret is never its value in a template (a reference or a
    // placeholder), and a reserved name is Slipway's value (refused apart).
    let names: Vec<&str> = properties
        .keys()
        .map(String::as_str)
        .filter(|name| !referring.unwrap_or(ty).is_secret(name))
        .filter(|name| referring.is_some() || !RESERVED_TEMPLATE_NAMES.contains(name))
        .collect();
    let mut found = Vec::new();
    for output in &ty.outputs {
        let Some(holds) = holds(output) else { continue };
        let Some(source) = catalog.templates.get(&output.template) else {
            continue;
        };
        // A template that does not compile is reported on its own.
        let Ok(read) = template::variables_of(source) else {
            continue;
        };
        for &name in &names {
            let (variable, attribute) = match referring {
                Some(_) => ("referred", Some(name)),
                None => (name, None),
            };
            if !read.contains(variable) {
                continue;
            }
            let Some(reason) = values::free_text(schema, name, holds) else {
                continue;
            };
            if !written_safely(source, (variable, attribute), holds) {
                found.push(Spliced {
                    read_as: attribute.map_or(name.to_string(), |a| format!("{variable}.{a}")),
                    template: output.template.as_str(),
                    holds,
                    reason,
                });
            }
        }
    }
    found
}

fn message(spliced: &Spliced<'_>) -> String {
    let Spliced {
        read_as,
        template,
        holds,
        reason,
    } = spliced;
    let free = reason.starts_with("is free text");
    let (into, danger, fix) = match holds {
        Holds::Data => (
            "into a YAML or JSON file",
            "a value with a quote and a line break would add keys or documents of its own",
            format!(
                "Give it a `pattern` that holds the whole value (`^…$`) and leaves out quotes, \
                 backslashes, line breaks and `,{{}}[]#`, or write it as \
                 `{{{{ {read_as} | tojson }}}}` (a quoted, escaped string)"
            ),
        ),
        Holds::Sql => (
            "into a SQL file",
            "a value with a quote or a line break would add statements of its own",
            format!(
                "Give it a `pattern` of letters, digits, `_` and `.` that holds the whole value \
                 (`^[a-z][a-z0-9_]*$`), or pass it to psql as a variable (`-v name={{{{ {read_as} }}}}` \
                 in the step's args) and write `:'name'` in the file"
            ),
        ),
        Holds::Script => (
            "into a script or settings file",
            "a value with a quote, a `$` or a line break would add commands or settings of its own",
            "Give it a `pattern` of letters, digits and `_ . - + , : @` that holds the whole \
             value and does not start with `-` (`^[a-z][a-z0-9-]*$`), or hand it to the \
             program in the step's `env` or `args` instead"
                .to_string(),
        ),
    };
    let writes = if read_as.contains('.') {
        format!("templates/{template} writes it as `{read_as}`")
    } else {
        format!("templates/{template} writes it")
    };
    if free {
        format!("{reason} and {writes} {into} as it is: {danger}. {fix}")
    } else {
        format!("{reason}; {writes} {into} as it is. {fix}")
    }
}

/// The kind of file an output is, by its path or its template's name (less a
/// template's own extension); None for prose, which nothing parses.
fn holds(output: &OutputSpec) -> Option<Holds> {
    let kind = |name: &str| {
        let mut name = name.trim().to_ascii_lowercase();
        for extension in [".j2", ".jinja2", ".jinja", ".tmpl", ".tpl"] {
            if let Some(stem) = name.strip_suffix(extension) {
                name = stem.to_string();
            }
        }
        let ends = |all: &[&str]| all.iter().any(|e| name.ends_with(e));
        if ends(&[".md", ".markdown", ".txt", ".rst", ".adoc"]) {
            None
        } else if ends(&[".yaml", ".yml", ".json", ".toml"]) {
            Some(Holds::Data)
        } else if ends(&[".sql"]) {
            Some(Holds::Sql)
        } else {
            Some(Holds::Script)
        }
    };
    // The path says what the file is where it lands; a path without an
    // extension of its own (`Dockerfile`) leaves it to the template's name.
    match kind(&output.path) {
        Some(Holds::Script) => kind(&output.template).or(Some(Holds::Script)),
        other => other,
    }
}

/// A template's tag: `{{ expression }}` or `{% statement %}`, trimmed of
/// whitespace control (`-`, `+`) and spaces.
enum Tag<'a> {
    Expression(&'a str),
    Statement(&'a str),
}

/// Whether every tag that names the variable leaves it safe: a condition
/// only tests it, and in a YAML or JSON file `{{ name | tojson }}` writes it
/// quoted. With an attribute (`referred.note`), a tag that reads only other
/// attributes of the variable writes nothing of it. A template that reads it
/// where no tag is seen to is taken as unsafe.
fn written_safely(source: &str, (name, attribute): (&str, Option<&str>), holds: Holds) -> bool {
    let mut seen = false;
    for tag in tags(source) {
        let (text, safe) = match tag {
            Tag::Expression(text) => (
                text,
                holds == Holds::Data && is_tojson(text, name, attribute),
            ),
            Tag::Statement(text) => (text, is_condition(text)),
        };
        let mentions = mentions(text, name);
        seen |= !mentions.is_empty();
        let reads_it = mentions
            .iter()
            .any(|rest| attribute.is_none_or(|a| !other_attribute(rest, a)));
        if reads_it && !safe {
            return false;
        }
    }
    seen
}

/// Whether what follows a variable reads one of its attributes other than
/// `attribute` (`.version` after `referred`).
fn other_attribute(rest: &str, attribute: &str) -> bool {
    let Some(after_dot) = rest.trim_start().strip_prefix('.') else {
        return false;
    };
    let after_dot = after_dot.trim_start();
    let end = after_dot
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(after_dot.len());
    end > 0 && &after_dot[..end] != attribute
}

fn is_tojson(expression: &str, name: &str, attribute: Option<&str>) -> bool {
    let bare: String = expression.split_whitespace().collect();
    bare == format!("{name}|tojson")
        || attribute.is_some_and(|a| bare == format!("{name}.{a}|tojson"))
}

fn is_condition(statement: &str) -> bool {
    matches!(statement.split_whitespace().next(), Some("if" | "elif"))
}

/// The expression and statement tags of `source`, comments and `raw` blocks
/// left out; the scan stops at a tag that is not closed (a compile error).
fn tags(source: &str) -> Vec<Tag<'_>> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let opening = rest.get(start..start + 2).unwrap_or_default();
        let close = match opening {
            "{{" => "}}",
            "{%" => "%}",
            "{#" => "#}",
            _ => {
                rest = &rest[start + 1..];
                continue;
            }
        };
        let body_start = start + 2;
        let Some(length) = closing(&rest[body_start..], close, close != "#}") else {
            break;
        };
        let body = rest[body_start..body_start + length]
            .trim_start_matches(['-', '+'])
            .trim_end_matches(['-', '+'])
            .trim();
        rest = &rest[body_start + length + close.len()..];
        match opening {
            "{{" => found.push(Tag::Expression(body)),
            "{%" if body.split_whitespace().next() == Some("raw") => {
                // Everything to the `{% endraw %}` tag is text, as the
                // template engine reads it (not to the word anywhere).
                rest = after_endraw(rest);
            }
            "{%" => found.push(Tag::Statement(body)),
            _ => {}
        }
    }
    found
}

/// What follows the first `{% endraw %}` tag (with its whitespace control,
/// `{%- endraw -%}`); nothing when there is none.
fn after_endraw(text: &str) -> &str {
    let mut rest = text;
    while let Some(start) = rest.find("{%") {
        let body = rest[start + 2..]
            .trim_start_matches(['-', '+'])
            .trim_start();
        if let Some(after) = body.strip_prefix("endraw") {
            let after = after.trim_start().trim_start_matches(['-', '+']);
            if let Some(tail) = after.strip_prefix("%}") {
                return tail;
            }
        }
        rest = &rest[start + 2..];
    }
    ""
}

/// Where `close` ends a tag's body; in code (`strings`), a `}}` inside a
/// quoted string ends nothing.
fn closing(body: &str, close: &str, strings: bool) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (at, c) in body.char_indices() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(open) if c == open => quote = None,
            Some(_) => {}
            None if strings && (c == '"' || c == '\'') => quote = Some(c),
            None if body[at..].starts_with(close) => return Some(at),
            None => {}
        }
    }
    None
}

/// Where code reads the variable `name` (an identifier outside string
/// literals that is not an attribute, `x.name`): the code after each.
fn mentions<'a>(code: &'a str, name: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    let mut chars = code.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if let Some(open) = quote {
            if c == '\\' {
                chars.next();
            } else if c == open {
                quote = None;
            }
        } else if c == '"' || c == '\'' {
            quote = Some(c);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = code[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(code.len(), |length| at + length);
            if &code[at..end] == name && previous != '.' {
                found.push(&code[end..]);
            }
            while chars.peek().is_some_and(|(next, _)| *next < end) {
                chars.next();
            }
        }
        if !c.is_whitespace() {
            previous = c;
        }
    }
    found
}

#[cfg(test)]
mod tests;
