//! The shape of a YAML text, read in one pass before the parser sees it, for
//! two things the parser pays for out of proportion to the text:
//!
//! - how deep flow collections (`[` and `{`) nest: the parser's time grows with
//!   the square of the depth (a 200 KB file of brackets held start-up for
//!   minutes), while no catalog file or manifest nests more than a few dozen
//!   levels;
//! - anchors and aliases (`&name`, `*name`): each alias is a copy of its
//!   anchor's whole value once read, so a few lines of aliases of aliases stand
//!   for billions of values (the parser bounds how many aliases it follows, not
//!   what they copy). Catalog files and manifests have no need of them.
//!
//! The scan follows the tokenizer of the parser we use (libyaml, as ported in
//! `unsafe-libyaml-norway`) step by step: where a token starts, where a plain,
//! quoted or block scalar ends (which needs the block indentation libyaml
//! keeps), where a comment starts. A bracket or `&` inside a quoted or block
//! scalar or a comment is text to the parser and to this scan alike; a quote
//! inside a plain scalar (`a:"`) opens nothing for either. Where libyaml would
//! stop on a syntax error the scan goes on (it never refuses less than the
//! parser would read): what follows is never parsed, so at worst a broken file
//! is refused for its shape rather than its syntax.

/// The deepest nesting a catalog file or a rendered manifest may have.
pub const MAX_NESTING: usize = 256;

/// Why `text` is refused before it is parsed, if it is: its flow collections
/// nest deeper than [`MAX_NESTING`], or it has an anchor or an alias. The
/// reason reads after "it" and names the line. For catalog files, which the
/// server reads whole into memory at start.
pub fn refusal(text: &str) -> Option<String> {
    Scanner::new(text, Aliases::Refused).run().err()
}

/// The most aliases a rendered manifest may use.
pub const MAX_ALIASES: usize = 32;

/// [`refusal`] for a rendered manifest, which may use anchors as CI and
/// Compose files do (`<<: *defaults`): their cost is bounded instead. Each
/// alias replays its anchor's value, so at most [`MAX_ALIASES`] of them, and no
/// anchor may follow an alias: an anchored value holding aliases of one
/// holding aliases, and so on, is how a few lines stand for billions of
/// values. (One level is left, an anchor set before the aliases inside it:
/// at most 16 × 16 replays of a value.)
pub fn manifest_refusal(text: &str) -> Option<String> {
    Scanner::new(text, Aliases::Bounded { used: 0 }).run().err()
}

/// What the scan does with anchors and aliases.
enum Aliases {
    Refused,
    /// Allowed within [`MAX_ALIASES`], all anchors before the first alias;
    /// `used` counts the aliases so far.
    Bounded {
        used: usize,
    },
}

/// The longest anchor name a message quotes.
const SHOWN_NAME: usize = 40;

/// A byte order mark, which libyaml skips at the start of a line.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where a mapping key without `?` may have started in block context (a
/// "simple key"): its `:` opens a block mapping at this column.
#[derive(Clone, Copy)]
struct Mark {
    line: usize,
    pos: usize,
    column: usize,
}

/// libyaml's scanner state, less what only its error messages need. Positions
/// are byte offsets (as libyaml's marks count them); columns count characters.
struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    column: usize,
    /// How many flow collections are open.
    flow: usize,
    /// The column of the innermost block collection; -1 outside any.
    indent: isize,
    indents: Vec<isize>,
    /// Whether a simple key may start here (libyaml's `simple_key_allowed`).
    key_allowed: bool,
    /// The possible simple key of block context, if any.
    block_key: Option<Mark>,
    aliases: Aliases,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str, aliases: Aliases) -> Scanner<'a> {
        // libyaml's reader drops a byte order mark that starts the text, taking
        // no column for it (one at the start of a later line takes one).
        let pos = if text.as_bytes().starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        Scanner {
            text: text.as_bytes(),
            pos,
            line: 0,
            column: 0,
            flow: 0,
            indent: -1,
            indents: Vec::new(),
            key_allowed: true,
            block_key: None,
            aliases,
        }
    }

    fn run(mut self) -> Result<(), String> {
        loop {
            self.skip_to_next_token();
            self.forget_stale_key();
            self.unroll(self.column as isize);
            if self.is_end(self.pos) {
                return Ok(());
            }
            self.token()?;
        }
    }

    /// One token, dispatched on its first character as libyaml's
    /// `fetch_next_token` does.
    fn token(&mut self) -> Result<(), String> {
        let c = self.byte();
        let next_blankz = self.is_blankz(self.next());
        if self.column == 0 && c == b'%' {
            self.directive();
            return Ok(());
        }
        if self.column == 0 && self.at_document_marker() {
            self.document_marker();
            return Ok(());
        }
        match c {
            b'[' | b'{' => return self.open_flow(),
            b']' | b'}' => self.close_flow(),
            b',' => self.indicator(true),
            b'-' if next_blankz => self.block_entry(),
            b'?' if self.flow > 0 || next_blankz => self.explicit_key(),
            b':' if self.flow > 0 || next_blankz => self.value(),
            b'&' | b'*' => return self.anchor(),
            b'!' => self.tag(),
            b'|' | b'>' if self.flow == 0 => self.block_scalar(),
            b'\'' | b'"' => self.quoted(c),
            _ if self.starts_plain(c) => self.plain(),
            // libyaml stops here: "found character that cannot start any token".
            _ => self.advance(),
        }
        Ok(())
    }

    // Characters.

    fn byte_at(&self, at: usize) -> u8 {
        self.text.get(at).copied().unwrap_or(0)
    }

    fn byte(&self) -> u8 {
        self.byte_at(self.pos)
    }

    /// The end of the text, or a NUL (libyaml's reader stops at one).
    fn is_end(&self, at: usize) -> bool {
        self.byte_at(at) == 0
    }

    fn is_blank(&self, at: usize) -> bool {
        matches!(self.byte_at(at), b' ' | b'\t')
    }

    /// A line break to libyaml: CR, LF, NEL, LS or PS.
    fn is_break(&self, at: usize) -> bool {
        matches!(
            self.text.get(at..),
            Some([b'\r' | b'\n', ..] | [0xC2, 0x85, ..] | [0xE2, 0x80, 0xA8 | 0xA9, ..])
        )
    }

    fn is_breakz(&self, at: usize) -> bool {
        self.is_break(at) || self.is_end(at)
    }

    fn is_blankz(&self, at: usize) -> bool {
        self.is_blank(at) || self.is_breakz(at)
    }

    /// Where the character after the current one starts.
    fn next(&self) -> usize {
        self.pos + width(self.byte())
    }

    fn advance(&mut self) {
        if self.pos < self.text.len() {
            self.pos = self.next();
            self.column += 1;
        }
    }

    /// Past a line break (CR LF is one).
    fn skip_line(&mut self) {
        if self.text.get(self.pos..self.pos + 2) == Some(b"\r\n") {
            self.pos += 2;
        } else {
            self.pos = self.next();
        }
        self.line += 1;
        self.column = 0;
    }

    fn at_document_marker(&self) -> bool {
        let marker = self.text.get(self.pos..self.pos + 3);
        matches!(marker, Some(b"---" | b"...")) && self.column == 0 && self.is_blankz(self.pos + 3)
    }

    // Between tokens, simple keys and block indentation.

    /// Spaces, comments and line breaks, as libyaml's `scan_to_next_token`:
    /// a tab separates tokens only where no simple key may start.
    fn skip_to_next_token(&mut self) {
        loop {
            if self.column == 0 && self.text[self.pos..].starts_with(BOM) {
                self.pos += BOM.len();
                self.column += 1;
            }
            while self.byte() == b' '
                || (self.byte() == b'\t' && (self.flow > 0 || !self.key_allowed))
            {
                self.advance();
            }
            if self.byte() == b'#' {
                while !self.is_breakz(self.pos) {
                    self.advance();
                }
            }
            if !self.is_break(self.pos) {
                return;
            }
            self.skip_line();
            if self.flow == 0 {
                self.key_allowed = true;
            }
        }
    }

    /// A simple key must end on its line and within 1024 bytes.
    fn forget_stale_key(&mut self) {
        if let Some(key) = self.block_key
            && (key.line < self.line || key.pos + 1024 < self.pos)
        {
            self.block_key = None;
        }
    }

    fn save_key(&mut self) {
        if self.flow == 0 && self.key_allowed {
            self.block_key = Some(Mark {
                line: self.line,
                pos: self.pos,
                column: self.column,
            });
        }
    }

    fn remove_key(&mut self) {
        if self.flow == 0 {
            self.block_key = None;
        }
    }

    fn roll(&mut self, column: usize) {
        let column = column as isize;
        if self.flow == 0 && self.indent < column {
            self.indents.push(self.indent);
            self.indent = column;
        }
    }

    fn unroll(&mut self, column: isize) {
        while self.flow == 0 && self.indent > column {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    // Indicators.

    fn directive(&mut self) {
        self.unroll(-1);
        self.remove_key();
        self.key_allowed = false;
        while !self.is_breakz(self.pos) {
            self.advance();
        }
    }

    fn document_marker(&mut self) {
        self.unroll(-1);
        self.remove_key();
        self.key_allowed = false;
        for _ in 0..3 {
            self.advance();
        }
    }

    fn open_flow(&mut self) -> Result<(), String> {
        self.save_key();
        self.flow += 1;
        if self.flow > MAX_NESTING {
            return Err(format!(
                "nests deeper than {MAX_NESTING} levels of [ ] and {{ }} (line {})",
                self.line + 1
            ));
        }
        self.key_allowed = true;
        self.advance();
        Ok(())
    }

    fn close_flow(&mut self) {
        self.remove_key();
        self.flow = self.flow.saturating_sub(1);
        self.key_allowed = false;
        self.advance();
    }

    /// A one-character indicator after which a simple key may start or not.
    fn indicator(&mut self, key_allowed: bool) {
        self.remove_key();
        self.key_allowed = key_allowed;
        self.advance();
    }

    fn block_entry(&mut self) {
        self.roll(self.column);
        self.indicator(true);
    }

    fn explicit_key(&mut self) {
        self.roll(self.column);
        self.indicator(self.flow == 0);
    }

    /// A `:` opens a block mapping at its key's column (or its own).
    fn value(&mut self) {
        if self.flow > 0 {
            self.key_allowed = false;
        } else if let Some(key) = self.block_key.take() {
            self.roll(key.column);
            self.key_allowed = false;
        } else {
            self.roll(self.column);
            self.key_allowed = true;
        }
        self.advance();
    }

    /// `&name` or `*name`: refused wherever libyaml would read one.
    fn anchor(&mut self) -> Result<(), String> {
        let (line, alias) = (self.line + 1, self.byte() == b'*');
        self.save_key();
        self.key_allowed = false;
        self.advance();
        let start = self.pos;
        while is_anchor_byte(self.byte()) {
            self.advance();
        }
        let name = String::from_utf8_lossy(&self.text[start..self.pos]);
        let ends = self.is_blankz(self.pos) || b"?:,]}%@`".contains(&self.byte());
        if name.is_empty() || !ends {
            // libyaml stops on this; nothing after it is read.
            return Ok(());
        }
        let shown: String = name.chars().take(SHOWN_NAME).collect();
        let what = if alias {
            format!("uses the alias `*{shown}`")
        } else {
            format!("sets the anchor `&{shown}`")
        };
        let why = match &mut self.aliases {
            Aliases::Refused => "YAML anchors and aliases are not accepted, as an alias repeats \
                 its anchor's whole value and a few lines of them can stand for millions of \
                 values; write each value out where it is used"
                .to_string(),
            Aliases::Bounded { used } if alias => {
                *used += 1;
                if *used <= MAX_ALIASES {
                    return Ok(());
                }
                format!(
                    "more than {MAX_ALIASES} aliases are not accepted, as each repeats its \
                     anchor's whole value"
                )
            }
            Aliases::Bounded { used: 0 } => return Ok(()),
            Aliases::Bounded { .. } => "an anchor after an alias is not accepted, as an \
                 anchored value holding aliases, repeated, can stand for millions of values; \
                 set every anchor before the first alias"
                .to_string(),
        };
        Err(format!("{what} (line {line}): {why}"))
    }

    /// `!tag`, `!handle!suffix` or `!<verbatim>`: its characters are those of a URI.
    fn tag(&mut self) {
        self.save_key();
        self.key_allowed = false;
        let verbatim = self.byte_at(self.pos + 1) == b'<';
        self.advance();
        if verbatim {
            self.advance();
        }
        while is_uri_byte(self.byte(), verbatim) {
            self.advance();
        }
        if verbatim && self.byte() == b'>' {
            self.advance();
        }
    }

    // Scalars.

    /// Whether `c` starts a plain scalar (libyaml's test, word for word).
    fn starts_plain(&self, c: u8) -> bool {
        let next = self.next();
        let indicator = b"-?:,[]{}#&*!|>'\"%@`".contains(&c) || self.is_blankz(self.pos);
        !indicator
            || (c == b'-' && !self.is_blank(next))
            || (self.flow == 0 && matches!(c, b'?' | b':') && !self.is_blankz(next))
    }

    /// A plain scalar: it goes on over line breaks while the next line is
    /// indented past the block it is in (in flow context, always), and ends
    /// at `: `, a comment, or (in flow context) `,` and brackets.
    fn plain(&mut self) {
        self.save_key();
        self.key_allowed = false;
        let indent = self.indent + 1;
        let mut over_lines = false;
        loop {
            if self.at_document_marker() || self.byte() == b'#' {
                break;
            }
            if !self.plain_words() {
                break;
            }
            if !self.is_blank(self.pos) && !self.is_break(self.pos) {
                break;
            }
            while self.is_blank(self.pos) || self.is_break(self.pos) {
                if self.is_break(self.pos) {
                    self.skip_line();
                    over_lines = true;
                } else {
                    self.advance();
                }
            }
            if self.flow == 0 && (self.column as isize) < indent {
                break;
            }
        }
        if over_lines {
            self.key_allowed = true;
        }
    }

    /// The characters of a plain scalar up to a blank; false where libyaml
    /// stops on an error (`a:,` in flow context).
    fn plain_words(&mut self) -> bool {
        while !self.is_blankz(self.pos) {
            let (c, after) = (self.byte(), self.byte_at(self.next()));
            if self.flow > 0 && c == b':' && b",?[]{}".contains(&after) {
                return false;
            }
            let ends_value = c == b':' && self.is_blankz(self.next());
            if ends_value || (self.flow > 0 && b",[]{}".contains(&c)) {
                break;
            }
            self.advance();
        }
        true
    }

    /// A single- or double-quoted scalar, to its closing quote.
    fn quoted(&mut self, quote: u8) {
        self.save_key();
        self.key_allowed = false;
        self.advance();
        loop {
            // libyaml stops at a document marker or the end inside quotes.
            if self.at_document_marker() || self.is_end(self.pos) {
                return;
            }
            if self.is_break(self.pos) {
                self.skip_line();
                continue;
            }
            let c = self.byte();
            if quote == b'\'' && c == b'\'' && self.byte_at(self.pos + 1) == b'\'' {
                self.advance();
            } else if c == quote {
                self.advance();
                return;
            } else if quote == b'"' && c == b'\\' {
                self.advance();
                if self.is_break(self.pos) {
                    self.skip_line();
                    continue;
                }
            }
            self.advance();
        }
    }

    /// A literal (`|`) or folded (`>`) scalar: its header, then every line
    /// indented at least as far as its first (or as its indicator says).
    fn block_scalar(&mut self) {
        self.remove_key();
        self.key_allowed = true;
        self.advance();
        let Some(increment) = self.block_header() else {
            return;
        };
        let mut indent = match increment {
            0 => 0,
            n if self.indent >= 0 => self.indent + n,
            n => n,
        };
        if !self.block_breaks(&mut indent) {
            return;
        }
        while self.column as isize == indent && !self.is_end(self.pos) {
            while !self.is_breakz(self.pos) {
                self.advance();
            }
            if self.is_break(self.pos) {
                self.skip_line();
            }
            if !self.block_breaks(&mut indent) {
                return;
            }
        }
    }

    /// The chomping and indentation indicators, a comment and the line break;
    /// the indentation indicator (0 for none), or None where libyaml stops.
    fn block_header(&mut self) -> Option<isize> {
        let mut increment = 0;
        let mut chomping = false;
        for _ in 0..2 {
            match self.byte() {
                b'+' | b'-' if !chomping => chomping = true,
                b'0' => return None,
                c @ b'1'..=b'9' if increment == 0 => increment = isize::from(c - b'0'),
                _ => break,
            }
            self.advance();
        }
        while self.is_blank(self.pos) {
            self.advance();
        }
        if self.byte() == b'#' {
            while !self.is_breakz(self.pos) {
                self.advance();
            }
        }
        if !self.is_breakz(self.pos) {
            return None;
        }
        if self.is_break(self.pos) {
            self.skip_line();
        }
        Some(increment)
    }

    /// Blank lines and the indentation of the next line of a block scalar,
    /// which sets `indent` when it is still 0 (libyaml's
    /// `scan_block_scalar_breaks`); false where libyaml stops on a tab.
    fn block_breaks(&mut self, indent: &mut isize) -> bool {
        let mut deepest = 0;
        loop {
            let short = |s: &Self, indent: isize| indent == 0 || (s.column as isize) < indent;
            while short(self, *indent) && self.byte() == b' ' {
                self.advance();
            }
            deepest = deepest.max(self.column as isize);
            if short(self, *indent) && self.byte() == b'\t' {
                return false;
            }
            if !self.is_break(self.pos) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = deepest.max(self.indent + 1).max(1);
        }
        true
    }
}

/// The bytes a UTF-8 character starting with `lead` takes.
fn width(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// The characters of an anchor's name to libyaml.
fn is_anchor_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// The characters of a tag; a verbatim tag (`!<...>`) may also hold `,[]`.
fn is_uri_byte(c: u8, verbatim: bool) -> bool {
    is_anchor_byte(c) || b";/?:@&=+$.%!~*'()".contains(&c) || (verbatim && b",[]".contains(&c))
}

#[cfg(test)]
mod tests;
