//! Free text written into structured files. Output templates are not escaped
//! (they write YAML, JSON and SQL, not HTML), so a value is written as it was
//! typed: one holding a quote and a line break ends `name: "{{ x }}"` and adds
//! keys or documents of its own, and `\set owner {{ x }}` in a psql file adds
//! statements. A parameter whose values are free text (no choices, pattern or
//! plain format) may reach a YAML or JSON file only as `{{ x | tojson }}`, a
//! quoted and escaped string, and a SQL file not at all; a condition that only
//! tests it (`{% if x %}`) writes nothing.

use std::collections::BTreeMap;

use super::super::{Catalog, OutputSpec, ResourceType, schema};
use super::{FileErrors, RESERVED_TEMPLATE_NAMES};
use crate::template;

/// What an output file holds, by its name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holds {
    /// YAML or JSON, where a JSON string is a quoted and escaped value.
    Data,
    /// SQL, where a JSON string is no quoting at all.
    Sql,
}

/// Refuses each free-text parameter that an output template writes into a
/// YAML, JSON or SQL file as it is, naming the first such template.
pub(super) fn check_free_text(ty: &ResourceType, catalog: &Catalog, fe: &mut FileErrors<'_>) {
    let Some(properties) = ty.parameters.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    // A secret is never its value in a template (a reference or a
    // placeholder), and a reserved name is Slipway's value (refused apart).
    let free: Vec<&str> = properties
        .keys()
        .map(String::as_str)
        .filter(|name| !ty.is_secret(name) && !RESERVED_TEMPLATE_NAMES.contains(name))
        .filter(|name| schema::is_free_text(&ty.parameters, name))
        .collect();
    let mut found: BTreeMap<&str, (&str, Holds)> = BTreeMap::new();
    for output in &ty.outputs {
        let Some(holds) = holds(output) else { continue };
        let Some(source) = catalog.templates.get(&output.template) else {
            continue;
        };
        // A template that does not compile is reported on its own.
        let Ok(read) = template::variables_of(source) else {
            continue;
        };
        for &name in &free {
            if read.contains(name) && !written_safely(source, name, holds) {
                found
                    .entry(name)
                    .or_insert((output.template.as_str(), holds));
            }
        }
    }
    for (name, (template, holds)) in found {
        fe.push(
            format!("parameters.properties.{name}"),
            message(name, template, holds),
        );
    }
}

fn message(name: &str, template: &str, holds: Holds) -> String {
    let head = format!(
        "is free text (no `pattern`, `enum`, `x-dictionary` or plain `format`) and \
         templates/{template} writes it"
    );
    match holds {
        Holds::Data => format!(
            "{head} into a YAML or JSON file as it is: a value with a quote and a line break \
             would add keys or documents of its own. Give it a `pattern` that leaves out quotes \
             and line breaks, or write it as `{{{{ {name} | tojson }}}}` (a quoted, escaped string)"
        ),
        Holds::Sql => format!(
            "{head} into a SQL file: a value with a quote or a line break would add statements \
             of its own. Give it a `pattern` that leaves out quotes and line breaks, or pass it \
             to psql as a variable (`-v {name}=...` in the step's args) and write `:'{name}'` \
             in the file"
        ),
    }
}

/// YAML, JSON or SQL, by the output's path or its template's name (less a
/// template's own extension); None for any other file.
fn holds(output: &OutputSpec) -> Option<Holds> {
    [output.path.as_str(), output.template.as_str()]
        .into_iter()
        .find_map(|name| {
            let mut name = name.trim().to_ascii_lowercase();
            for extension in [".j2", ".jinja2", ".jinja", ".tmpl", ".tpl"] {
                if let Some(stem) = name.strip_suffix(extension) {
                    name = stem.to_string();
                }
            }
            if [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e)) {
                Some(Holds::Data)
            } else {
                name.ends_with(".sql").then_some(Holds::Sql)
            }
        })
}

/// A template's tag: `{{ expression }}` or `{% statement %}`, trimmed of
/// whitespace control (`-`, `+`) and spaces.
enum Tag<'a> {
    Expression(&'a str),
    Statement(&'a str),
}

/// Whether every tag that names `name` leaves it safe: a condition only tests
/// it, and in a YAML or JSON file `{{ name | tojson }}` writes it quoted. A
/// template that reads it where no tag is seen to is taken as unsafe.
fn written_safely(source: &str, name: &str, holds: Holds) -> bool {
    let mut named = 0;
    for tag in tags(source) {
        let (text, safe) = match tag {
            Tag::Expression(text) => (text, holds == Holds::Data && is_tojson(text, name)),
            Tag::Statement(text) => (text, is_condition(text)),
        };
        if names(text, name) {
            named += 1;
            if !safe {
                return false;
            }
        }
    }
    named > 0
}

fn is_tojson(expression: &str, name: &str) -> bool {
    let bare: String = expression.split_whitespace().collect();
    bare == format!("{name}|tojson")
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
                // Everything to `endraw` is text.
                rest = rest.find("endraw").map_or("", |at| &rest[at..]);
            }
            "{%" => found.push(Tag::Statement(body)),
            _ => {}
        }
    }
    found
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

/// Whether code reads the variable `name`: an identifier outside string
/// literals that is not an attribute (`x.name`).
fn names(code: &str, name: &str) -> bool {
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
                return true;
            }
            while chars.peek().is_some_and(|(next, _)| *next < end) {
                chars.next();
            }
        }
        if !c.is_whitespace() {
            previous = c;
        }
    }
    false
}

#[cfg(test)]
mod tests;
