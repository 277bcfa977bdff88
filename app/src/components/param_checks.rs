//! The browser's copy of the parameter checks. It is the same `slipway_core` code the
//! server runs, but it carries the JSON Schema engine and its regular expressions, the
//! largest part of the client. Marked `#[lazy]`, it is split into its own wasm chunk
//! that only the request form loads; every other page stays small.

use std::cell::RefCell;

use leptos::prelude::*;
use serde_json::Value;
use slipway_core::catalog::ResourceType;
use slipway_core::validate::{FieldError, ParamValidator};

/// Every field error of `params`, as the server would report them.
#[lazy]
pub fn check_params(resource_type: ResourceType, params: Value) -> Vec<FieldError> {
    // Compiling the schema costs far more than checking; a form checks one type.
    thread_local! {
        static COMPILED: RefCell<Option<ParamValidator>> = const { RefCell::new(None) };
    }
    COMPILED.with(|cell| {
        let mut compiled = cell.borrow_mut();
        let stale = compiled
            .as_ref()
            .is_none_or(|v| v.resource_type() != &resource_type);
        if stale {
            match ParamValidator::new(&resource_type) {
                Ok(validator) => *compiled = Some(validator),
                Err(message) => return vec![FieldError::new("", message)],
            }
        }
        compiled
            .as_ref()
            .map(|v| v.check(&params))
            .unwrap_or_default()
    })
}
