//! A browser without script, for the portal's tests: it keeps the session
//! cookie between calls and sends pages' requests and form posts as a browser
//! does, through the whole router (portal and API) without a socket.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use leptos::server_fn::ServerFn;
use tower::ServiceExt;

use crate::common::{TestApp, TestResult};

pub const HOST: &str = "slipway.test";
pub const ORIGIN: &str = "http://slipway.test";

pub struct Browser {
    pub router: Router,
    pub cookie: Option<String>,
    /// The address the listener sees this browser at, if any.
    pub address: Option<std::net::SocketAddr>,
    /// The last page this browser opened: a form post's `Referer`, where a
    /// refused server function sends it back (the sign-in page before any).
    page: String,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Every `Set-Cookie` of the answer.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }
}

/// `application/x-www-form-urlencoded`, as a browser writes it.
pub fn encoded(pairs: &[(&str, &str)]) -> Vec<u8> {
    let escape = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            router: slipway_server::cli::router(
                &app.state,
                app::ssr::portal_router(app.state.clone()),
            ),
            cookie: None,
            address: None,
            page: "/login".to_string(),
        }
    }

    /// A browser a demo user has signed in with.
    pub async fn signed_in(app: &TestApp, user: &str) -> TestResult<Browser> {
        let mut browser = Browser::new(app);
        let answer = browser.sign_in(user, "/catalog").await?;
        assert!(answer.status.is_redirection(), "sign-in: {}", answer.status);
        Ok(browser)
    }

    /// The session cookie's value, as the browser holds it.
    pub fn session_id(&self) -> String {
        self.cookie
            .as_deref()
            .and_then(|c| c.split_once('='))
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }

    pub async fn send(&mut self, mut request: Request<Body>) -> TestResult<Answer> {
        if let Some(cookie) = &self.cookie {
            request
                .headers_mut()
                .insert(header::COOKIE, cookie.parse()?);
        }
        if let Some(address) = self.address {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(address));
        }
        let response = self.router.clone().oneshot(request).await?;
        let (status, headers) = (response.status(), response.headers().clone());
        if let Some(set) = headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
        {
            let pair = set.split(';').next().unwrap_or_default().to_string();
            self.cookie = (!set.contains("Max-Age=0")).then_some(pair);
        }
        let bytes = axum::body::to_bytes(response.into_body(), 4 << 20).await?;
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    pub async fn get(&mut self, uri: &str) -> TestResult<Answer> {
        self.page = uri.to_string();
        let request = Request::get(uri)
            .header(header::HOST, HOST)
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())?;
        self.send(request).await
    }

    /// A form post from a page of `origin`, its body as given.
    pub async fn post_raw(
        &mut self,
        path: &str,
        body: Vec<u8>,
        origin: &str,
    ) -> TestResult<Answer> {
        let request = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::ORIGIN, origin)
            .header(header::REFERER, format!("{origin}{}", self.page))
            .header(header::ACCEPT, "text/html")
            .header(header::USER_AGENT, "PortalTest/1.0")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))?;
        self.send(request).await
    }

    /// A form post as a browser sends it from a page of `origin`.
    pub async fn post_form(
        &mut self,
        path: &str,
        pairs: &[(&str, &str)],
        origin: &str,
    ) -> TestResult<Answer> {
        self.post_raw(path, encoded(pairs), origin).await
    }

    /// A form post from one of this site's pages.
    pub async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> TestResult<Answer> {
        self.post_form(path, pairs, ORIGIN).await
    }

    pub async fn sign_in(&mut self, user: &str, next: &str) -> TestResult<Answer> {
        self.sign_in_from(user, next, ORIGIN).await
    }

    /// Signs a demo user in from a page of `origin`.
    pub async fn sign_in_from(
        &mut self,
        user: &str,
        next: &str,
        origin: &str,
    ) -> TestResult<Answer> {
        let password = format!("{user}-demo-pw");
        self.post_form(
            app::api::Login::PATH,
            &[("username", user), ("password", &password), ("next", next)],
            origin,
        )
        .await
    }
}
