//! Cursor pagination: a page of items and an opaque cursor for the next one.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use slipway_core::validate::FieldError;

use super::problem::{ApiError, Problem};
use crate::services::Paged;
use crate::storage::Window;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
const CURSOR_PREFIX: &str = "b";

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

impl PageParams {
    pub fn window(&self) -> Result<Window, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Problem::invalid(vec![FieldError::new(
                "limit",
                format!("must be from 1 to {MAX_LIMIT}"),
            )])
            .into());
        }
        let before = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(cursor) => Some(parse_cursor(cursor)?),
        };
        Ok(Window { before, limit })
    }
}

fn parse_cursor(cursor: &str) -> Result<i64, ApiError> {
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Problem::invalid(vec![FieldError::new(
                "cursor",
                "is not one this API gave out; use the next_cursor of the previous page",
            )])
            .into()
        })
}

fn cursor_for(before: i64) -> String {
    format!("{CURSOR_PREFIX}{before}")
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> From<Paged<T>> for Page<T> {
    fn from(paged: Paged<T>) -> Self {
        Page {
            items: paged.items,
            next_cursor: paged.next_before.map(cursor_for),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        assert_eq!(parse_cursor(&cursor_for(42)).ok(), Some(42));
        for bad in [
            "",
            "42",
            "b",
            "b-1",
            "b0",
            "bx",
            "b99999999999999999999",
            "b1;drop",
        ] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
        let params = PageParams {
            cursor: None,
            limit: Some(0),
        };
        assert!(params.window().is_err());
        let params = PageParams {
            cursor: None,
            limit: Some(201),
        };
        assert!(params.window().is_err());
    }
}
