//! What an HTML message shows against what it says. A client displays a
//! message's `formatted_body` and the bot runs its plain `body`; the two can be
//! made to differ on purpose (harmless-looking HTML over a body that reads
//! `!approve #12`, forwarded by a reviewer, would approve as them). A command
//! runs only where both say the same.
//!
//! Pure string work, linear in the input, no panics on hostile HTML: unclosed
//! tags, `<` and `>` inside quoted attributes, entities, nesting.

/// Tags whose content a client does not show: a reply's quoted fallback
/// (`mx-reply`, shown as a preview of the message replied to) and the tags an
/// HTML sanitiser drops together with their content.
const HIDDEN: &[&str] = &[
    "mx-reply", "script", "style", "head", "title", "template", "noscript", "textarea", "option",
];

/// Tags that end a line or a block: the words on either side are not glued.
const BREAKING: &[&str] = &[
    "br",
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "blockquote",
    "pre",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "table",
    "caption",
    "tr",
    "td",
    "th",
    "details",
    "summary",
];

/// The text an HTML `formatted_body` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Tags stripped, entities decoded, whitespace collapsed.
    pub text: String,
    /// It held a reply's fallback (`<mx-reply>`), whose plain counterpart is
    /// the body's leading `> ` lines.
    pub had_reply: bool,
}

/// Whether a message's plain `body` says something other than its HTML shows
/// (once the reply fallback of each, whitespace, and the Markdown marks a
/// client turns into formatting, `*` `_` `` ` `` `~`, are set aside).
pub fn differs(body: &str, shown: &Shown) -> bool {
    let plain = match shown.had_reply {
        true => without_reply_fallback(body),
        false => body.to_string(),
    };
    comparable(&plain) != comparable(&shown.text)
}

/// The body without a reply's fallback: its leading lines quoted with `>`.
fn without_reply_fallback(body: &str) -> String {
    body.lines()
        .skip_while(|line| line.starts_with('>'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Text as compared: Markdown's emphasis and code marks dropped (the body keeps
/// them, the HTML shows them as formatting), whitespace collapsed.
fn comparable(text: &str) -> String {
    let unmarked: String = text
        .chars()
        .filter(|c| !matches!(c, '*' | '_' | '`' | '~'))
        .collect();
    collapse(&unmarked)
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text `html` shows, as a client displays it.
pub fn visible_text(html: &str) -> Shown {
    let mut out = String::new();
    // How deep inside hidden tags the scan is: their text is not shown.
    let mut hidden = 0usize;
    let mut had_reply = false;
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        let (text, from) = rest.split_at(at);
        if hidden == 0 {
            push_decoded(&mut out, text);
        }
        let Some(tag) = tag_at(from) else {
            // A `<` that starts no tag is text (`a < b`).
            if hidden == 0 {
                out.push('<');
            }
            rest = &from[1..];
            continue;
        };
        if HIDDEN.contains(&tag.name.as_str()) {
            had_reply |= tag.name == "mx-reply";
            hidden = match tag.closing {
                true => hidden.saturating_sub(1),
                false => hidden + 1,
            };
        } else if hidden == 0 && BREAKING.contains(&tag.name.as_str()) {
            out.push(' ');
        }
        rest = &from[tag.len..];
    }
    if hidden == 0 {
        push_decoded(&mut out, rest);
    }
    Shown {
        text: collapse(&out),
        had_reply,
    }
}

/// A tag at the start of `from` (which starts with `<`).
struct Tag {
    /// Lowercased; empty for a comment or a declaration.
    name: String,
    closing: bool,
    /// Bytes up to and with its `>` (the rest of the input when unclosed).
    len: usize,
}

/// The tag `from` starts with; `None` when its `<` starts none, as HTML reads
/// it (a letter, `/`, `!` or `?` must follow).
fn tag_at(from: &str) -> Option<Tag> {
    let bytes = from.as_bytes();
    let unnamed = |len| {
        Some(Tag {
            name: String::new(),
            closing: false,
            len,
        })
    };
    match bytes.get(1)? {
        b'!' if from.starts_with("<!--") => {
            let len = from[4..].find("-->").map_or(from.len(), |end| 4 + end + 3);
            unnamed(len)
        }
        b'!' | b'?' => unnamed(from.find('>').map_or(from.len(), |end| end + 1)),
        b'/' => named(from, 2, true),
        b if b.is_ascii_alphabetic() => named(from, 1, false),
        _ => None,
    }
}

/// A start or end tag whose name begins at `start`; attribute values in quotes
/// may hold `>` and `<` without ending it.
fn named(from: &str, start: usize, closing: bool) -> Option<Tag> {
    let bytes = from.as_bytes();
    let name_end = bytes[start..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
        .map_or(bytes.len(), |n| start + n);
    let name = from[start..name_end].to_ascii_lowercase();
    let mut i = name_end;
    while i < bytes.len() {
        match bytes[i] {
            b'>' => break,
            b'=' => {
                i += 1;
                while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                    i += 1;
                }
                if let Some(&quote @ (b'"' | b'\'')) = bytes.get(i) {
                    let close = bytes[i + 1..].iter().position(|b| *b == quote);
                    i = close.map_or(bytes.len(), |n| i + 1 + n + 1);
                }
            }
            _ => i += 1,
        }
    }
    Some(Tag {
        name,
        closing,
        len: (i + 1).min(bytes.len()),
    })
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
        visible_text(html).text
    }

    #[test]
    fn tags_are_stripped_and_blocks_keep_words_apart() {
        assert_eq!(
            shown("<p>nice <strong>work</strong></p><p>team</p>"),
            "nice work team"
        );
        assert_eq!(shown("a<br>b<br/>c"), "a b c");
        assert_eq!(shown("<b><i><u>deep</u></i></b>ly"), "deeply");
        assert_eq!(shown("<ul><li>one</li><li>two</li></ul>"), "one two");
        assert_eq!(shown("a < b and c<3"), "a < b and c<3");
        assert_eq!(shown("<!-- !approve #12 -->shown"), "shown");
        assert_eq!(shown("unclosed <b class=\"x"), "unclosed");
    }

    #[test]
    fn quoted_attributes_may_hold_angle_brackets() {
        assert_eq!(
            shown(r#"<a href="https://x" title="<b>!approve #12</b>">link</a>"#),
            "link"
        );
        assert_eq!(shown("<a title='a>b'>text</a>"), "text");
        // A quote not after `=` quotes nothing: the tag ends at its `>`.
        assert_eq!(shown("<a b\"c>text</a>\"d"), "text\"d");
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
    fn a_reply_s_fallback_and_hidden_content_are_not_shown() {
        let reply = visible_text(
            "<mx-reply><blockquote><a href=\"x\">In reply to</a> \
             <a>@bob:hs</a><br>!approve #3</blockquote></mx-reply>mine",
        );
        assert_eq!(
            reply,
            Shown {
                text: "mine".into(),
                had_reply: true
            }
        );
        assert_eq!(
            shown("<script>!approve #12</script><style>x</style>ok"),
            "ok"
        );
        assert_eq!(shown("<mx-reply><mx-reply>a</mx-reply>b</mx-reply>c"), "c");
        assert_eq!(shown("</script>closing first<b>ok</b>"), "closing firstok");
    }

    #[test]
    fn the_same_words_formatted_are_not_a_difference() {
        let same = |body: &str, html: &str| !differs(body, &visible_text(html));
        assert!(same(
            "!changes #12 set `cpu_limit` to **4**",
            "!changes #12 set <code>cpu_limit</code> to <strong>4</strong>"
        ));
        assert!(same("!approve #12", "<p>!approve   #12</p>\n"));
        assert!(same("a < b", "a &lt; b"));
        assert!(same(
            "> <@bob:hs> Request #3 waits for review\n> more\n\n!approve #3",
            "<mx-reply><blockquote>Request #3 waits for review<br>more</blockquote></mx-reply>!approve #3"
        ));
    }

    #[test]
    fn a_body_that_says_what_its_html_does_not_show_differs() {
        let differ = |body: &str, html: &str| differs(body, &visible_text(html));
        assert!(differ("!approve #12", "nice work, thanks"));
        assert!(differ("!approve #12", "<span>!approve #1</span><p>2</p>"));
        // Inline tags glue what they split, as a client shows it.
        assert!(!differ("!approve #12", "<span>!approve #1</span>2"));
        assert!(differ("!changes #1 2cores", "!changes #12 cores"));
        assert!(differ("!approve #12", "<mx-reply>!approve #12</mx-reply>"));
        assert!(differ("!approve #12", "<script>!approve #12</script>"));
        // A body fallback is set aside only where the HTML has a reply.
        assert!(differ("> !approve #12\n\nthanks", "thanks"));
    }

    #[test]
    fn huge_and_hostile_input_is_read_in_linear_time() {
        let started = std::time::Instant::now();
        for hostile in [
            "<".repeat(1 << 20),
            "<b>".repeat(1 << 18),
            "<mx-reply>".repeat(1 << 18),
            "&".repeat(1 << 20),
            "&#x1;".repeat(1 << 18),
            format!("<a title=\"{}", "<".repeat(1 << 20)),
            "<!--".repeat(1 << 18),
            "é<".repeat(1 << 19),
        ] {
            let shown = visible_text(&hostile);
            assert!(shown.text.len() <= hostile.len() * 3);
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}
