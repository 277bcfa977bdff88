//! The `slipway` binary. It lives with the portal because it must link the pages;
//! everything else it does is `slipway_server::cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    slipway_server::cli::main(app::ssr::portal_router).await
}
