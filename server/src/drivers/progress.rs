//! Lines a driver reports while its step runs, on their way to the request's live
//! progress. Every line is blanked of secret values here, before anything stores
//! it, and a chatty program is capped in line length and line count so it cannot
//! flood the table; the step's own log keeps its tail as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use slipway_core::secret::SecretValues;
use tokio::sync::mpsc;

/// The most lines one step attempt passes on live.
pub const MAX_LIVE_LINES: usize = 1000;
/// The most characters of one line passed on live; longer lines are cut.
pub const MAX_LINE_CHARS: usize = 1000;

/// The shortest secret (or line of one) also blanked in its encoded forms.
const MIN_ENCODED_CHARS: usize = 6;

/// What replaces a secret value in anything a driver reports.
const BLANKED: &str = "***";

/// Blanks every secret value in one line of output. A value that spans lines
/// (a key file, say) is blanked piece by piece, since output arrives line by line.
pub fn scrub_line(line: &str, secrets: &SecretValues) -> String {
    // Longest first: a short value inside a longer secret ("production" in
    // "production-db-pass") must not break the longer one's match.
    let mut pieces: Vec<String> = secrets
        .iter()
        .flat_map(|(_, value)| {
            let whole = (value.contains('\n')).then(|| value.to_string());
            value
                .lines()
                .map(str::to_string)
                .chain(whole)
                .collect::<Vec<_>>()
        })
        .filter(|piece| !piece.trim().is_empty())
        .flat_map(|piece| encodings(&piece))
        .collect();
    pieces.sort_by_key(|piece| std::cmp::Reverse(piece.len()));
    pieces.dedup();
    let mut line = line.to_string();
    for piece in pieces {
        line = line.replace(&piece, BLANKED);
    }
    line
}

/// A value as programs commonly print it back: as given, quoted in SQL (psql's
/// error context doubles quotes), escaped in JSON, percent-encoded in a URL, and
/// in base64 (`kubectl get secret -o yaml`).
fn encodings(value: &str) -> Vec<String> {
    use base64::Engine as _;
    // A short piece (a line of a key file, say) encoded would blank ordinary
    // text: '+' for a space, a four-letter base64 word.
    if value.chars().count() < MIN_ENCODED_CHARS {
        return vec![value.to_string()];
    }
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or_default()
        .to_string();
    let url: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    vec![
        value.to_string(),
        value.replace('\'', "''"),
        json,
        url.replace('+', "%20"),
        url,
        base64::engine::general_purpose::STANDARD.encode(value),
    ]
    .into_iter()
    .filter(|v| !v.is_empty())
    .collect()
}

/// The sending side, cheap to clone into a driver's threads. Sending never
/// blocks: the orchestrator writes what arrives in batches.
#[derive(Clone)]
pub struct ProgressLines {
    inner: Arc<Inner>,
    secrets: Arc<SecretValues>,
}

struct Inner {
    sender: Option<mpsc::UnboundedSender<String>>,
    sent: AtomicUsize,
}

impl ProgressLines {
    /// A sender whose lines arrive, scrubbed of these secrets, at the receiver.
    pub fn channel(secrets: SecretValues) -> (ProgressLines, mpsc::UnboundedReceiver<String>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let lines = ProgressLines {
            inner: Arc::new(Inner {
                sender: Some(sender),
                sent: AtomicUsize::new(0),
            }),
            secrets: Arc::new(secrets),
        };
        (lines, receiver)
    }

    /// A sender that drops every line: for a driver run where nobody watches.
    pub fn discard() -> ProgressLines {
        ProgressLines {
            inner: Arc::new(Inner {
                sender: None,
                sent: AtomicUsize::new(0),
            }),
            secrets: Arc::new(SecretValues::new()),
        }
    }

    /// The same lines (one cap, one receiver), blanked of these secrets instead:
    /// a driver that hands its program more secrets than the request's own (a
    /// server's admin password, say) must blank those too.
    pub fn blanking(&self, secrets: SecretValues) -> ProgressLines {
        ProgressLines {
            inner: Arc::clone(&self.inner),
            secrets: Arc::new(secrets),
        }
    }

    /// Reports one line. Past the cap, one last line says that the rest is not
    /// shown live, and further lines are dropped.
    pub fn line(&self, line: &str) {
        let Some(sender) = &self.inner.sender else {
            return;
        };
        let count = self.inner.sent.fetch_add(1, Ordering::Relaxed);
        let text = match count.cmp(&MAX_LIVE_LINES) {
            std::cmp::Ordering::Less => cut(&scrub_line(line, &self.secrets)),
            std::cmp::Ordering::Equal => format!(
                "… more output is not shown live (the limit is {MAX_LIVE_LINES} lines); \
                 the step's log keeps its last lines"
            ),
            std::cmp::Ordering::Greater => return,
        };
        // A closed receiver means the step's progress is over: nothing to do.
        let _ = sender.send(text);
    }
}

/// A line cut to `MAX_LINE_CHARS` characters, saying so.
fn cut(line: &str) -> String {
    match line.char_indices().nth(MAX_LINE_CHARS) {
        Some((end, _)) => format!("{} … (line cut)", &line[..end]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> SecretValues {
        let mut secrets = SecretValues::new();
        secrets.insert("password", "hunter2-canary");
        secrets.insert("key", "first-line\nsecond-line");
        secrets
    }

    #[test]
    fn secret_values_are_blanked_line_by_line() {
        assert_eq!(
            scrub_line("PASSWORD=hunter2-canary; key second-line", &secrets()),
            "PASSWORD=***; key ***"
        );
    }

    #[test]
    fn a_secret_printed_back_quoted_escaped_or_encoded_is_blanked() {
        let mut secrets = SecretValues::new();
        let value = "pa'ss\"w\\d /+x";
        secrets.insert("owner", value);
        use base64::Engine as _;
        let base64 = base64::engine::general_purpose::STANDARD.encode(value);
        for printed in [
            "LINE 1: ALTER ROLE x PASSWORD 'pa''ss\"w\\d /+x'".to_string(),
            format!(
                "{{\"password\": {}}}",
                serde_json::to_string(value).unwrap_or_default()
            ),
            "url: https://h/?p=pa%27ss%22w%5Cd+%2F%2Bx".to_string(),
            "url: https://h/?p=pa%27ss%22w%5Cd%20%2F%2Bx".to_string(),
            format!("  password: {base64}"),
        ] {
            let scrubbed = scrub_line(&printed, &secrets);
            assert!(scrubbed.contains(BLANKED), "{printed} -> {scrubbed}");
            for part in ["pa'ss", "pa''ss", "pa%27", base64.as_str()] {
                assert!(!scrubbed.contains(part), "{printed} -> {scrubbed}");
            }
        }
    }

    #[test]
    fn a_secret_inside_a_longer_one_leaves_no_part_of_it() {
        let mut secrets = SecretValues::new();
        secrets.insert("a environment", "production");
        secrets.insert("b owner", "production-db-pass");
        assert_eq!(
            scrub_line("pw=production-db-pass env=production", &secrets),
            "pw=*** env=***"
        );
    }

    #[test]
    fn a_flood_is_capped_and_says_so() {
        let (lines, mut received) = ProgressLines::channel(secrets());
        for n in 0..MAX_LIVE_LINES + 50 {
            lines.line(&format!("line {n} hunter2-canary"));
        }
        lines.line(&"x".repeat(MAX_LINE_CHARS * 2));
        let mut all = Vec::new();
        while let Ok(line) = received.try_recv() {
            all.push(line);
        }
        assert_eq!(all.len(), MAX_LIVE_LINES + 1);
        assert_eq!(all[0], "line 0 ***");
        assert!(
            all[MAX_LIVE_LINES].starts_with("… more output is not shown live"),
            "{}",
            all[MAX_LIVE_LINES]
        );
    }

    #[test]
    fn a_sender_blanking_more_shares_the_cap_and_the_receiver() {
        let (lines, mut received) = ProgressLines::channel(secrets());
        let mut more = secrets();
        more.insert("admin", "admin-canary");
        let wider = lines.blanking(more);
        wider.line("hunter2-canary admin-canary");
        lines.line("admin-canary");
        for _ in 0..MAX_LIVE_LINES {
            wider.line("flood");
        }
        assert_eq!(received.try_recv().ok().as_deref(), Some("*** ***"));
        assert_eq!(received.try_recv().ok().as_deref(), Some("admin-canary"));
        let rest = std::iter::from_fn(|| received.try_recv().ok()).count();
        assert_eq!(rest, MAX_LIVE_LINES - 1, "one cap for both senders");
    }

    #[test]
    fn long_lines_are_cut() {
        let (lines, mut received) = ProgressLines::channel(SecretValues::new());
        lines.line(&"é".repeat(MAX_LINE_CHARS + 5));
        let line = received.try_recv().unwrap_or_default();
        assert_eq!(
            line.chars().count(),
            MAX_LINE_CHARS + " … (line cut)".chars().count()
        );
    }
}
