//! Slipway's domain core: the catalog, parameter validation, pre-check rules,
//! the request state machine and change-set rendering.
//!
//! No I/O happens here: the server and the browser both run this crate, so the
//! portal's form shows exactly the errors the server would report.

pub mod action;
pub mod backstage;
pub mod catalog;
pub mod chart;
pub mod checks;
pub mod diff;
pub mod execution;
pub mod flow;
pub mod guidance;
pub mod ids;
pub mod listing;
pub mod policy;
pub mod precheck;
pub mod render;
pub mod secret;
pub mod state;
mod template;
pub mod validate;
pub mod views;

#[cfg(test)]
mod test_support;
