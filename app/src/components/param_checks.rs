//! The browser's copy of the parameter checks. It is the same `slipway_core` code the
//! server runs, but it carries the JSON Schema engine and its regular expressions, the
//! largest part of the client. Split into its own wasm chunk (`cargo leptos build
//! --split`), it is loaded only by the request form; every other page stays small.

use std::cell::RefCell;

use slipway_core::catalog::ResourceType;
use slipway_core::validate::{FieldError, ParamValidator};

/// The chunk with the checks could not be fetched (offline, blocked, a deploy
/// replaced it). The form then leaves checking to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksUnavailable;

impl From<leptos::wasm_split::SplitLoaderError> for ChecksUnavailable {
    fn from(_: leptos::wasm_split::SplitLoaderError) -> Self {
        ChecksUnavailable
    }
}

/// Every field error of `params`, as the server would report them. The first call
/// loads the chunk; a failed load is an `Err`, never a panic (which would stop the
/// whole form), and the next call tries again.
#[leptos::wasm_split::wasm_split(param_checks, wasm_split_path = ::leptos::wasm_split, fallible)]
pub fn check_params(
    resource_type: ResourceType,
    params: serde_json::Value,
) -> Result<Vec<FieldError>, ChecksUnavailable> {
    // Compiling the schema costs far more than checking; a form checks one type.
    thread_local! {
        static COMPILED: RefCell<Option<ParamValidator>> = const { RefCell::new(None) };
    }
    Ok(COMPILED.with(|cell| {
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
    }))
}
