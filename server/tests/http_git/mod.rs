//! A git remote over HTTP with basic authentication: git's own `git http-backend`
//! (a CGI program) behind a small axum server on loopback, as a hosted git server
//! that wants a user name and a token. Apart from `common`, which the app's
//! tests include too and whose dependencies they lack.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use base64::Engine as _;
use std::io::Write;
use tempfile::TempDir;

use crate::common::TestResult;
use crate::common::git_server::git;

pub struct HttpGit {
    base: TempDir,
    addr: SocketAddr,
    /// Requests turned away for missing or wrong credentials.
    pub refused: Arc<AtomicUsize>,
    /// Requests that came with the right credentials.
    pub authorized: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

struct Backend {
    root: PathBuf,
    expected: String,
    refused: Arc<AtomicUsize>,
    authorized: Arc<AtomicUsize>,
}

impl HttpGit {
    /// Serves the repositories under a fresh directory to `user` with `password`.
    pub async fn start(user: &str, password: &str) -> TestResult<HttpGit> {
        let base = tempfile::tempdir()?;
        let refused = Arc::new(AtomicUsize::new(0));
        let authorized = Arc::new(AtomicUsize::new(0));
        let backend = Arc::new(Backend {
            root: base.path().to_path_buf(),
            expected: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            refused: refused.clone(),
            authorized: authorized.clone(),
        });
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let backend = backend.clone();
                async move { backend.serve(method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(HttpGit {
            base,
            addr,
            refused,
            authorized,
            server,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn create_repo(&self, name: &str, branch: &str) -> TestResult<String> {
        git(
            self.base.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch",
                branch,
                name,
            ],
        )?;
        Ok(format!("http://{}/{name}", self.addr))
    }

    pub fn log(&self, name: &str, branch: &str) -> TestResult<Vec<String>> {
        let out = git(
            &self.base.path().join(name),
            &["log", "--format=%H %s", branch],
        )?;
        Ok(out.lines().map(str::to_string).collect())
    }
}

/// A server that answers every request with a redirect to `target` (the same
/// path on another host), as a compromised or misconfigured remote would.
pub async fn redirector(target: String) -> TestResult<(String, tokio::task::JoinHandle<()>)> {
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let location = format!(
            "{target}{}",
            uri.path_and_query().map_or("/", |p| p.as_str())
        );
        async move {
            Response::builder()
                .status(StatusCode::FOUND)
                .header("location", location)
                .body(Body::empty())
                .unwrap_or_default()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), server))
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Backend {
    async fn serve(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response<Body> {
        let authorized = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == self.expected);
        if !authorized {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("www-authenticate", "Basic realm=\"git\"")
                .body(Body::empty())
                .unwrap_or_default();
        }
        self.authorized.fetch_add(1, Ordering::SeqCst);
        match self.cgi(&method, &uri, &headers, body).await {
            Ok(response) => response,
            Err(error) => Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Body::from(error.to_string()))
                .unwrap_or_default(),
        }
    }

    async fn cgi(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> TestResult<Response<Body>> {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (root, method, path, query, content_type) = (
            self.root.clone(),
            method.as_str().to_string(),
            uri.path().to_string(),
            uri.query().unwrap_or_default().to_string(),
            content_type.to_string(),
        );
        // tokio's process support is not compiled in; a blocking thread runs the CGI.
        let output =
            tokio::task::spawn_blocking(move || -> std::io::Result<std::process::Output> {
                let mut child = std::process::Command::new("git")
                    .arg("http-backend")
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .env("GIT_PROJECT_ROOT", &root)
                    .env("GIT_HTTP_EXPORT_ALL", "1")
                    .env("REMOTE_USER", "slipway")
                    .env("REMOTE_ADDR", "127.0.0.1")
                    .env("GATEWAY_INTERFACE", "CGI/1.1")
                    .env("REQUEST_METHOD", method)
                    .env("PATH_INFO", path)
                    .env("QUERY_STRING", query)
                    .env("CONTENT_TYPE", content_type)
                    .env("CONTENT_LENGTH", body.len().to_string())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()?;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(&body)?;
                }
                child.wait_with_output()
            })
            .await??;
        let out = output.stdout;
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, i + 4))
            .or_else(|| {
                out.windows(2)
                    .position(|w| w == b"\n\n")
                    .map(|i| (i, i + 2))
            })
            .ok_or("git http-backend wrote no header")?;
        let head = String::from_utf8_lossy(&out[..split.0]).into_owned();
        let mut response = Response::builder();
        let mut status = StatusCode::OK;
        for line in head.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("status") {
                let code = value.split(' ').next().unwrap_or("500");
                status = StatusCode::from_bytes(code.as_bytes())?;
            } else {
                response = response.header(name.trim(), value);
            }
        }
        Ok(response
            .status(status)
            .body(Body::from(out[split.1..].to_vec()))?)
    }
}
