//! Slipway's portal: pages and components (compiled for the server and the browser)
//! and the server functions they call, each a thin adapter over the service layer.

// Deeply nested typed views (the generated request form) exceed the default limit.
#![recursion_limit = "512"]

pub mod api;
pub mod app;
pub mod components;
pub mod error;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Only the islands (the request form, the live refresh) run in the browser; every
    // other part of a page is finished HTML from the server.
    leptos::mount::hydrate_islands();
}
