//! Lists: where a page starts, how long it is, what it is narrowed to, and what a
//! page knows about its neighbours. One parser reads a list's query for the portal
//! (from the page's URL) and for the REST API, so a bad value is named the same way
//! by both, before any SQL runs.
//!
//! Pages are keyset pages on the row id, newest first: `before` an id gives the next
//! older page, `after` an id the next newer one. Rows added meanwhile never shift a
//! page, and no page skips rows by counting them (no `OFFSET`).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::ResourceType;
use crate::state::RequestState;
use crate::validate::FieldError;

/// Rows on a page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most rows one page holds.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Search words beyond this many are ignored; each word is cut to [`MAX_WORD_CHARS`].
pub const MAX_SEARCH_WORDS: usize = 8;
pub const MAX_WORD_CHARS: usize = 64;
/// A filter value (a type, team or environment name) longer than this names nothing.
pub const MAX_NAME_CHARS: usize = 200;

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cursor {
    /// The newest rows.
    #[default]
    Newest,
    /// Rows older than this id (the next page).
    Before(i64),
    /// Rows newer than this id (the previous page).
    After(i64),
}

/// A page to read: where it starts and how many rows it holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub cursor: Cursor,
    pub size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest::first(DEFAULT_PAGE_SIZE)
    }
}

impl PageRequest {
    pub const fn first(size: u32) -> PageRequest {
        PageRequest {
            cursor: Cursor::Newest,
            size,
        }
    }

    /// The size within 1 to [`MAX_PAGE_SIZE`]: what the services read, whatever
    /// they are asked.
    pub fn clamped_size(&self) -> u32 {
        self.size.clamp(1, MAX_PAGE_SIZE)
    }
}

/// One page of a list, newest first, with the cursors of its neighbours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the newer rows; `None` when this page is the newest.
    pub newer: Option<i64>,
    /// Pass as `before` for the older rows; `None` when this page is the oldest.
    pub older: Option<i64>,
}

impl<T> ListPage<T> {
    pub fn empty() -> Self {
        ListPage {
            items: Vec::new(),
            newer: None,
            older: None,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> ListPage<U> {
        ListPage {
            items: self.items.into_iter().map(f).collect(),
            newer: self.newer,
            older: self.older,
        }
    }
}

/// A calendar day in UTC, written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Day {
    /// Days since 1970-01-01.
    days: i64,
}

const MILLIS_PER_DAY: i64 = 86_400_000;

impl Day {
    pub fn parse(text: &str) -> Result<Day, String> {
        let bad = || format!("{} is not a date written YYYY-MM-DD", quoted_briefly(text));
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(bad());
        }
        let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
            let part = &text[range];
            if part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse::<i64>().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(format!("{text:?} is not a day of the calendar"));
        }
        Ok(Day {
            days: days_from_civil(year, month, day),
        })
    }

    /// The first millisecond of the day.
    pub fn start_millis(self) -> i64 {
        self.days * MILLIS_PER_DAY
    }

    /// The first millisecond of the next day: a day ends before it.
    pub fn end_millis(self) -> i64 {
        (self.days + 1) * MILLIS_PER_DAY
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic
/// Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_from_days(self.days);
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

impl TryFrom<String> for Day {
    type Error = String;
    fn try_from(text: String) -> Result<Day, String> {
        Day::parse(&text)
    }
}

impl From<Day> for String {
    fn from(day: Day) -> String {
        day.to_string()
    }
}

/// What a list is narrowed to. Each list reads the fields that apply to it (a
/// review queue has no state to choose, only assets are searched).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    pub type_name: Option<String>,
    pub team: Option<String>,
    pub environment: Option<String>,
    pub state: Option<RequestState>,
    /// Created on or after this day (UTC).
    pub created_from: Option<Day>,
    /// Created on or before this day (UTC).
    pub created_to: Option<Day>,
    /// Words to find (assets).
    pub text: Option<String>,
    /// Who acted (the audit log): a user name, `worker`, or `policy:<name>`.
    pub actor: Option<String>,
    /// What was done (the audit log), e.g. `request.approve`.
    pub action: Option<String>,
    /// What it was done to (the audit log): `kind:id` or just the kind.
    pub target: Option<String>,
}

impl ListFilter {
    /// Whether any narrowing is asked for.
    pub fn is_empty(&self) -> bool {
        *self == ListFilter::default()
    }
}

/// A query parameter of a list, by its name in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Type,
    Team,
    Environment,
    State,
    CreatedFrom,
    CreatedTo,
    /// Search words; `q` in the portal, `text` in the API.
    Text(&'static str),
    Actor,
    Action,
    Target,
    Before,
    After,
    Limit,
}

impl Param {
    pub fn name(self) -> &'static str {
        match self {
            Param::Type => "type",
            Param::Team => "team",
            Param::Environment => "environment",
            Param::State => "state",
            Param::CreatedFrom => "created_from",
            Param::CreatedTo => "created_to",
            Param::Text(name) => name,
            Param::Actor => "actor",
            Param::Action => "action",
            Param::Target => "target",
            Param::Before => "before",
            Param::After => "after",
            Param::Limit => "limit",
        }
    }
}

/// How a list treats a page size out of range: the portal reads the nearest one,
/// the API refuses it and says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeRule {
    Clamp,
    Refuse,
}

/// A list's query: its filter and its page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    pub filter: ListFilter,
    pub page: PageRequest,
}

/// The problems listed for one query: the first [`MAX_QUERY_PROBLEMS`], then one
/// line that counts the rest, so a query of a hundred thousand wrong pairs gets a
/// short answer (and costs no more memory than a right one).
#[derive(Default)]
pub struct QueryProblems {
    listed: Vec<FieldError>,
    more: usize,
}

/// Problems listed one by one for a list's query.
const MAX_QUERY_PROBLEMS: usize = 10;

impl QueryProblems {
    pub fn push(&mut self, error: FieldError) {
        if self.listed.len() < MAX_QUERY_PROBLEMS {
            self.listed.push(error);
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    pub fn into_list(mut self) -> Vec<FieldError> {
        if self.more > 0 {
            self.listed.push(FieldError::new(
                "",
                format!("and {} more problems with the query", self.more),
            ));
        }
        self.listed
    }
}

/// Keys and values are repeated in messages cut after this many characters: no
/// valid one is longer, and an answer must not echo a megabyte.
const SHOWN_CHARS: usize = 40;

fn briefly(text: &str) -> String {
    if text.chars().count() <= SHOWN_CHARS {
        text.to_string()
    } else {
        let head: String = text.chars().take(SHOWN_CHARS).collect();
        format!("{head}…")
    }
}

/// `text` quoted, cut after a few dozen characters: an answer never echoes a
/// megabyte someone sent.
pub fn quoted_briefly(text: &str) -> String {
    if text.chars().count() <= SHOWN_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(SHOWN_CHARS).collect();
        format!("{head:?}…")
    }
}

fn name_value(param: Param, value: &str) -> Result<String, FieldError> {
    // A filter from a link is shown back as the selected choice: text that
    // turns its reading direction round or draws as nothing would let whoever
    // wrote the link choose what someone's list says it shows.
    if value
        .chars()
        .any(|c| c.is_control() || crate::validate::unfit_in_text(c))
    {
        Err(FieldError::new(
            param.name(),
            "must not hold control characters or invisible or direction-changing ones",
        ))
    } else if value.chars().count() > MAX_NAME_CHARS {
        Err(FieldError::new(
            param.name(),
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ))
    } else {
        Ok(value.to_string())
    }
}

/// An id a page starts at. `after` may be 0, before the first row: the page
/// before an empty one at the start of a list (`before=1`) starts there.
fn id_value(param: Param, value: &str) -> Result<i64, FieldError> {
    let least = if matches!(param, Param::After) { 0 } else { 1 };
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= least)
        .ok_or_else(|| {
            FieldError::new(
                param.name(),
                format!(
                    "{} is not an id: use the id of a row on the page you come from",
                    quoted_briefly(value)
                ),
            )
        })
}

impl ListQuery {
    /// The same rules as [`ListQuery::parse`] for a query that arrives already
    /// read (the portal's list calls send it as JSON): names without control
    /// characters and within their length, search words with control characters
    /// as separators.
    pub fn checked(mut self) -> Result<ListQuery, Vec<FieldError>> {
        let mut errors = QueryProblems::default();
        let f = &mut self.filter;
        for (param, value) in [
            (Param::Type, &mut f.type_name),
            (Param::Team, &mut f.team),
            (Param::Environment, &mut f.environment),
            (Param::Actor, &mut f.actor),
            (Param::Action, &mut f.action),
            (Param::Target, &mut f.target),
        ] {
            if let Some(given) = value.as_deref()
                && let Err(error) = name_value(param, given)
            {
                errors.push(error);
                *value = None;
            }
        }
        if let Some(text) = &mut f.text {
            *text = text.replace(char::is_control, " ");
        }
        if let (Some(from), Some(to)) = (f.created_from, f.created_to)
            && from > to
        {
            errors.push(FieldError::new(
                "created_to",
                format!("{to} is before created_from {from}"),
            ));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors.into_list())
        }
    }

    /// Reads a list's query parameters. Only `accepted` parameters are known; any
    /// other, a repeated one, or a bad value is an error naming the parameter. An
    /// empty value means "not given" (a GET form sends its empty fields).
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        accepted: &[Param],
        size_rule: SizeRule,
    ) -> Result<ListQuery, Vec<FieldError>> {
        let mut query = ListQuery::default();
        let mut errors = QueryProblems::default();
        let mut seen: Vec<&str> = Vec::new();
        let mut size: Option<i64> = None;
        let mut cursors = 0;
        for (key, value) in pairs {
            let Some(param) = accepted.iter().copied().find(|p| p.name() == key) else {
                let known: Vec<&str> = accepted.iter().map(|p| p.name()).collect();
                errors.push(FieldError::new(
                    briefly(key),
                    format!(
                        "is not a parameter of this list (it takes {})",
                        known.join(", ")
                    ),
                ));
                continue;
            };
            if seen.contains(&param.name()) {
                errors.push(FieldError::new(param.name(), "is given more than once"));
                continue;
            }
            seen.push(param.name());
            let value = value.trim();
            // Echoed in messages: a value longer than any that is valid is shown cut.
            let shown = quoted_briefly(value);
            // A form sends its empty fields, and an empty text is no narrowing; an
            // API caller who sends an empty date, state, id or size meant one.
            let is_text = matches!(
                param,
                Param::Type
                    | Param::Team
                    | Param::Environment
                    | Param::Text(_)
                    | Param::Actor
                    | Param::Action
                    | Param::Target
            );
            if value.is_empty() && (is_text || size_rule == SizeRule::Clamp) {
                continue;
            }
            let filter = &mut query.filter;
            let outcome = match param {
                Param::Type => name_value(param, value).map(|v| filter.type_name = Some(v)),
                Param::Team => name_value(param, value).map(|v| filter.team = Some(v)),
                Param::Environment => {
                    name_value(param, value).map(|v| filter.environment = Some(v))
                }
                Param::Actor => name_value(param, value).map(|v| filter.actor = Some(v)),
                Param::Action => name_value(param, value).map(|v| filter.action = Some(v)),
                Param::Target => name_value(param, value).map(|v| filter.target = Some(v)),
                Param::State => value
                    .parse::<RequestState>()
                    .map(|s| filter.state = Some(s))
                    .map_err(|_| {
                        let names: Vec<&str> =
                            RequestState::ALL.iter().map(|s| s.as_str()).collect();
                        FieldError::new(
                            key,
                            format!("{shown} is not a state (one of {})", names.join(", ")),
                        )
                    }),
                Param::CreatedFrom => Day::parse(value)
                    .map(|d| filter.created_from = Some(d))
                    .map_err(|m| FieldError::new(key, m)),
                Param::CreatedTo => Day::parse(value)
                    .map(|d| filter.created_to = Some(d))
                    .map_err(|m| FieldError::new(key, m)),
                Param::Text(_) => {
                    // Only its words are ever searched; a control character is a
                    // separator like any other.
                    filter.text = Some(value.replace(char::is_control, " "));
                    Ok(())
                }
                Param::Before => id_value(param, value).map(|id| {
                    cursors += 1;
                    query.page.cursor = Cursor::Before(id);
                }),
                Param::After => id_value(param, value).map(|id| {
                    cursors += 1;
                    query.page.cursor = Cursor::After(id);
                }),
                Param::Limit => match value.parse::<i64>() {
                    Ok(n) => {
                        size = Some(n);
                        Ok(())
                    }
                    Err(_) => Err(FieldError::new(
                        key,
                        format!("{shown} is not a whole number"),
                    )),
                },
            };
            if let Err(error) = outcome {
                errors.push(error);
            }
        }
        if cursors > 1 {
            errors.push(FieldError::new(
                "after",
                "cannot be given with before: a page starts at one place",
            ));
        }
        if let (Some(from), Some(to)) = (query.filter.created_from, query.filter.created_to)
            && from > to
        {
            errors.push(FieldError::new(
                "created_to",
                format!("{to} is before created_from {from}"),
            ));
        }
        let max = i64::from(MAX_PAGE_SIZE);
        query.page.size = match (size, size_rule) {
            (None, _) => DEFAULT_PAGE_SIZE,
            (Some(n), SizeRule::Clamp) => u32::try_from(n.clamp(1, max)).unwrap_or(MAX_PAGE_SIZE),
            (Some(n), SizeRule::Refuse) if (1..=max).contains(&n) => {
                u32::try_from(n).unwrap_or(MAX_PAGE_SIZE)
            }
            (Some(_), SizeRule::Refuse) => {
                errors.push(FieldError::new(
                    "limit",
                    format!("must be from 1 to {MAX_PAGE_SIZE}"),
                ));
                DEFAULT_PAGE_SIZE
            }
        };
        if errors.is_empty() {
            Ok(query)
        } else {
            Err(errors.into_list())
        }
    }

    /// The query string (without `?`) of this list's filter at `cursor`, keeping a
    /// size that is not the default: what a "Newer" or "Older" link points at.
    pub fn href(&self, text_param: &str, cursor: Cursor) -> String {
        let f = &self.filter;
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let mut push = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                pairs.push((name, value));
            }
        };
        push("type", f.type_name.clone());
        push("team", f.team.clone());
        push("environment", f.environment.clone());
        push("state", f.state.map(|s| s.as_str().to_string()));
        push("created_from", f.created_from.map(|d| d.to_string()));
        push("created_to", f.created_to.map(|d| d.to_string()));
        push("actor", f.actor.clone());
        push("action", f.action.clone());
        push("target", f.target.clone());
        let mut query: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", encode(&v)))
            .collect();
        if let Some(text) = &f.text {
            query.push(format!("{}={}", encode(text_param), encode(text)));
        }
        match cursor {
            Cursor::Newest => {}
            Cursor::Before(id) => query.push(format!("before={id}")),
            Cursor::After(id) => query.push(format!("after={id}")),
        }
        if self.page.size != DEFAULT_PAGE_SIZE {
            query.push(format!("limit={}", self.page.size));
        }
        query.join("&")
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The words of a search, as both engines' text indexes hold them: lower case,
/// split at everything that is not a letter or a digit, at most
/// [`MAX_SEARCH_WORDS`] words of at most [`MAX_WORD_CHARS`] characters. Whatever
/// was typed, what reaches the index is only words.
pub fn search_words(text: &str) -> Vec<String> {
    words(text)
        .take(MAX_SEARCH_WORDS)
        .map(|w| w.chars().take(MAX_WORD_CHARS).collect())
        .collect()
}

/// Every word of `text`, lower case and without accents ("Müller" is "muller"),
/// both where an asset is indexed and where it is searched for. Folding here
/// keeps the engines alike: SQLite's text index folds accents itself,
/// PostgreSQL's `simple` configuration does not.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    // A combining accent belongs to its letter ("u" + U+0308 is one "ü").
    text.split(|c: char| !c.is_alphanumeric() && !unicode_normalization::char::is_combining_mark(c))
        .filter(|w| !w.is_empty())
        .map(|w| without_accents(&w.to_lowercase()))
        .filter(|w| !w.is_empty())
}

/// The text decomposed (NFD) with its combining marks left out.
fn without_accents(word: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    word.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect()
}

/// The longest word an asset's search text keeps.
const MAX_INDEXED_WORD_CHARS: usize = 100;

/// What asset search finds an asset by: the words of its name, its team and the
/// values of its type's `search` parameters (strings, numbers and lists of them),
/// lower case, space-separated. A secret is never among them: the catalog refuses
/// a secret `search` parameter, and a stored secret's placeholder is skipped.
pub fn indexed_words(
    ty: Option<&ResourceType>,
    name: &str,
    team: Option<&str>,
    params: &Value,
) -> String {
    let mut texts: Vec<String> = vec![name.to_string()];
    texts.extend(team.map(str::to_string));
    if let Some(ty) = ty {
        for param in &ty.search {
            if ty.is_secret(param) {
                continue;
            }
            if let Some(value) = params.get(param) {
                scalars(value, &mut texts);
            }
        }
    }
    let words: Vec<String> = texts
        .iter()
        .flat_map(|t| words(t).collect::<Vec<_>>())
        .map(|w| w.chars().take(MAX_INDEXED_WORD_CHARS).collect())
        .collect();
    words.join(" ")
}

fn scalars(value: &Value, out: &mut Vec<String>) {
    if crate::secret::is_placeholder(value) {
        return;
    }
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Array(items) => items.iter().for_each(|v| scalars(v, out)),
        Value::Object(map) => map.values().for_each(|v| scalars(v, out)),
        Value::Null => {}
    }
}

#[cfg(test)]
mod tests;
