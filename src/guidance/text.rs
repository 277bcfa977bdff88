//! Review comments are free text by people: which field a comment names, and the
//! part of it a hint quotes, read safely whatever the text holds.

use crate::catalog::FieldSpec;

/// A comment is read this far: a field named later in a 100 KB comment is missed,
/// and no comment costs more than this to scan.
pub const MAX_COMMENT_CHARS: usize = 4_000;
/// The longest quote a hint shows, and how much of it comes before the field's name.
const EXCERPT_CHARS: usize = 200;
const LEAD_CHARS: usize = 60;
/// Shorter names ("id", "ha") would match too many ordinary words.
const MIN_TERM_CHARS: usize = 3;

/// Whether the comment names the field: its parameter name (`storage_gb`, or
/// `storage gb`), its label (`Storage (GB)`) or its label without the bracketed
/// part (`Storage`), in any case, as whole words.
pub fn names_field(comment: &str, field: &FieldSpec) -> bool {
    position(&clean(comment), field).is_some()
}

/// The part of the comment around the first place it names the field (or its start),
/// at most 200 characters, with control and direction-changing characters removed
/// and runs of white space made one space. It is text: the page escapes it.
pub fn excerpt(comment: &str, field: &FieldSpec) -> String {
    let chars = clean(comment);
    let at = position(&chars, field).unwrap_or(0);
    let start = at.saturating_sub(LEAD_CHARS);
    let end = chars.len().min(start + EXCERPT_CHARS);
    let mut quote = String::new();
    if start > 0 {
        quote.push('…');
    }
    quote.extend(&chars[start..end]);
    if end < chars.len() {
        quote.push('…');
    }
    quote
}

/// The comment's first characters, safe to show and to search.
fn clean(comment: &str) -> Vec<char> {
    let mut chars = Vec::new();
    for c in comment.chars().take(MAX_COMMENT_CHARS) {
        if invisible(c) {
            continue;
        }
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            c
        };
        if c == ' ' && chars.last().is_none_or(|last| *last == ' ') {
            continue;
        }
        chars.push(c);
    }
    if chars.last() == Some(&' ') {
        chars.pop();
    }
    chars
}

/// Zero-width and bidirectional formatting characters, which could make a quote
/// read differently from what it is.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Case folding one character to one, so positions in the folded text are
/// positions in the original.
fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The words that name a field, folded.
fn terms(field: &FieldSpec) -> Vec<Vec<char>> {
    let spaced: String = field
        .name
        .chars()
        .map(|c| if c == '_' || c == '-' { ' ' } else { c })
        .collect();
    let unbracketed = field.title.split('(').next().unwrap_or_default().trim();
    let mut terms: Vec<Vec<char>> = Vec::new();
    for term in [field.name.as_str(), &spaced, &field.title, unbracketed] {
        let folded: Vec<char> = term.trim().chars().map(fold).collect();
        if folded.len() >= MIN_TERM_CHARS && !terms.contains(&folded) {
            terms.push(folded);
        }
    }
    terms
}

/// Where the cleaned comment first names the field.
fn position(chars: &[char], field: &FieldSpec) -> Option<usize> {
    let folded: Vec<char> = chars.iter().copied().map(fold).collect();
    terms(field)
        .iter()
        .filter_map(|term| find_word(&folded, term))
        .min()
}

/// The first place `term` stands in `text` as whole words: not glued to a letter,
/// digit or underscore on a side where the term itself starts or ends with one.
fn find_word(text: &[char], term: &[char]) -> Option<usize> {
    let (first, last) = (*term.first()?, *term.last()?);
    (0..=text.len().checked_sub(term.len())?).find(|&start| {
        let end = start + term.len();
        text[start..end] == *term
            && (start == 0 || !is_word(first) || !is_word(text[start - 1]))
            && (end == text.len() || !is_word(last) || !is_word(text[end]))
    })
}
