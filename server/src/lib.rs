//! Slipway's server side. Storage, services, the orchestrator and its drivers are
//! server-only; the portal (`app`) and, later, the REST API and ChatOps adapt the
//! service layer to their transports.

/// `println!` for a command's output, quiet when the reader went away (see
/// [`cli::say`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say(format_args!($($arg)*))
    };
}

pub mod api;
pub mod audit_budget;
pub mod audit_chain;
pub mod catalog_source;
pub mod chat;
pub mod checks;
pub mod cli;
pub mod client;
pub mod config;
pub mod drivers;
pub mod housekeeping;
pub mod http;
pub mod metrics;
pub mod orchestrator;
pub mod outbound;
pub mod postgres_servers;
pub mod queue_bench;
pub mod secrets;
pub mod seed;
pub mod services;
pub mod state;
pub mod storage;
pub mod stranded;

pub use state::AppState;
