//! How deep a YAML text nests its flow collections (`[` and `{`), read in one
//! pass before the parser sees it: the YAML parser's time grows with the square
//! of the depth (a 200 KB file of brackets held start-up for minutes), while no
//! catalog file or manifest nests more than a few dozen levels.

/// The deepest nesting a catalog file or a rendered manifest may have.
pub const MAX_NESTING: usize = 256;

/// Why `text` is refused, if it nests deeper than [`MAX_NESTING`]. Erring
/// towards counting: a quote opens a string only where a flow collection expects
/// a value (after `[`, `{`, `,` or `:`), as the parser reads it, so a quote inside
/// a plain or block scalar hides nothing; brackets in a string outside a flow
/// collection count (a false refusal needs hundreds of them unbalanced).
pub fn too_deep(text: &str) -> Option<String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut expects_value = false;
    let mut previous = '\n';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            // A doubled quote inside a single-quoted string is one quote.
            Some('\'') if c == '\'' && chars.peek() == Some(&'\'') => {
                chars.next();
            }
            Some(open) if c == open => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' if depth > 0 && expects_value => quote = Some(c),
                '#' if previous.is_whitespace() => skip_line(&mut chars),
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some(format!(
                            "nests deeper than {MAX_NESTING} levels of [ ] and {{ }}"
                        ));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        if quote.is_none() && !c.is_whitespace() {
            expects_value = matches!(c, '[' | '{' | ',' | ':');
        }
        previous = c;
    }
    None
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_collections_are_refused_and_quoted_brackets_are_not() {
        let deep = format!("x: {}{}", "[".repeat(300), "]".repeat(300));
        assert!(too_deep(&deep).is_some());
        let deep_maps = format!("x: {}{}", "{a: ".repeat(300), "}".repeat(300));
        assert!(too_deep(&deep_maps).is_some());
        let fine = format!("x: {}{}", "[".repeat(256), "]".repeat(256));
        assert_eq!(too_deep(&fine), None);
        for quoted in [
            format!("x: [\"{}\", '{}']", "[".repeat(1000), "{".repeat(1000)),
            format!("x: ['it''s {}']", "{".repeat(1000)),
            format!("x: [\"a \\\" {}\"]", "[".repeat(1000)),
            format!("x: {{a: \"{}\"}}", "[".repeat(1000)),
            format!("# {}\nx: 1", "[".repeat(1000)),
        ] {
            assert_eq!(too_deep(&quoted), None, "{quoted:.60}");
        }
        // A quote that opens no string hides nothing after it.
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        for hiding in [
            format!("a: b \"\nc: {deep}"),
            format!("a: |\n  '\nc: {deep}"),
            format!("[x \", {deep}]"),
            format!("[ -\" {deep}]"),
            format!("[\"]\", {}]", "[\"]\", ".repeat(300)),
        ] {
            assert!(too_deep(&hiding).is_some(), "{hiding:.60}");
        }
    }
}
