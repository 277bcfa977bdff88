//! What an HTML message shows against what it says. A client displays a
//! message's `formatted_body` and the bot runs its plain `body`; the two can be
//! made to differ on purpose (harmless-looking HTML over a body that reads
//! `!approve #12`, forwarded by a reviewer, would approve as them). A command
//! runs only where both say the same.
//!
//! The bot does not try to render HTML as every client would: it fails closed.
//! HTML with anything but plain formatting (a tag a client may hide, style,
//! collapse or reorder, any attribute but a link's and a code block's
//! language, a comment) differs, whatever its text. Within plain formatting
//! the command word, the request id and every argument must read the same
//! word for word; only the free-text comment of `changes` and `reject` is
//! compared by its letters and digits, so that Element's Markdown (lists,
//! quotes, links, headings, code fences) in a comment still runs.
//!
//! Pure string work, linear in the input, no panics on hostile HTML: unclosed
//! tags, `<` and `>` inside quoted attributes, entities, nesting.

use super::command::{self, Command};

/// Tags that show all of their text, in order, as text: emphasis, code,
/// links, paragraphs, lists, quotes and headings. Not among them: tags whose
/// content a client hides or does not show as text (`script`, `style`,
/// `details`, `img`, comments…), tags that restyle it (`font`, `sub`), and
/// tables, whose stray text an HTML parser moves before the table.
const PLAIN: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "s",
    "del",
    "strike",
    "code",
    "span",
    "a",
    "p",
    "div",
    "br",
    "hr",
    "pre",
    "ul",
    "ol",
    "li",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
];

/// Plain tags that end a line or a block: the words on either side are not glued.
const BREAKING: &[&str] = &[
    "br",
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
];

/// Tags without content: never closed.
const VOID: &[&str] = &["br", "hr"];

/// How deep tags may nest inside a reply's fallback (Element's is two deep).
const MAX_FALLBACK_DEPTH: usize = 64;

/// How the message was sent: only a reply (an event with
/// `m.relates_to.m.in_reply_to`) may start with a quoted fallback
/// (`<mx-reply>`), which clients hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    AsReply,
    Alone,
}

/// The text an HTML `formatted_body` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Tags stripped, entities decoded, whitespace collapsed; a reply's
    /// fallback left out. Text inside tags that are not plain formatting is
    /// kept (another client may show it: a link code there is used up too).
    pub text: String,
    /// It held a reply's fallback (`<mx-reply>`), whose plain counterpart is
    /// the body's leading `> ` lines.
    pub had_reply: bool,
    /// Every tag was plain formatting (see [`PLAIN`]), and a fallback, if any,
    /// was one well-formed `<mx-reply>` at the very start of a reply. When
    /// not, what a client shows cannot be told, and the message differs.
    pub plain_formatting: bool,
}

/// Whether a message's plain `body` runs something other than its HTML shows.
/// `names` are the bot's, as [`command::bot_names`] gives them: the body is
/// read as the bot reads it. A body that runs nothing (no command, or one
/// the bot cannot read and answers with help) never differs.
pub fn differs(body: &str, shown: &Shown, names: &[String]) -> bool {
    let said = command::addressed(body, names).text;
    let comment_at = match command::parse(said) {
        Err(_) | Ok(Command::Help) => return false,
        Ok(Command::RequestChanges { .. } | Command::Reject { .. }) => comment_start(said),
        Ok(_) => None,
    };
    if !shown.plain_formatting {
        return true;
    }
    // The part of the body a client shows: a reply's quoted fallback is left
    // out on both sides. `said` is a suffix of `body`, and of `plain`.
    let plain = match shown.had_reply {
        true => command::after_reply_quote(body),
        false => body,
    };
    let said_at = plain.len() - said.len();
    let (head, comment) = match comment_at {
        Some(at) => plain.split_at(said_at + at),
        None => (plain, ""),
    };
    let head = markdown_words(head, Part::Command);
    let shown_words: Vec<&str> = shown.text.split_whitespace().collect();
    if shown_words.len() < head.len() || shown_words[..head.len()] != head[..] {
        return true;
    }
    let shown_comment = letters_and_digits(&shown_words[head.len()..].join(" "));
    letters_and_digits(&comment_text(comment)) != shown_comment
}

/// A comment as a client shows its Markdown. Its first line goes on from the
/// command's, so a `1.` there is text, not a list item.
fn comment_text(comment: &str) -> String {
    let (first, rest) = comment.split_once('\n').unwrap_or((comment, ""));
    let mut words: Vec<&str> = first.split_whitespace().collect();
    words.extend(markdown_words(rest, Part::Comment));
    without_link_targets(&words.join(" "))
}

/// Where the free-text comment of `changes #12 …` or `reject #12 …` starts in
/// `said` (in bytes), as [`command::parse`] splits it: after the command word
/// and the request id.
fn comment_start(said: &str) -> Option<usize> {
    let suffix_at = |suffix: &str| said.len() - suffix.len();
    let word = said.trim_start().trim_start_matches('!').trim_start();
    let after_word = word.find(char::is_whitespace).map(|end| &word[end..])?;
    let id = after_word.trim_start();
    let after_id = id.find(char::is_whitespace).map_or("", |end| &id[end..]);
    Some(suffix_at(after_id))
}

/// Which part of a message Markdown is read in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Up to the command's arguments: only marks that stand for no characters
    /// the bot reads (`>`, a bullet, `#`, a bare code fence, `---`) are set
    /// aside. A list item's number and a fence's language tag are characters
    /// a client does not show as text (a link code's digit could hide there):
    /// kept, they differ.
    Command,
    /// A comment: compared loosely, every mark set aside.
    Comment,
}

/// The words of Markdown `text` as a client shows them: the marks that open a
/// line (a quote's `>`, a list item's `-` or `1.`, a heading's `#`) and the
/// lines of marks alone (a code fence with its language tag, a thematic break,
/// a heading's underline) set aside, as `part` allows.
fn markdown_words(text: &str, part: Part) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line_content(line, part))
        .flat_map(str::split_whitespace)
        .collect()
}

/// A line without the block marks that open it; `None` for a line of marks.
fn line_content(line: &str, part: Part) -> Option<&str> {
    let mut rest = line.trim_start();
    loop {
        if is_fence(rest, part) || is_thematic_break(rest) {
            return None;
        }
        let inner = match rest.strip_prefix('>') {
            Some(quoted) => quoted,
            None => match list_marker(rest, part).or_else(|| heading_marker(rest)) {
                Some(item) => item,
                None => return Some(rest),
            },
        };
        rest = inner.trim_start();
    }
}

/// A code fence's line: in a command, a bare one only.
fn is_fence(line: &str, part: Part) -> bool {
    let Some(mark) = ["```", "~~~"].into_iter().find(|m| line.starts_with(m)) else {
        return false;
    };
    let bare = line.trim_end().chars().all(|c| mark.starts_with(c));
    part == Part::Comment || bare
}

/// `---`, `***`, `___` (spaces between allowed) or a heading's `===`.
fn is_thematic_break(line: &str) -> bool {
    let mut marks = line.chars().filter(|c| !c.is_whitespace());
    match marks.next() {
        Some(first @ ('-' | '*' | '_' | '=')) => {
            let rest: Vec<char> = marks.collect();
            rest.len() >= 2 && rest.iter().all(|c| *c == first)
        }
        _ => false,
    }
}

/// The line after a list item's marker (`- `, `* `, `+ `, and in a comment
/// `1. `, `1) `).
fn list_marker(line: &str, part: Part) -> Option<&str> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let marker_len = match line.as_bytes().first()? {
        b'-' | b'*' | b'+' => 1,
        _ if part == Part::Comment
            && (1..=9).contains(&digits)
            && matches!(line.as_bytes().get(digits), Some(b'.' | b')')) =>
        {
            digits + 1
        }
        _ => return None,
    };
    let rest = &line[marker_len..];
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some(rest)
}

/// The line after an ATX heading's `#` to `######`.
fn heading_marker(line: &str) -> Option<&str> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    let rest = &line[level..];
    let heading =
        (1..=6).contains(&level) && (rest.is_empty() || rest.starts_with(char::is_whitespace));
    heading.then_some(rest)
}

/// Markdown links' targets left out: `[the guide](https://…)` shows as
/// `the guide`. A target that is not closed is no link, and stays. Quadratic
/// at worst, on a comment of a command (at most 4000 bytes).
fn without_link_targets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open_brackets = 0usize;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        out.push(c);
        rest = &rest[c.len_utf8()..];
        match c {
            '[' => open_brackets += 1,
            ']' if open_brackets > 0 && rest.starts_with('(') => {
                open_brackets -= 1;
                if let Some(end) = closing_parenthesis(rest) {
                    rest = &rest[end + 1..];
                }
            }
            ']' => open_brackets = open_brackets.saturating_sub(1),
            _ => {}
        }
    }
    out
}

/// Where the `)` that closes the `(` `text` starts with is, nested
/// parentheses counted.
fn closing_parenthesis(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return Some(at),
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn letters_and_digits(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).collect()
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where a reply's fallback stands in the scan.
enum Fallback {
    /// Nothing but whitespace read yet, in a reply: one may start here.
    MayStart,
    /// Inside it, with the tags opened there and not closed yet.
    Inside(Vec<String>),
    /// Past it, or none may come.
    Over,
}

/// The text `html` shows, as a client displays it, and whether its markup is
/// plain formatting only (see [`Shown::plain_formatting`]).
pub fn visible_text(html: &str, sent: Sent) -> Shown {
    let mut scan = Scan {
        out: String::new(),
        plain: true,
        had_reply: false,
        fallback: match sent {
            Sent::AsReply => Fallback::MayStart,
            Sent::Alone => Fallback::Over,
        },
    };
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        let (text, from) = rest.split_at(at);
        scan.text(text);
        match tag_at(from) {
            Some(tag) => {
                scan.tag(&tag);
                rest = &from[tag.len..];
            }
            None => {
                // A `<` that starts no tag is text (`a < b`).
                scan.text("<");
                rest = &from[1..];
            }
        }
    }
    scan.text(rest);
    if matches!(scan.fallback, Fallback::Inside(_)) {
        scan.plain = false;
    }
    Shown {
        text: collapse(&scan.out),
        had_reply: scan.had_reply,
        plain_formatting: scan.plain,
    }
}

struct Scan {
    out: String,
    plain: bool,
    had_reply: bool,
    fallback: Fallback,
}

impl Scan {
    fn text(&mut self, text: &str) {
        match self.fallback {
            Fallback::Inside(_) => {}
            Fallback::MayStart if text.trim().is_empty() => {}
            Fallback::MayStart | Fallback::Over => {
                self.fallback = Fallback::Over;
                push_decoded(&mut self.out, text);
            }
        }
    }

    fn tag(&mut self, tag: &Tag<'_>) {
        if tag.name == "mx-reply" {
            self.reply_fallback(tag);
            return;
        }
        let plain = tag.terminated && is_plain(tag);
        self.plain &= plain;
        match &mut self.fallback {
            Fallback::Inside(open) => self.plain &= plain && nest(open, tag),
            fallback => {
                *fallback = Fallback::Over;
                if BREAKING.contains(&tag.name.as_str()) {
                    self.out.push(' ');
                }
            }
        }
    }

    /// `<mx-reply>` at the very start of a reply, and its one `</mx-reply>`
    /// once every tag opened inside is closed: a `</mx-reply>` with a `<p>`
    /// still open is ignored by an HTML parser, and the text after it hidden
    /// with the fallback.
    fn reply_fallback(&mut self, tag: &Tag<'_>) {
        let well_formed = tag.terminated && tag.attributes.is_empty();
        match (&self.fallback, tag.closing) {
            (Fallback::MayStart, false) if well_formed => {
                self.fallback = Fallback::Inside(Vec::new());
                self.had_reply = true;
            }
            (Fallback::Inside(open), true) if well_formed && open.is_empty() => {
                self.fallback = Fallback::Over;
            }
            _ => {
                self.plain = false;
                self.fallback = Fallback::Over;
            }
        }
    }
}

/// Whether `tag` is plain formatting: a [`PLAIN`] tag with no attribute but
/// the few that change nothing of its text; an end tag with none.
fn is_plain(tag: &Tag<'_>) -> bool {
    if !PLAIN.contains(&tag.name.as_str()) || (tag.closing && !tag.attributes.is_empty()) {
        return false;
    }
    tag.attributes
        .iter()
        .all(|(name, value)| match (tag.name.as_str(), name.as_str()) {
            ("a", "href" | "target" | "rel" | "name") => true,
            ("ol", "start") => value.bytes().all(|b| b.is_ascii_digit()),
            ("code", "class") => value
                .split_ascii_whitespace()
                .all(|class| class.starts_with("language-")),
            // `data-mx-spoiler`, `data-mx-color`, `style`, `hidden`, `dir`…
            _ => false,
        })
}

/// Follows the nesting inside a fallback; `false` for an end tag that closes
/// another than the last one opened, or nesting past [`MAX_FALLBACK_DEPTH`].
fn nest(open: &mut Vec<String>, tag: &Tag<'_>) -> bool {
    if VOID.contains(&tag.name.as_str()) {
        return true;
    }
    if tag.closing {
        return open.pop().is_some_and(|last| last == tag.name);
    }
    open.push(tag.name.clone());
    open.len() <= MAX_FALLBACK_DEPTH
}

/// A tag at the start of `from` (which starts with `<`).
struct Tag<'a> {
    /// Lowercased; empty for a comment or a declaration (which are never plain).
    name: String,
    closing: bool,
    /// Lowercased names, with values as written.
    attributes: Vec<(String, &'a str)>,
    /// Its `>` was found (a tag cut off by the end of the input shows nothing
    /// in one client and may in another).
    terminated: bool,
    /// Bytes up to and with its `>` (the rest of the input when unclosed).
    len: usize,
}

/// The tag `from` starts with; `None` when its `<` starts none, as HTML reads
/// it (a letter, `/`, `!` or `?` must follow).
fn tag_at(from: &str) -> Option<Tag<'_>> {
    let bytes = from.as_bytes();
    let unnamed = |end: Option<usize>| {
        Some(Tag {
            name: String::new(),
            closing: false,
            attributes: Vec::new(),
            terminated: end.is_some(),
            len: end.unwrap_or(from.len()),
        })
    };
    match bytes.get(1)? {
        b'!' if from.starts_with("<!--") => unnamed(from[4..].find("-->").map(|end| 4 + end + 3)),
        b'!' | b'?' => unnamed(from.find('>').map(|end| end + 1)),
        b'/' => Some(named(from, 2, true)),
        b if b.is_ascii_alphabetic() => Some(named(from, 1, false)),
        _ => None,
    }
}

/// A start or end tag whose name begins at `start`, with its attributes;
/// values in quotes may hold `>` and `<` without ending it.
fn named(from: &str, start: usize, closing: bool) -> Tag<'_> {
    let bytes = from.as_bytes();
    let name_end = bytes[start..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
        .map_or(bytes.len(), |n| start + n);
    let mut tag = Tag {
        name: from[start..name_end].to_ascii_lowercase(),
        closing,
        attributes: Vec::new(),
        terminated: false,
        len: bytes.len(),
    };
    let mut i = name_end;
    // Every index stops at an ASCII byte or the end: slices fall between characters.
    while i < bytes.len() {
        match bytes[i] {
            b'>' => {
                tag.terminated = true;
                tag.len = i + 1;
                break;
            }
            b if b.is_ascii_whitespace() || b == b'/' => i += 1,
            _ => {
                let (attribute, end) = attribute_at(from, i);
                tag.attributes.push(attribute);
                i = end;
            }
        }
    }
    tag
}

/// The attribute starting at `at` (its name, lowercased, and its value), and
/// where it ends.
fn attribute_at(from: &str, at: usize) -> ((String, &str), usize) {
    let bytes = from.as_bytes();
    let ends_name = |b: u8| b.is_ascii_whitespace() || matches!(b, b'/' | b'>' | b'=');
    // A name may start with `=`, as HTML reads it.
    let mut i = at + usize::from(bytes[at] == b'=');
    while i < bytes.len() && !ends_name(bytes[i]) {
        i += 1;
    }
    let name = from[at..i].to_ascii_lowercase();
    let mut j = i;
    while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
        j += 1;
    }
    if bytes.get(j) != Some(&b'=') {
        return ((name, ""), i);
    }
    j += 1;
    while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
        j += 1;
    }
    match bytes.get(j) {
        Some(&quote @ (b'"' | b'\'')) => match bytes[j + 1..].iter().position(|b| *b == quote) {
            Some(n) => ((name, &from[j + 1..j + 1 + n]), j + 1 + n + 1),
            None => ((name, &from[j + 1..]), bytes.len()),
        },
        _ => {
            let end = bytes[j..]
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'>')
                .map_or(bytes.len(), |n| j + n);
            ((name, &from[j..end]), end)
        }
    }
}

/// Appends `text` with its character references decoded; one it does not know
/// stays as written (and the texts then differ: the safe side).
fn push_decoded(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let from = &rest[at..];
        // The longest reference read is `&#x10FFFF;` (10 bytes). Bytes, not
        // a slice of the text: the 11th byte may fall inside a character.
        let head = &from.as_bytes()[1..from.len().min(11)];
        let decoded = head
            .iter()
            .position(|b| *b == b';')
            .and_then(|semi| Some((entity(&from[1..semi + 1])?, semi + 2)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &from[len..];
            }
            None => {
                out.push('&');
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
}

/// The character a reference's name (between `&` and `;`) stands for.
fn entity(name: &str) -> Option<char> {
    let number = |digits: &str, radix| {
        let code = u32::from_str_radix(digits, radix).ok()?;
        // As browsers do: a reference to no character shows U+FFFD.
        Some(
            char::from_u32(code)
                .filter(|c| *c != '\0')
                .unwrap_or('\u{FFFD}'),
        )
    };
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{A0}'),
        _ => match name.strip_prefix('#')? {
            hex if hex.starts_with(['x', 'X'])
                && hex.len() > 1
                && hex[1..].bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                number(&hex[1..], 16)
            }
            decimal if !decimal.is_empty() && decimal.bytes().all(|b| b.is_ascii_digit()) => {
                number(decimal, 10)
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(html: &str) -> String {
        visible_text(html, Sent::Alone).text
    }

    fn plain(html: &str) -> bool {
        visible_text(html, Sent::Alone).plain_formatting
    }

    fn names() -> Vec<String> {
        command::bot_names("@slipway:hs", Some("Slipway"))
    }

    /// Whether `body` under `html` runs (a message sent alone, not a reply).
    fn same(body: &str, html: &str) -> bool {
        !differs(body, &visible_text(html, Sent::Alone), &names())
    }

    fn same_reply(body: &str, html: &str) -> bool {
        !differs(body, &visible_text(html, Sent::AsReply), &names())
    }

    #[test]
    fn tags_are_stripped_and_blocks_keep_words_apart() {
        assert_eq!(
            shown("<p>nice <strong>work</strong></p><p>team</p>"),
            "nice work team"
        );
        assert_eq!(shown("a<br>b<br/>c<hr />d"), "a b c d");
        assert_eq!(shown("<b><i><u>deep</u></i></b>ly"), "deeply");
        assert_eq!(shown("<ul><li>one</li><li>two</li></ul>"), "one two");
        assert_eq!(shown("a < b and c<3"), "a < b and c<3");
        assert!(plain("<p>nice <strong>work</strong></p>a<br/>b < c"));
        // A comment, and a tag cut off by the end, are not plain formatting.
        assert_eq!(shown("<!-- !approve #12 -->shown"), "shown");
        assert!(!plain("<!-- !approve #12 -->shown"));
        assert_eq!(shown("unclosed <b class=\"x"), "unclosed");
        assert!(!plain("unclosed <b"));
    }

    #[test]
    fn quoted_attributes_may_hold_angle_brackets() {
        let link = r#"<a href="https://x" title="<b>!approve #12</b>">link</a>"#;
        assert_eq!(shown(link), "link");
        assert!(!plain(link), "a title is no attribute of plain formatting");
        assert_eq!(shown("<a href='a>b'>text</a>"), "text");
        assert!(plain(
            "<a href='a>b' target=_blank rel=\"noopener\">text</a>"
        ));
        // A quote not after `=` quotes nothing: the tag ends at its `>`.
        assert_eq!(shown("<a b\"c>text</a>\"d"), "text\"d");
        assert_eq!(shown("<a =x é=\"y\" z=>text</a>"), "text");
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            shown("&amp; &lt;b&gt; &quot;q&quot; &#39;s&#39; &#33;approve &#x23;12&nbsp;x"),
            "& <b> \"q\" 's' !approve #12 x"
        );
        assert_eq!(
            shown("&bogus; &#; &#x; &#99999999999; &#0; &"),
            "&bogus; &#; &#x; &#99999999999; \u{FFFD} &"
        );
        assert_eq!(shown("&#x110000;"), "\u{FFFD}");
        assert_eq!(shown("&#x+21;&amp;aéééé"), "&#x+21;&aéééé");
    }

    #[test]
    fn a_reply_s_fallback_is_not_shown() {
        let fallback = "<mx-reply><blockquote><a href=\"https://matrix.to/#/!r:hs/$e\">In reply \
                        to</a> <a href=\"https://matrix.to/#/@bob:hs\">@bob:hs</a><br>!approve #3\
                        </blockquote></mx-reply>mine";
        assert_eq!(
            visible_text(fallback, Sent::AsReply),
            Shown {
                text: "mine".into(),
                had_reply: true,
                plain_formatting: true,
            }
        );
        let leading_space = visible_text(&format!("\n {fallback}"), Sent::AsReply);
        assert!(leading_space.plain_formatting && leading_space.text == "mine");
    }

    #[test]
    fn a_fallback_is_plain_only_once_well_formed_at_the_start_of_a_reply() {
        let reply = |html: &str| visible_text(html, Sent::AsReply).plain_formatting;
        assert!(reply("<mx-reply><blockquote>q</blockquote></mx-reply>mine"));
        // Not a reply: a client may show it, or hide it.
        assert!(!plain(
            "<mx-reply><blockquote>q</blockquote></mx-reply>mine"
        ));
        for hostile in [
            "mine<mx-reply>q</mx-reply>",
            "<b>x</b><mx-reply>q</mx-reply>mine",
            "<mx-reply>q</mx-reply>mine<mx-reply>r</mx-reply>",
            "<mx-reply>q</mx-reply>mine</mx-reply>",
            "<mx-reply><mx-reply>a</mx-reply>b</mx-reply>c",
            "<mx-reply class=x>q</mx-reply>mine",
            "<mx-reply>unclosed",
            // An HTML parser ignores `</mx-reply>` while a `<p>` is open: the
            // text after it is hidden with the fallback.
            "<mx-reply><p>q</mx-reply>!approve #12",
            "<mx-reply><blockquote>q</p></blockquote></mx-reply>mine",
            "<mx-reply><script></mx-reply>!approve #12</script></mx-reply>ok",
            "<mx-reply><span data-mx-spoiler>q</span></mx-reply>mine",
        ] {
            assert!(!reply(hostile), "{hostile}");
        }
        let deep = format!("<mx-reply>{}</mx-reply>x", "<b>".repeat(100));
        assert!(!reply(&deep));
    }

    #[test]
    fn markup_a_client_may_hide_style_or_reorder_is_not_plain() {
        for hostile in [
            "<script>!approve #12</script>ok",
            "<style>x</style>ok",
            "</script>closing first<b>ok</b>",
            "<details><summary>ok</summary>!approve #12</details>",
            "<span data-mx-spoiler>!approve #12</span>",
            "<span data-mx-color=\"#fff\">!approve #12</span>",
            "<font color=white>!approve #12</font>",
            "<p style=\"display:none\">!approve #12</p>",
            "<p hidden>!approve #12</p>",
            "<span dir=rtl>21# evorppa!</span>",
            "<img src=\"mxc://hs/nice-work\" alt=\"nice work\">",
            "<table><tr><td>!approve</td></tr>#12</table>",
            "<textarea>!approve #12</textarea>",
            "<code class=\"hidden\">!approve #12</code>",
            "<ol start=\"-1\"><li>x</li></ol>",
            "</b class=x>",
            "</ x>",
            "<?php ?>",
        ] {
            assert!(!plain(hostile), "{hostile}");
        }
        assert!(plain(
            "<pre><code class=\"language-yaml\">cpu: 2</code></pre><ol start=\"3\"><li>x</li></ol>"
        ));
    }

    /// The review's bypass: `</style>` closed a `<script>` for a counter of
    /// hidden tags, and `!reject #12` read as shown while Element showed only
    /// "nice work".
    #[test]
    fn a_command_hidden_in_raw_text_does_not_run() {
        let html = "<script></style>!reject #12 </script>nice work";
        assert!(!same("!reject #12 nice work", html));
        assert!(!same(
            "!reject #12 nice work",
            "<style><script>!reject #12 </style>nice work"
        ));
    }

    #[test]
    fn the_same_words_formatted_are_not_a_difference() {
        assert!(same(
            "!changes #12 set `cpu_limit` to **4**",
            "!changes #12 set <code>cpu_limit</code> to <strong>4</strong>"
        ));
        assert!(same("!approve #12", "<p>!approve   #12</p>\n"));
        assert!(same(
            "!request t note=\"a < b\"",
            "!request t note=&quot;a &lt; b&quot;"
        ));
        assert!(same(
            "slipway: approve #12",
            "<a href=\"https://matrix.to/#/@slipway:hs\">slipway</a>: approve #12"
        ));
        assert!(same_reply(
            "> <@bob:hs> Request #3 waits for review\n> more\n\n!approve #3",
            "<mx-reply><blockquote>Request #3 waits for review<br>more</blockquote></mx-reply>!approve #3"
        ));
        // A body that runs nothing does not differ: it is answered with help.
        assert!(same("hello **there**", "hello <script>x</script>"));
        assert!(same("!approve **#12**", "!approve <b>#12</b>"));
    }

    /// Element's Markdown in a comment: the comment's words, not its marks.
    #[test]
    fn markdown_in_a_comment_runs() {
        for (body, html) in [
            (
                "!changes #12 please:\n- more cpu\n- less memory",
                "<p>!changes #12 please:</p>\n<ul>\n<li>more cpu</li>\n<li>less memory</li>\n</ul>\n",
            ),
            (
                "!changes #12 two things:\n1. more cpu\n2) less memory",
                "<p>!changes #12 two things:</p>\n<ol>\n<li>more cpu</li>\n<li>less memory</li>\n</ol>\n",
            ),
            (
                "!changes #12 1. more cpu",
                "<p>!changes #12 1. more cpu</p>",
            ),
            (
                "> the notice said 4 cores\n\n!changes #12 make it 2",
                "<blockquote>\n<p>the notice said 4 cores</p>\n</blockquote>\n<p>!changes #12 make it 2</p>\n",
            ),
            (
                "!reject #12 as the guide says:\n> one namespace per team\n>more is waste",
                "<p>!reject #12 as the guide says:</p>\n<blockquote>\n<p>one namespace per team\nmore is waste</p>\n</blockquote>\n",
            ),
            (
                "!reject #12 see [the guide](https://wiki.example/ns_(rules))",
                "<p>!reject #12 see <a href=\"https://wiki.example/ns_(rules)\">the guide</a></p>",
            ),
            (
                "!changes #12 name it web\\_api, not \\*api\\*",
                "<p>!changes #12 name it web_api, not *api*</p>",
            ),
            (
                "!changes #12 use:\n```yaml\ncpu_limit: 2\n```",
                "<p>!changes #12 use:</p>\n<pre><code class=\"language-yaml\">cpu_limit: 2\n</code></pre>\n",
            ),
            (
                "!reject #12\n# Why\nno budget\n## Next\nask again in May",
                "<p>!reject #12</p>\n<h1>Why</h1>\n<p>no budget</p>\n<h2>Next</h2>\n<p>ask again in May</p>\n",
            ),
            (
                "!reject #12 no budget\n\n---\n\nask again\n***",
                "<p>!reject #12 no budget</p>\n<hr />\n<p>ask again</p>\n<hr />\n",
            ),
        ] {
            assert!(same(body, html), "{body:?} under {html:?}");
        }
    }

    #[test]
    fn a_body_that_says_what_its_html_does_not_show_differs() {
        assert!(!same("!approve #12", "nice work, thanks"));
        assert!(!same("!approve #12", "<span>!approve #1</span><p>2</p>"));
        // Inline tags glue what they split, as a client shows it.
        assert!(same("!approve #12", "<span>!approve #1</span>2"));
        assert!(!same("!changes #1 2cores", "!changes #12 cores"));
        assert!(!same("!approve #12", "<mx-reply>!approve #12</mx-reply>"));
        // A body fallback is set aside only where the HTML has a reply.
        assert!(!same("> !approve #12\n\n!approve #13", "!approve #13"));
        assert!(!same_reply(
            "> q\n\n!approve #13",
            "<mx-reply>q</mx-reply>!approve #1 3"
        ));
    }

    /// The comment is compared loosely; the command word, the request id and
    /// whatever comes before them are not, nor are the arguments of any
    /// other command.
    #[test]
    fn no_other_command_or_request_id_hides_behind_a_comment() {
        for (body, html) in [
            ("!reject #12 too big", "!reject #13 too big"),
            ("!reject #12 too big", "!changes #12 too big"),
            ("!reject #12 too big", "!reject #1 2 too big"),
            ("!reject #12 too big", "!reject <b>#12</b>2 too big"),
            ("!changes #12 fine", "!changes #12 fine, !approve #13"),
            ("!changes #12 do not merge", "!changes #12 do merge"),
            ("!approve #12 r3", "!approve #12 r4"),
            ("!approve #12", "!approve #12 r3"),
            ("!request t name=web_api", "!request t name=webapi"),
            (
                "!request t name=[a](b)",
                "!request t name=<a href=\"b\">a</a>",
            ),
            ("link ABCD-EFGH-JKLM", "link ABCD-EFGH-JKLN"),
            // Characters of the code where a client shows no text: a fence's
            // language tag, a list item's number.
            (
                "link ABCD-EFGH\n```JKLM\n```",
                "<p>link ABCD-EFGH</p><pre><code class=\"language-JKLM\"></code></pre>",
            ),
            (
                "link ABCD-EFGH-JK\n2. M",
                "<p>link ABCD-EFGH-JK</p><ol start=\"2\"><li>M</li></ol>",
            ),
            // A quote before the command: its words are not a comment.
            (
                "> please reject #3 now\n\n!approve #12",
                "<blockquote>please reject #3 now</blockquote>!approve #1 2",
            ),
            ("slipway: reject #12 x", "reject #12 x"),
        ] {
            assert!(!same(body, html), "{body:?} under {html:?}");
        }
    }

    #[test]
    fn huge_and_hostile_input_is_read_in_linear_time() {
        let started = std::time::Instant::now();
        for hostile in [
            "<".repeat(1 << 20),
            "<b>".repeat(1 << 18),
            "<mx-reply>".repeat(1 << 18),
            format!("<mx-reply>{}", "<b>".repeat(1 << 18)),
            "&".repeat(1 << 20),
            "&#x1;".repeat(1 << 18),
            format!("<a title=\"{}", "<".repeat(1 << 20)),
            format!("<a {}", "x=y ".repeat(1 << 18)),
            "<!--".repeat(1 << 18),
            "é<".repeat(1 << 19),
            "<aé=é".repeat(1 << 18),
        ] {
            for sent in [Sent::AsReply, Sent::Alone] {
                let shown = visible_text(&hostile, sent);
                assert!(shown.text.len() <= hostile.len() * 3);
            }
        }
        // A comment is at most what a command may be (4000 bytes).
        let comment = format!("!reject #1 {}", "[a](".repeat(990));
        assert!(!same(&comment, "!reject #1 a"), "a target not closed stays");
        assert!(same(&comment, &comment));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}
