//! The query of a list endpoint (requests, the review queue, needing attention,
//! assets): read by the same parser as the portal's pages, every bad or unknown
//! parameter a 422 naming it, and a page's cursors both ways.

use slipway_core::listing::{ListPage, ListQuery, Param, QueryProblems, SizeRule, quoted_briefly};
use slipway_core::validate::FieldError;

use super::problem::{ApiError, Problem};

/// Declares a list's query for the OpenAPI document: its own fields, then the
/// filters and the page every list takes. The handlers read the query with
/// [`parse`], which names every bad parameter; these structs only describe it.
macro_rules! list_query_doc {
    (
        $(#[$meta:meta])* $name:ident {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
        #[into_params(parameter_in = Query)]
        #[allow(dead_code, reason = "describes the query for the OpenAPI document")]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
            /// A resource type's name.
            #[serde(rename = "type")]
            #[param(max_length = 200)]
            pub type_name: Option<String>,
            /// The team the row is for.
            #[param(max_length = 200)]
            pub team: Option<String>,
            /// The environment the row is for.
            #[param(max_length = 200)]
            pub environment: Option<String>,
            /// Created on or after this day (UTC), `YYYY-MM-DD`.
            #[param(value_type = Option<String>, format = Date)]
            pub created_from: Option<String>,
            /// Created on or before this day (UTC), `YYYY-MM-DD`; not before `created_from`.
            #[param(value_type = Option<String>, format = Date)]
            pub created_to: Option<String>,
            /// Rows older than this id: the `before` of the previous answer (the next page).
            #[param(minimum = 1)]
            pub before: Option<i64>,
            /// Rows newer than this id: the `after` of the previous answer (the previous page;
            /// 0 is before the first row). Not together with `before`.
            #[param(minimum = 0)]
            pub after: Option<i64>,
            /// The `next_cursor` or `prev_cursor` of the previous answer (the same as
            /// `before` or `after`).
            pub cursor: Option<String>,
            /// Items per page, 1 to 100 (default 50).
            #[param(minimum = 1, maximum = 100)]
            pub limit: Option<i64>,
        }
    };
}
pub(crate) use list_query_doc;

const BEFORE_PREFIX: &str = "b";
const AFTER_PREFIX: &str = "a";

/// The filter parameters a list of requests takes (with `before`, `after`,
/// `cursor` and `limit`).
pub const REQUEST_FILTERS: &[Param] = &[
    Param::Type,
    Param::Team,
    Param::Environment,
    Param::State,
    Param::CreatedFrom,
    Param::CreatedTo,
];
/// The review queue holds one state: no `state` to choose.
pub const QUEUE_FILTERS: &[Param] = &[
    Param::Type,
    Param::Team,
    Param::Environment,
    Param::CreatedFrom,
    Param::CreatedTo,
];
pub const ASSET_FILTERS: &[Param] = &[
    Param::Type,
    Param::Team,
    Param::Environment,
    Param::CreatedFrom,
    Param::CreatedTo,
    Param::Text("text"),
];

/// A list's query with the API's own extras: the flags an endpoint takes besides
/// the filters (e.g. `mine`), already read.
pub struct ApiListQuery {
    pub query: ListQuery,
    pub flags: Vec<(String, bool)>,
}

impl ApiListQuery {
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, v)| n == name && *v)
    }
}

/// Reads `pairs` as a list's query: `filters` plus `before`, `after`, `cursor`
/// and `limit` (1 to 100), and the boolean `flags`.
pub fn parse(
    pairs: &[(String, String)],
    filters: &[Param],
    flags: &[&str],
) -> Result<ApiListQuery, ApiError> {
    // Listed up to a cap and counted beyond: thousands of bad pairs get a short answer.
    let mut errors = QueryProblems::default();
    let mut rest: Vec<(&str, String)> = Vec::new();
    let mut read_flags = Vec::new();
    let mut cursor_given = false;
    // The parameter a cursor stands for, so an error about it names the cursor.
    let mut cursor_as: Option<&'static str> = None;
    for (key, value) in pairs {
        if flags.contains(&key.as_str()) {
            if read_flags.iter().any(|(flag, _)| flag == key) {
                errors.push(FieldError::new(key.as_str(), "is given more than once"));
                continue;
            }
            match value.trim() {
                "true" | "1" => read_flags.push((key.clone(), true)),
                "false" | "0" => read_flags.push((key.clone(), false)),
                other => errors.push(FieldError::new(
                    key.as_str(),
                    format!("{} is not true or false", quoted_briefly(other)),
                )),
            }
        } else if key == "cursor" {
            if cursor_given {
                errors.push(FieldError::new("cursor", "is given more than once"));
                continue;
            }
            cursor_given = true;
            match cursor_param(value) {
                Ok(Some((name, id))) => {
                    cursor_as = Some(name);
                    rest.push((name, id.to_string()));
                }
                Ok(None) => {}
                Err(error) => errors.push(error),
            }
        } else {
            rest.push((key.as_str(), value.clone()));
        }
    }
    let mut accepted = filters.to_vec();
    accepted.extend([Param::Before, Param::After, Param::Limit]);
    let parsed = ListQuery::parse(
        rest.iter().map(|(k, v)| (*k, v.as_str())),
        &accepted,
        SizeRule::Refuse,
    );
    let query = match parsed {
        Ok(query) => Some(query),
        Err(more) => {
            // An error about what a cursor stood for names the cursor.
            for mut e in more {
                if cursor_as == Some(e.field.as_str()) {
                    e.field = "cursor".into();
                }
                errors.push(e);
            }
            None
        }
    };
    match query {
        Some(query) if errors.is_empty() => Ok(ApiListQuery {
            query,
            flags: read_flags,
        }),
        _ => Err(Problem::invalid(errors.into_list()).into()),
    }
}

/// `b<id>` (older than id) or `a<id>` (newer than id), as `next_cursor` and
/// `prev_cursor` give them out.
fn cursor_param(value: &str) -> Result<Option<(&'static str, i64)>, FieldError> {
    if value.is_empty() {
        return Ok(None);
    }
    let parsed = if let Some(id) = value.strip_prefix(BEFORE_PREFIX) {
        id.parse::<i64>().ok().map(|id| ("before", id))
    } else if let Some(id) = value.strip_prefix(AFTER_PREFIX) {
        id.parse::<i64>().ok().map(|id| ("after", id))
    } else {
        None
    };
    // `a0` is the page before an empty one at the start of a list.
    let least = |side: &str| if side == "after" { 0 } else { 1 };
    parsed
        .filter(|(side, id)| *id >= least(side))
        .map(Some)
        .ok_or_else(|| {
            FieldError::new(
                "cursor",
                "is not one this API gave out; use the next_cursor or prev_cursor of a page",
            )
        })
}

/// One page of a list, newest first, as each endpoint's page type carries it.
#[derive(Debug)]
pub struct ListAnswer<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next (older) page; absent on the oldest page.
    pub next_cursor: Option<String>,
    /// Pass as `cursor` for the previous (newer) page; absent on the newest page.
    pub prev_cursor: Option<String>,
    /// The same as `next_cursor`, as an id to pass as `before`.
    pub before: Option<i64>,
    /// The same as `prev_cursor`, as an id to pass as `after`.
    pub after: Option<i64>,
}

impl<T> From<ListPage<T>> for ListAnswer<T> {
    fn from(page: ListPage<T>) -> Self {
        ListAnswer {
            items: page.items,
            next_cursor: page.older.map(|id| format!("{BEFORE_PREFIX}{id}")),
            prev_cursor: page.newer.map(|id| format!("{AFTER_PREFIX}{id}")),
            before: page.older,
            after: page.newer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::listing::Cursor;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fields(result: Result<ApiListQuery, ApiError>) -> Vec<String> {
        match result {
            Ok(_) => panic!("accepted"),
            Err(ApiError(problem)) => {
                assert_eq!(problem.status, 422);
                problem.errors.iter().map(|e| e.field.clone()).collect()
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_strangers_are_named() {
        let answer: ListAnswer<()> = ListPage {
            items: vec![],
            newer: Some(9),
            older: Some(3),
        }
        .into();
        let next = answer.next_cursor.unwrap_or_default();
        let prev = answer.prev_cursor.unwrap_or_default();
        let read = |c: &str| parse(&pairs(&[("cursor", c)]), REQUEST_FILTERS, &[]);
        assert!(matches!(
            read(&next).map(|q| q.query.page.cursor),
            Ok(Cursor::Before(3))
        ));
        assert!(matches!(
            read(&prev).map(|q| q.query.page.cursor),
            Ok(Cursor::After(9))
        ));
        for bad in [
            "42",
            "b",
            "b-1",
            "b0",
            "bx",
            "a99999999999999999999",
            "b1;drop",
        ] {
            assert_eq!(fields(read(bad)), ["cursor"], "{bad:?}");
        }
        assert_eq!(
            fields(parse(
                &pairs(&[("cursor", "b4"), ("after", "2")]),
                REQUEST_FILTERS,
                &[]
            )),
            ["after"]
        );
        assert_eq!(
            fields(parse(&pairs(&[("limit", "101")]), REQUEST_FILTERS, &[])),
            ["limit"]
        );
        assert_eq!(
            fields(parse(
                &pairs(&[("mine", "yes")]),
                REQUEST_FILTERS,
                &["mine"]
            )),
            ["mine"]
        );
        assert_eq!(
            fields(parse(&pairs(&[("text", "x")]), REQUEST_FILTERS, &[])),
            ["text"]
        );
        assert_eq!(
            fields(parse(
                &pairs(&[("mine", "false"), ("mine", "true")]),
                REQUEST_FILTERS,
                &["mine"]
            )),
            ["mine"],
            "a flag given twice is not read as a list"
        );
        let mine = parse(&pairs(&[("mine", "true")]), REQUEST_FILTERS, &["mine"]);
        assert!(mine.is_ok_and(|q| q.flag("mine")));
    }
}
