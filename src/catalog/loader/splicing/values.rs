//! What a parameter's values may hold, read from its schema: whether every
//! value it accepts is safe to write as it is into a file of one kind. A
//! `pattern` counts only when it holds the whole value (`^…$`) and every
//! character it lets through is one the file's kind may hold as it is, read
//! after the same ECMA-262 translation the validator makes, so what is
//! checked here is what requests are held to.

use regex_syntax::hir::{Class, Hir, HirKind, Look};
use serde_json::Value;

use super::Holds;

/// Formats whose values hold no quote, line break or YAML indicator.
const PLAIN_FORMATS: &[&str] = &[
    "date",
    "date-time",
    "time",
    "duration",
    "ipv4",
    "ipv6",
    "uuid",
    "hostname",
];

/// Why a top-level property's values may not be written as they are into a
/// file of kind `holds`, or None when every value it accepts may be.
pub(super) fn free_text(schema: &Value, name: &str, holds: Holds) -> Option<String> {
    let property = schema.get("properties").and_then(|p| p.get(name))?;
    let text = match property.get("type").and_then(Value::as_str) {
        Some("string") => property,
        Some("array") => property.get("items").unwrap_or(&Value::Null),
        _ => return None,
    };
    unsafe_values(schema, text, holds, 0)
}

fn unsafe_values(root: &Value, property: &Value, holds: Holds, depth: usize) -> Option<String> {
    const FREE: &str = "is free text (no `pattern`, `enum`, `x-dictionary` or plain `format`)";
    if depth > 8 {
        return Some(FREE.into());
    }
    // Choices are the catalog's own words: written as the catalog wrote them.
    // A value meets every keyword at once, so one that keeps it safe is enough.
    if ["enum", "const", "x-dictionary"]
        .iter()
        .any(|k| property.get(k).is_some())
    {
        return None;
    }
    let format = property.get("format").and_then(Value::as_str);
    if format.is_some_and(|f| plain_format(f, holds)) {
        return None;
    }
    let pattern = property
        .get("pattern")
        .and_then(Value::as_str)
        .map(|p| unsafe_pattern(p, holds));
    if let Some(None) = pattern {
        return None;
    }
    let alternatives = ["oneOf", "anyOf"].iter().find_map(|key| {
        let all = property.get(*key).and_then(Value::as_array)?;
        (!all.is_empty()).then(|| {
            all.iter()
                .find_map(|alternative| unsafe_values(root, alternative, holds, depth + 1))
        })
    });
    if let Some(None) = alternatives {
        return None;
    }
    let referred =
        followed_ref(root, property).map(|target| unsafe_values(root, target, holds, depth + 1));
    if let Some(None) = referred {
        return None;
    }
    [pattern, alternatives, referred]
        .into_iter()
        .flatten()
        .flatten()
        .next()
        .or_else(|| Some(FREE.into()))
}

/// The schema a `$ref` names, where it is read as the validator reads it: a
/// plain JSON pointer into the root schema. A pointer with escapes (`%61` is
/// `a` to the validator) or an `$id` on the way (which moves where the pointer
/// starts) is not followed, and the property counts as free text.
fn followed_ref<'a>(root: &'a Value, property: &Value) -> Option<&'a Value> {
    let pointer = property.get("$ref")?.as_str()?.strip_prefix('#')?;
    if pointer.contains('%') || property.get("$id").is_some() {
        return None;
    }
    root.pointer(pointer)
        .filter(|target| target.get("$id").is_none())
}

/// A host name may hold `--` (`xn--…`), which starts a comment in SQL.
fn plain_format(format: &str, holds: Holds) -> bool {
    PLAIN_FORMATS.contains(&format) && !(holds == Holds::Sql && format == "hostname")
}

/// Why the values a pattern accepts are not all safe in a file of kind
/// `holds`, or None when they are.
fn unsafe_pattern(pattern: &str, holds: Holds) -> Option<String> {
    let unreadable = || {
        Some(format!(
            "has a pattern ({pattern:?}) this check cannot read (look-arounds, \
             back-references and inline flags such as `(?x)` are beyond it), so it counts \
             as free text"
        ))
    };
    let Ok(translated) = jsonschema_regex::to_rust_regex(pattern) else {
        return unreadable();
    };
    // Inline flags are no ECMA-262 and the engines read some apart: under
    // `(?x)` the parser read here takes `#` in a class for a comment, the
    // validator's for a `#`.
    if has_inline_flags(&translated) {
        return unreadable();
    }
    let Ok(hir) = regex_syntax::Parser::new().parse(&translated) else {
        return unreadable();
    };
    let properties = hir.properties();
    if !properties.look_set_prefix().contains(Look::Start)
        || !properties.look_set_suffix().contains(Look::End)
    {
        return Some(format!(
            "has a pattern ({pattern:?}) that does not hold the whole value (it needs `^` at \
             its start and `$` at its end: a pattern is found anywhere in a value), so it \
             counts as free text"
        ));
    }
    let mut letters = Vec::new();
    alphabet(&hir, &mut letters);
    if let Some(c) = first_outside(&letters, |c| holds.may_hold(c)) {
        return Some(format!(
            "has a pattern ({pattern:?}) that lets through {c:?}, which {}",
            holds.why_not(c)
        ));
    }
    let (first, _) = first_letters(&hir);
    if let Some(c) = first_outside(&first, |c| holds.may_start_with(c)) {
        return Some(format!(
            "has a pattern ({pattern:?}) that lets a value start with {c:?}, which {}",
            holds.why_not_first(c)
        ));
    }
    None
}

/// Whether a pattern sets flags inline (`(?x)`, `(?i:…)`); true too when it
/// cannot be parsed.
fn has_inline_flags(pattern: &str) -> bool {
    use regex_syntax::ast::{self, Ast, GroupKind, Visitor};
    struct Flags(bool);
    impl Visitor for Flags {
        type Output = bool;
        type Err = ();
        fn finish(self) -> Result<bool, ()> {
            Ok(self.0)
        }
        fn visit_pre(&mut self, ast: &Ast) -> Result<(), ()> {
            match ast {
                Ast::Flags(_) => self.0 = true,
                Ast::Group(group) => {
                    if let GroupKind::NonCapturing(flags) = &group.kind {
                        self.0 |= !flags.items.is_empty();
                    }
                }
                _ => {}
            }
            Ok(())
        }
    }
    match ast::parse::Parser::new().parse(pattern) {
        Ok(parsed) => ast::visit(&parsed, Flags(false)).unwrap_or(true),
        Err(_) => true,
    }
}

/// The first character of the ranges that `allowed` refuses.
fn first_outside(ranges: &[(char, char)], allowed: impl Fn(char) -> bool) -> Option<char> {
    ranges
        .iter()
        .find_map(|&(start, end)| (start..=end).find(|&c| !allowed(c)))
}

/// Every character the expression may match, as ranges (overlaps allowed).
fn alphabet(hir: &Hir, letters: &mut Vec<(char, char)>) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(literal) => {
            for c in String::from_utf8_lossy(&literal.0).chars() {
                letters.push((c, c));
            }
        }
        HirKind::Class(class) => letters.extend(class_ranges(class)),
        HirKind::Repetition(repetition) => alphabet(&repetition.sub, letters),
        HirKind::Capture(capture) => alphabet(&capture.sub, letters),
        HirKind::Concat(all) | HirKind::Alternation(all) => {
            for sub in all {
                alphabet(sub, letters);
            }
        }
    }
}

/// The characters a match may start with, and whether it may be empty.
fn first_letters(hir: &Hir) -> (Vec<(char, char)>, bool) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => (Vec::new(), true),
        HirKind::Literal(literal) => {
            let first = String::from_utf8_lossy(&literal.0).chars().next();
            (first.map(|c| (c, c)).into_iter().collect(), first.is_none())
        }
        HirKind::Class(class) => (class_ranges(class), false),
        HirKind::Repetition(repetition) => {
            let (first, empty) = first_letters(&repetition.sub);
            (first, empty || repetition.min == 0)
        }
        HirKind::Capture(capture) => first_letters(&capture.sub),
        HirKind::Concat(all) => {
            let mut letters = Vec::new();
            for sub in all {
                let (first, empty) = first_letters(sub);
                letters.extend(first);
                if !empty {
                    return (letters, false);
                }
            }
            (letters, true)
        }
        HirKind::Alternation(all) => {
            let mut letters = Vec::new();
            let mut any_empty = false;
            for sub in all {
                let (first, empty) = first_letters(sub);
                letters.extend(first);
                any_empty |= empty;
            }
            (letters, any_empty)
        }
    }
}

fn class_ranges(class: &Class) -> Vec<(char, char)> {
    match class {
        Class::Unicode(unicode) => unicode
            .ranges()
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect(),
        Class::Bytes(bytes) => bytes
            .ranges()
            .iter()
            .map(|r| (char::from(r.start()), char::from(r.end())))
            .collect(),
    }
}

impl Holds {
    /// Whether a value may hold `c` anywhere.
    fn may_hold(self, c: char) -> bool {
        match self {
            // Quotes and backslashes end or escape a quoted scalar or string,
            // line breaks end a line, and `,{}[]` end an entry of a flow
            // collection (JSON is one); `#` after a space starts a comment.
            Holds::Data => {
                !(c.is_control()
                    || matches!(
                        c,
                        '"' | '\''
                            | '`'
                            | '\\'
                            | ','
                            | '{'
                            | '}'
                            | '['
                            | ']'
                            | '#'
                            | '\u{2028}'
                            | '\u{2029}'
                            | '\u{feff}'
                    ))
            }
            // A bare word: no quote, statement end, comment (`--`, `/*`) or
            // psql meta-command can be formed from these.
            Holds::Sql => c.is_ascii_alphanumeric() || matches!(c, '_' | '.'),
            // A word of a shell, Terraform or configuration file: no
            // quoting, expansion, redirection, separator or comment.
            Holds::Script => {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | ',' | ':' | '@')
            }
        }
    }

    /// Whether a value may start with `c`.
    fn may_start_with(self, c: char) -> bool {
        match self {
            // YAML's indicators: an anchor, alias, tag, block scalar,
            // directive or reserved character at a plain scalar's start.
            Holds::Data => !matches!(c, '&' | '*' | '!' | '|' | '>' | '%' | '@'),
            Holds::Sql => true,
            // A leading `-` makes a program's argument an option of its own.
            Holds::Script => c != '-',
        }
    }

    fn why_not(self, c: char) -> &'static str {
        match self {
            Holds::Data if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                "would end the line and start keys or documents of its own"
            }
            Holds::Data => {
                "could end a quoted value or a flow collection's entry and add keys of its own"
            }
            Holds::Sql => {
                "could end a name or a string and add statements of its own (a value \
                 written into SQL may hold only letters, digits, `_` and `.`)"
            }
            Holds::Script => {
                "could end a word and add commands or settings of its own (a value written \
                 into such a file may hold only letters, digits and `_ . - + , : @`)"
            }
        }
    }

    fn why_not_first(self, c: char) -> &'static str {
        match (self, c) {
            (Holds::Script, _) => "would make it an option of the program that reads it",
            _ => "YAML reads as an anchor, alias, tag or block at a value's start",
        }
    }
}

#[cfg(test)]
mod tests;
