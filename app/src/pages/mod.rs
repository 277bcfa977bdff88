//! One module per page.

pub mod account;
pub mod api_docs;
pub mod asset;
pub mod asset_action;
pub mod assets;
pub mod attention;
pub mod audit;
pub mod catalog;
pub mod edit_request;
pub mod flow_metrics;
pub mod login;
pub mod my_requests;
pub mod new_request;
pub mod request;
pub mod reviews;
pub mod tokens;
