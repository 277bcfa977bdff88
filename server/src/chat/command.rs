//! What a chat message asks for: pure parsing, no I/O, so hostile input is tested
//! without a homeserver. Anything it cannot read becomes a [`ParseError`] that the
//! adapter answers with help, never a panic.

use slipway_core::ids::RequestId;

/// A message longer than this is refused before it is read further.
pub const MAX_MESSAGE_BYTES: usize = 4000;
/// At most this many `key=value` pairs in one request.
pub const MAX_PARAMS: usize = 50;
const MAX_KEY_CHARS: usize = 64;
const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Link {
        code: String,
    },
    Types,
    Show {
        type_name: String,
    },
    Request {
        type_name: String,
        params: Vec<(String, String)>,
    },
    Status {
        id: RequestId,
    },
    Mine,
    Approve {
        id: RequestId,
        /// `approve #12 r3`: the revision the reviewer read (where the review
        /// room was not shown one).
        revision: Option<i64>,
    },
    RequestChanges {
        id: RequestId,
        comment: String,
    },
    Reject {
        id: RequestId,
        comment: String,
    },
    Retry {
        id: RequestId,
    },
    Take {
        id: RequestId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is longer than {MAX_MESSAGE_BYTES} bytes")]
    TooLong,
    #[error("I do not know the command {0:?}")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(&'static str),
    #[error("{0}")]
    Bad(String),
}

/// The first word of every command, for telling commands from chatter.
pub const COMMAND_WORDS: &[&str] = &[
    "help", "link", "types", "show", "request", "status", "mine", "approve", "changes", "reject",
    "retry", "take",
];

/// Whether a message starts with a command word (a leading `!` passed over).
pub fn looks_like_command(message: &str) -> bool {
    let first = message
        .trim_start()
        .trim_start_matches('!')
        .split_whitespace()
        .next()
        .unwrap_or_default();
    COMMAND_WORDS.iter().any(|w| w.eq_ignore_ascii_case(first))
}

/// The names a message may address the bot by, longest first (so that a display
/// name `Slipway Bot` is not read as `slipway` followed by the word `Bot`): its
/// user id, its display name (what a client's mention puts in the text) and its
/// localpart.
pub fn bot_names(user_id: &str, display_name: Option<&str>) -> Vec<String> {
    let localpart = user_id
        .strip_prefix('@')
        .and_then(|b| b.split(':').next())
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for name in [Some(user_id), display_name, Some(localpart)]
        .into_iter()
        .flatten()
        .map(str::trim)
    {
        if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_string());
        }
    }
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    names
}

/// A message as said to the bot: the words meant as a command, and whether the
/// sender addressed the bot.
#[derive(Debug, PartialEq, Eq)]
pub struct Addressed<'a> {
    /// The message after a reply's quoted fallback (its `> ` lines and the blank
    /// line after them) and a leading mention of the bot (`@slipway:example.org: …`,
    /// `slipway, …`); a leading `!` is kept, [`parse`] passes over it.
    pub text: &'a str,
    /// The message names the bot first, or starts with `!`.
    pub to_bot: bool,
}

/// Reads who a message is said to; `names` as [`bot_names`] gives them.
pub fn addressed<'a>(body: &'a str, names: &[String]) -> Addressed<'a> {
    let text = after_reply_quote(body).trim_start();
    for name in names {
        let Some(head) = text.get(..name.len()) else {
            continue;
        };
        if name.is_empty() || !head.eq_ignore_ascii_case(name) {
            continue;
        }
        let rest = &text[name.len()..];
        let rest = rest.strip_prefix([':', ',']).unwrap_or(rest);
        if rest.is_empty() || rest.starts_with(char::is_whitespace) {
            return Addressed {
                text: rest.trim_start(),
                to_bot: true,
            };
        }
    }
    Addressed {
        text,
        to_bot: text.starts_with('!'),
    }
}

/// `body` after a reply's quoted fallback: its leading `>` lines and the blank
/// line after them (nothing when no blank line ends them). Always a suffix of
/// `body`.
pub fn after_reply_quote(body: &str) -> &str {
    if !body.starts_with('>') {
        return body;
    }
    match body.find("\n\n") {
        Some(end) => &body[end + 2..],
        None => "",
    }
}

/// What the bot makes of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Reading<'a> {
    /// Words for the bot to run (or, in a direct chat, to answer with help).
    Command(&'a str),
    /// `link <code>` said to a room others read without addressing the bot: not a
    /// command, but the others have read the code all the same.
    CodeSaidAloud(String),
    /// People talking among themselves.
    Chatter,
}

/// How the bot reads `body`. In a direct chat every message is for it. Where
/// others read (`shared`), people talk among themselves: only a command addressed
/// to the bot (`!approve #12`, `slipway: approve #12`) is run, since a reviewer's
/// "changes #12 look fine" is said to colleagues, not to the bot.
pub fn read<'a>(body: &'a str, names: &[String], shared: bool) -> Reading<'a> {
    let said = addressed(body, names);
    if !shared {
        return Reading::Command(said.text);
    }
    if !looks_like_command(said.text) {
        return Reading::Chatter;
    }
    if said.to_bot {
        return Reading::Command(said.text);
    }
    match parse(said.text) {
        Ok(Command::Link { code }) => Reading::CodeSaidAloud(code),
        _ => Reading::Chatter,
    }
}

/// The link code a message reads as (by [`read`]): said aloud, or sent to the
/// bot as `link <code>`.
pub fn link_code(reading: &Reading<'_>) -> Option<String> {
    match reading {
        Reading::CodeSaidAloud(code) => Some(code.clone()),
        Reading::Command(text) => match parse(text) {
            Ok(Command::Link { code }) => Some(code),
            _ => None,
        },
        Reading::Chatter => None,
    }
}

/// Whether a message, once a mention of the bot or a reply's quote is passed
/// over, starts with a command word: in a direct chat it is a command.
pub fn starts_like_command(body: &str, names: &[String]) -> bool {
    looks_like_command(addressed(body, names).text)
}

pub fn parse(message: &str) -> Result<Command, ParseError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLong);
    }
    let text = message.trim().trim_start_matches('!').trim_start();
    let (word, rest) = match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    };
    if word.is_empty() {
        return Err(ParseError::Empty);
    }
    match word.to_ascii_lowercase().as_str() {
        "help" | "?" => Ok(Command::Help),
        "link" => one_word(rest, "link <code>").map(|code| Command::Link { code }),
        "types" => Ok(Command::Types),
        "show" => name(rest, "show <type>").map(|type_name| Command::Show { type_name }),
        "request" => request(rest),
        "status" => id_only(rest, "status #<id>").map(|id| Command::Status { id }),
        "mine" => Ok(Command::Mine),
        "approve" => approve(rest),
        "changes" => with_comment(rest, "changes #<id> <what to change>")
            .map(|(id, comment)| Command::RequestChanges { id, comment }),
        "reject" => with_comment(rest, "reject #<id> <why>")
            .map(|(id, comment)| Command::Reject { id, comment }),
        "retry" => id_only(rest, "retry #<id>").map(|id| Command::Retry { id }),
        "take" => id_only(rest, "take #<id>").map(|id| Command::Take { id }),
        _ => Err(ParseError::Unknown(shorten(word, 40))),
    }
}

/// `text` cut to `max` characters, for echoing input back safely: on one line
/// (no control character, no Unicode line or paragraph separator) and without
/// the invisible marks that make text read differently from what it is, so a
/// value quoted in a notice cannot add a line that looks like the bot's own.
pub fn shorten(text: &str, max: usize) -> String {
    // The mark says that something was cut: of what is echoed, not of the
    // invisible characters left out.
    let mut fit = text.chars().filter(|c| fit_to_echo(*c));
    let mut out: String = fit.by_ref().take(max).collect();
    if fit.next().is_some() {
        out.push('…');
    }
    out
}

/// [`shorten`] for text written on several lines (a reviewer's comment): its
/// lines (a line feed, a carriage return and line feed, or a lone carriage
/// return end one), each echoed on its own, at most `max` characters in all
/// (the line breaks not counted). No line is empty, and none holds a control
/// character or a Unicode line or paragraph separator.
pub fn shorten_lines(text: &str, max: usize) -> Vec<String> {
    let mut left = max;
    let mut lines: Vec<String> = Vec::new();
    for line in text.split(['\n', '\r']) {
        let fit: String = line.chars().filter(|c| fit_to_echo(*c)).collect();
        let fit = fit.trim();
        if fit.is_empty() {
            continue;
        }
        if left == 0 {
            if let Some(last) = lines.last_mut() {
                last.push('…');
            }
            break;
        }
        let length = fit.chars().count();
        lines.push(shorten(fit, left));
        if length > left {
            break;
        }
        left -= length;
    }
    lines
}

fn fit_to_echo(c: char) -> bool {
    !(c.is_control()
        || slipway_core::validate::unfit_in_text(c)
        || matches!(c, '\u{2028}' | '\u{2029}'))
}

fn one_word(rest: &str, usage: &'static str) -> Result<String, ParseError> {
    let mut words = rest.split_whitespace();
    match (words.next(), words.next()) {
        (Some(word), None) => Ok(word.to_string()),
        // A code typed with spaces between its groups is still one code.
        (Some(_), Some(_)) if usage.starts_with("link") => Ok(rest.to_string()),
        _ => Err(ParseError::Usage(usage)),
    }
}

fn name(rest: &str, usage: &'static str) -> Result<String, ParseError> {
    let word = one_word(rest, usage)?;
    if word.chars().count() > MAX_NAME_CHARS || word.chars().any(char::is_control) {
        return Err(ParseError::Usage(usage));
    }
    Ok(word)
}

/// `#12` or `12`.
pub fn request_id(word: &str) -> Option<RequestId> {
    let digits = word.strip_prefix('#').unwrap_or(word);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().filter(|n| *n > 0).map(RequestId)
}

fn id_only(rest: &str, usage: &'static str) -> Result<RequestId, ParseError> {
    let word = one_word(rest, usage)?;
    request_id(&word).ok_or(ParseError::Usage(usage))
}

const APPROVE_USAGE: &str = "approve #<id> (or approve #<id> r<revision>)";

fn approve(rest: &str) -> Result<Command, ParseError> {
    let mut words = rest.split_whitespace();
    let (id, revision) = match (words.next(), words.next(), words.next()) {
        (Some(id), None, None) => (id, None),
        (Some(id), Some(revision), None) => (id, Some(revision)),
        _ => return Err(ParseError::Usage(APPROVE_USAGE)),
    };
    let id = request_id(id).ok_or(ParseError::Usage(APPROVE_USAGE))?;
    let revision = match revision {
        None => None,
        Some(word) => Some(revision_number(word).ok_or(ParseError::Usage(APPROVE_USAGE))?),
    };
    Ok(Command::Approve { id, revision })
}

/// `r3` (or `R3`): a revision number, at most six digits.
fn revision_number(word: &str) -> Option<i64> {
    let digits = word.strip_prefix(['r', 'R'])?;
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().filter(|n| *n > 0)
}

fn with_comment(rest: &str, usage: &'static str) -> Result<(RequestId, String), ParseError> {
    let (word, comment) = rest
        .split_once(char::is_whitespace)
        .ok_or(ParseError::Usage(usage))?;
    let id = request_id(word).ok_or(ParseError::Usage(usage))?;
    let comment = comment.trim();
    if comment.is_empty() {
        return Err(ParseError::Usage(usage));
    }
    Ok((id, comment.to_string()))
}

const REQUEST_USAGE: &str = "request <type> key=value … (quote values with spaces: key=\"a b\")";

fn request(rest: &str) -> Result<Command, ParseError> {
    let words = split_words(rest)?;
    let mut words = words.into_iter();
    let type_name = words
        .next()
        .filter(|w| !w.contains('=') && w.chars().count() <= MAX_NAME_CHARS)
        .ok_or(ParseError::Usage(REQUEST_USAGE))?;
    let mut params: Vec<(String, String)> = Vec::new();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| ParseError::Bad(format!("{:?} is not key=value", shorten(&word, 40))))?;
        let key_ok = !key.is_empty()
            && key.chars().count() <= MAX_KEY_CHARS
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !key_ok {
            return Err(ParseError::Bad(format!(
                "{:?} is not a parameter name",
                shorten(key, 40)
            )));
        }
        if params.iter().any(|(k, _)| k == key) {
            return Err(ParseError::Bad(format!("{key} is given twice")));
        }
        if params.len() == MAX_PARAMS {
            return Err(ParseError::Bad(format!(
                "at most {MAX_PARAMS} parameters at once"
            )));
        }
        params.push((key.to_string(), value.to_string()));
    }
    Ok(Command::Request { type_name, params })
}

/// Words separated by whitespace; double quotes keep spaces, `\"` and `\\` escape.
fn split_words(text: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => match chars.next() {
                Some(escaped) => current.push(escaped),
                None => return Err(ParseError::Bad("a \\ ends the message".into())),
            },
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err(ParseError::Bad("a quote is not closed".into()));
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: i64) -> RequestId {
        RequestId(n)
    }

    fn names() -> Vec<String> {
        bot_names("@slipway:chat.test", Some("Slipway Bot"))
    }

    #[test]
    fn the_bot_is_named_by_its_id_its_display_name_and_its_localpart() {
        assert_eq!(names(), ["@slipway:chat.test", "Slipway Bot", "slipway"]);
        assert_eq!(
            bot_names("@slipway:chat.test", Some(" SLIPWAY ")),
            ["@slipway:chat.test", "SLIPWAY"]
        );
        assert_eq!(bot_names("@slipway:chat.test", Some("")).len(), 2);
    }

    #[test]
    fn a_mention_or_a_reply_quote_before_the_command_is_passed_over() {
        let text = |body| addressed(body, &names()).text;
        assert_eq!(text("@slipway:chat.test: status #3"), "status #3");
        assert_eq!(text("Slipway, mine"), "mine");
        assert_eq!(text("slipway status #3"), "status #3");
        assert_eq!(text("Slipway Bot: status #3"), "status #3");
        assert_eq!(text("slipwayish status #3"), "slipwayish status #3");
        assert_eq!(
            text("> <@bob:chat.test> Request #3 waits for review\n> more\n\napprove #3"),
            "approve #3"
        );
        assert_eq!(text("> only a quote"), "");
        assert_eq!(addressed("héllo", &bot_names("@é:hs", None)).text, "héllo");
        assert_eq!(
            parse("! approve #1"),
            Ok(Command::Approve {
                id: id(1),
                revision: None
            })
        );
    }

    #[test]
    fn a_mention_or_a_bang_addresses_the_bot_a_reply_alone_does_not() {
        let to_bot = |body| addressed(body, &names()).to_bot;
        assert!(to_bot("!approve #3"));
        assert!(to_bot("  ! approve #3"));
        assert!(to_bot("slipway: approve #3"));
        assert!(to_bot("@slipway:chat.test approve #3"));
        assert!(to_bot("> <@slipway:chat.test> Request #3\n\n!approve #3"));
        assert!(!to_bot("approve #3"));
        assert!(!to_bot("> <@slipway:chat.test> Request #3\n\napprove #3"));
        assert!(!to_bot("slipwayish: approve #3"));
    }

    #[test]
    fn in_a_shared_room_only_commands_addressed_to_the_bot_are_run() {
        let shared = |body| read(body, &names(), true);
        assert_eq!(shared("changes #12 look fine"), Reading::Chatter);
        assert_eq!(shared("approve #12"), Reading::Chatter);
        assert_eq!(shared("Reject #12 then, if you must"), Reading::Chatter);
        assert_eq!(shared("good morning"), Reading::Chatter);
        assert_eq!(shared("slipway is down again"), Reading::Chatter);
        assert_eq!(shared("!hello"), Reading::Chatter);
        assert_eq!(shared("!approve #12"), Reading::Command("!approve #12"));
        assert_eq!(
            shared("Slipway: changes #12 more memory"),
            Reading::Command("changes #12 more memory")
        );
        assert_eq!(
            shared("Slipway Bot: approve #12"),
            Reading::Command("approve #12")
        );
        assert_eq!(
            shared("> <@bob:chat.test> hm\n\napprove #12"),
            Reading::Chatter
        );
        // A code said to the room was read by the room, addressed or not.
        assert_eq!(
            shared("link ABCD-EFGH-JKLM"),
            Reading::CodeSaidAloud("ABCD-EFGH-JKLM".into())
        );
        assert_eq!(
            shared("!link ABCD-EFGH-JKLM"),
            Reading::Command("!link ABCD-EFGH-JKLM")
        );
    }

    #[test]
    fn in_a_direct_chat_every_message_is_for_the_bot() {
        let direct = |body| read(body, &names(), false);
        assert_eq!(
            direct("changes #12 look fine"),
            Reading::Command("changes #12 look fine")
        );
        assert_eq!(direct("good morning"), Reading::Command("good morning"));
        assert_eq!(direct("slipway: mine"), Reading::Command("mine"));
        assert_eq!(
            direct("link ABCD-EFGH-JKLM"),
            Reading::Command("link ABCD-EFGH-JKLM")
        );
    }

    #[test]
    fn reads_every_command() {
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse("  !HELP  "), Ok(Command::Help));
        assert_eq!(
            parse("link ABCD-EFGH-JKLM"),
            Ok(Command::Link {
                code: "ABCD-EFGH-JKLM".into()
            })
        );
        assert_eq!(
            parse("link abcd efgh jklm"),
            Ok(Command::Link {
                code: "abcd efgh jklm".into()
            })
        );
        assert_eq!(parse("types"), Ok(Command::Types));
        assert_eq!(
            parse("show k8s-namespace"),
            Ok(Command::Show {
                type_name: "k8s-namespace".into()
            })
        );
        assert_eq!(parse("status #12"), Ok(Command::Status { id: id(12) }));
        assert_eq!(parse("status 12"), Ok(Command::Status { id: id(12) }));
        assert_eq!(parse("mine"), Ok(Command::Mine));
        assert_eq!(
            parse("approve #3"),
            Ok(Command::Approve {
                id: id(3),
                revision: None
            })
        );
        assert_eq!(
            parse("approve #3 r2"),
            Ok(Command::Approve {
                id: id(3),
                revision: Some(2)
            })
        );
        for bad in [
            "approve #3 2",
            "approve #3 r",
            "approve #3 r0",
            "approve #3 r1234567",
            "approve #3 r2 r3",
            "approve #3 r-1",
            "approve #3 r２",
        ] {
            assert!(matches!(parse(bad), Err(ParseError::Usage(_))), "{bad}");
        }
        assert_eq!(
            parse("changes #3 make it   smaller"),
            Ok(Command::RequestChanges {
                id: id(3),
                comment: "make it   smaller".into()
            })
        );
        assert_eq!(
            parse("reject #3 not needed"),
            Ok(Command::Reject {
                id: id(3),
                comment: "not needed".into()
            })
        );
        assert_eq!(parse("retry #4"), Ok(Command::Retry { id: id(4) }));
        assert_eq!(parse("take #4"), Ok(Command::Take { id: id(4) }));
    }

    #[test]
    fn reads_request_parameters_with_quotes() {
        assert_eq!(
            parse(r#"request k8s-namespace name=web team=payments note="two words" q="a \"b\"""#),
            Ok(Command::Request {
                type_name: "k8s-namespace".into(),
                params: vec![
                    ("name".into(), "web".into()),
                    ("team".into(), "payments".into()),
                    ("note".into(), "two words".into()),
                    ("q".into(), "a \"b\"".into()),
                ],
            })
        );
        assert_eq!(
            parse("request k8s-namespace name="),
            Ok(Command::Request {
                type_name: "k8s-namespace".into(),
                params: vec![("name".into(), String::new())],
            })
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("   !  "), Err(ParseError::Empty));
        assert!(matches!(parse("hello there"), Err(ParseError::Unknown(_))));
        assert!(matches!(parse("approve"), Err(ParseError::Usage(_))));
        assert!(matches!(parse("approve #x"), Err(ParseError::Usage(_))));
        assert!(matches!(parse("approve #0"), Err(ParseError::Usage(_))));
        assert!(matches!(parse("approve #-1"), Err(ParseError::Usage(_))));
        assert!(matches!(
            parse("approve #99999999999999999999999"),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(parse("changes #3"), Err(ParseError::Usage(_))));
        assert!(matches!(parse("reject #3   "), Err(ParseError::Usage(_))));
        assert!(matches!(parse("show"), Err(ParseError::Usage(_))));
        assert!(matches!(parse("show a b"), Err(ParseError::Usage(_))));
        assert!(matches!(parse("request"), Err(ParseError::Usage(_))));
        assert!(matches!(parse("request a=b"), Err(ParseError::Usage(_))));
        assert!(matches!(
            parse("request t novalue"),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(parse("request t =v"), Err(ParseError::Bad(_))));
        assert!(matches!(
            parse("request t a=1 a=2"),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(
            parse("request t a=\"open"),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(
            parse("request t a=\"x\\"),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(parse("request t <b>=1"), Err(ParseError::Bad(_))));
    }

    #[test]
    fn hostile_and_oversized_input_is_refused_without_panic() {
        assert_eq!(
            parse(&"a".repeat(MAX_MESSAGE_BYTES + 1)),
            Err(ParseError::TooLong)
        );
        let many: String = (0..=MAX_PARAMS).map(|i| format!(" k{i}=v")).collect();
        assert!(matches!(
            parse(&format!("request t{many}")),
            Err(ParseError::Bad(_))
        ));
        for hostile in [
            "\u{0}\u{0}\u{0}",
            "request \u{202e}evil a=b",
            "status #١٢",
            "🦀🦀🦀",
            "\"\"\"",
            "request \" a=b",
            "approve ##1",
            "link",
            "\n\n\napprove\n#1",
        ] {
            let _ = parse(hostile);
        }
        let echoed = match parse(&format!("{}x", "é".repeat(100))) {
            Err(ParseError::Unknown(word)) => word,
            other => panic!("expected unknown, got {other:?}"),
        };
        assert!(echoed.chars().count() <= 41);
    }

    #[test]
    fn what_is_echoed_stays_on_one_line_and_shows_what_it_is() {
        let echoed = shorten(
            "web\u{2028}Request #9 is approved\u{2029}.\n\u{202E}x\u{200B}y",
            100,
        );
        assert_eq!(echoed, "webRequest #9 is approved.xy");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("zwj 👩\u{200D}💻 é", 20), "zwj 👩\u{200D}💻 é");
        // Cut only where what is echoed is longer, not the text with its marks.
        assert_eq!(shorten("abc\u{200B}\u{202E}", 3), "abc");
        assert_eq!(shorten("ab\u{200B}cd", 3), "abc…");
    }

    #[test]
    fn a_comment_keeps_its_lines_each_echoed_safely() {
        assert_eq!(
            shorten_lines(
                "more cpu\r\n\n- less memory\u{2028}Request #9 is approved\r",
                100
            ),
            ["more cpu", "- less memoryRequest #9 is approved"]
        );
        assert_eq!(shorten_lines("one line", 100), ["one line"]);
        assert_eq!(shorten_lines("abc\ndef\nghi", 5), ["abc", "de…"]);
        assert_eq!(shorten_lines("abc\ndef", 3), ["abc…"]);
        assert_eq!(shorten_lines("abc\ndef", 6), ["abc", "def"]);
        assert!(shorten_lines("\n \u{200B}\n", 10).is_empty());
    }

    #[test]
    fn tells_commands_from_chatter() {
        assert!(looks_like_command("approve #1"));
        assert!(looks_like_command("  !Status 3"));
        assert!(!looks_like_command("good morning"));
        assert!(!looks_like_command(""));
    }
}
