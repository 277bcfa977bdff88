//! Every connection Slipway opens because a catalog said so (an `http` or `tcp`
//! check, a pipeline call) goes through here. A catalog author or a requester's
//! parameters choose the target, so the target is checked against the hosts the
//! settings allow *before* anything connects: the name, then every address it
//! resolves to (an allowed name pointing at 169.254.169.254 is still refused),
//! and the connection goes to exactly the addresses checked. Redirects are never
//! followed here; a caller that follows one sends the next hop through again.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderMap;
use slipway_core::checks::AllowedHosts;

/// How the allow-list is named in messages, so the operator knows what to change.
pub const ALLOW_SETTING: &str = "--check-allow-hosts (SLIPWAY_CHECK_ALLOW_HOSTS)";

/// A body is read up to this many bytes; the rest is dropped unread.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why an outbound call did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The settings do not allow the target: trying again will not help.
    #[error("{0}")]
    Refused(String),
    /// The target could not be reached: the request never left.
    #[error("{0}")]
    Unreachable(String),
    /// The request went out but its answer did not arrive (a timeout, a closed
    /// connection): the target may have acted on it.
    #[error("{0}")]
    Lost(String),
}

#[derive(Debug, Clone, Default)]
pub struct Outbound {
    allowed: AllowedHosts,
}

/// One HTTP call. Header values may hold a token: they are never logged.
pub struct OutboundRequest<'a> {
    pub method: reqwest::Method,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub body: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: HeaderMap,
    /// At most [`MAX_BODY`] bytes of it, lossily decoded.
    pub body: String,
    pub truncated: bool,
    /// The URL that answered, to resolve a relative `Location` against.
    pub url: Url,
}

/// Well inside a call's time: a lookup or a connect that hangs must end as a
/// connect error (nothing sent), not as the call's timeout (maybe sent).
fn connect_budget(call: Duration) -> Duration {
    (call / 3).min(Duration::from_secs(10))
}

impl Outbound {
    pub fn new(allowed: AllowedHosts) -> Outbound {
        Outbound { allowed }
    }

    /// The addresses to connect to for `host:port`, or why not; a resolver
    /// that has not answered `within` is unreachable (the lookup runs before
    /// any connect or request timeout starts).
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        within: Duration,
    ) -> Result<Vec<SocketAddr>, OutboundError> {
        if !self.allowed.allows(host, port) {
            // The list names internal hosts: it goes to the server's log, where
            // the platform team looks, not into a check result every viewer of
            // the request reads.
            tracing::warn!(%host, port, allowed = %self.allowed.describe(), "an outbound call to a host not allowed was refused");
            return Err(OutboundError::Refused(format!(
                "{host}:{port} is not among the hosts the server's {ALLOW_SETTING} setting allows; the platform team can add it"
            )));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> =
            match tokio::time::timeout(within, tokio::net::lookup_host((bare, port))).await {
                Ok(found) => found
                    .map_err(|e| OutboundError::Unreachable(format!("cannot resolve {host}: {e}")))?
                    .collect(),
                Err(_) => {
                    return Err(OutboundError::Unreachable(format!(
                        "cannot resolve {host}: no answer from the resolver within {} s",
                        within.as_secs_f32()
                    )));
                }
            };
        if let Some(refused) = addresses
            .iter()
            .find(|a| !self.allowed.allows_address_of(host, a.ip()))
        {
            return Err(OutboundError::Refused(format!(
                "{host} resolves to {}, a loopback, link-local, metadata-service, unspecified or multicast address that is reached only when {ALLOW_SETTING} lists that address itself (loopback also as `localhost`)",
                refused.ip()
            )));
        }
        if addresses.is_empty() {
            return Err(OutboundError::Unreachable(format!(
                "{host} resolves to no address"
            )));
        }
        Ok(addresses)
    }

    /// Sends one request to an allowed host and reads the answer, without
    /// following a redirect.
    pub async fn send(
        &self,
        request: OutboundRequest<'_>,
    ) -> Result<OutboundResponse, OutboundError> {
        let url = parse_url(request.url)?;
        let (host, port) = host_and_port(&url)?;
        let addresses = self
            .resolve(&host, port, connect_budget(request.timeout))
            .await?;
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(request.timeout)
            .connect_timeout(connect_budget(request.timeout));
        if let Some(url::Host::Domain(domain)) = url.host() {
            // Connect to exactly what was checked, not to a second lookup's answer.
            client = client.resolve_to_addrs(domain, &addresses);
        }
        let client = client
            .build()
            .map_err(|e| OutboundError::Unreachable(format!("cannot make an HTTP client: {e}")))?;
        let mut builder = client.request(request.method, url.clone());
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(|e| {
            let (builder, connect) = (e.is_builder(), e.is_connect());
            let why = format!("{}: {}", redacted(&url), error_chain(&e.without_url()));
            if builder {
                OutboundError::Refused(why)
            } else if connect {
                OutboundError::Unreachable(why)
            } else {
                OutboundError::Lost(why)
            }
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            OutboundError::Lost(format!(
                "{}: reading the body: {}",
                redacted(&url),
                error_chain(&e.without_url())
            ))
        })? {
            let room = MAX_BODY - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(OutboundResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            truncated,
            url,
        })
    }
}

pub fn parse_url(text: &str) -> Result<Url, OutboundError> {
    let url = Url::parse(text)
        .map_err(|e| OutboundError::Refused(format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OutboundError::Refused(format!(
            "{} is not an http:// or https:// URL",
            redacted(&url)
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OutboundError::Refused(format!(
            "{} holds credentials; give them in headers from the settings instead",
            redacted(&url)
        )));
    }
    Ok(url)
}

fn host_and_port(url: &Url) -> Result<(String, u16), OutboundError> {
    let host = match url.host() {
        Some(url::Host::Domain(domain)) => domain.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => {
            return Err(OutboundError::Refused(format!(
                "{} names no host",
                redacted(url)
            )));
        }
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| OutboundError::Refused(format!("{} names no port", redacted(url))))?;
    Ok((host, port))
}

/// A URL for messages: without its query, which may carry a token.
pub fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    let (query, fragment) = (shown.query().is_some(), shown.fragment().is_some());
    shown.set_query(None);
    shown.set_fragment(None);
    // Fails only for URLs that cannot have a user (no host): nothing to hide then.
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    let mut text = shown.to_string();
    if query {
        text.push_str("?…");
    }
    if fragment {
        text.push_str("#…");
    }
    text
}

/// reqwest's own message stops at "error sending request"; the cause says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_quoted_without_its_user_query_or_fragment() -> Result<(), url::ParseError> {
        let url = Url::parse("https://deploy:s3cret@ci.example.com:8443/runs/7?token=abc#frag")?;
        let shown = redacted(&url);
        assert_eq!(shown, "https://ci.example.com:8443/runs/7?…#…");
        for hidden in ["deploy", "s3cret", "abc", "frag"] {
            assert!(!shown.contains(hidden), "{shown}");
        }
        Ok(())
    }
}
