//! The rules of acceptance checks that need no I/O: what a rendered URL or address
//! must look like, whether an HTTP answer meets a check, and which outbound hosts
//! the settings allow. The server's check runner does the connecting; it asks
//! these functions before it connects and after it reads.

use std::net::IpAddr;

use serde_json::Value;

/// How long an `http` or `tcp` check keeps trying when its type gives no deadline.
pub const DEFAULT_DEADLINE_SECONDS: u64 = 60;
/// The longest deadline a type may give a check: an hour.
pub const MAX_DEADLINE_SECONDS: u64 = 3600;

/// A rendered `http` check URL must be http(s) with a host, in one piece; the
/// server parses it fully before it connects.
pub fn check_http_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not a URL: it holds white space"));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not a URL starting with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{url:?} names no host"));
    }
    // A value rendered into the host is percent-encoded: one that held a `/`,
    // `#` or `@` (to move the check to another host) shows here.
    if host.contains('%') {
        return Err(format!(
            "{url:?} names a host with an encoded character: a value in the host holds \
             something other than letters, digits, '-', '.', '_' and '~'"
        ));
    }
    Ok(())
}

/// The host and port of a `tcp` check's address: `db.internal:5432`, `[::1]:5432`.
pub fn parse_address(address: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{address:?}: the port must be a number from 1 to 65535"))?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| format!("{address:?}: an IPv6 address needs its closing ]"))?,
        None if host.contains(':') => {
            return Err(format!(
                "{address:?}: write an IPv6 address in brackets, e.g. [::1]:5432"
            ));
        }
        None => host,
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("{address:?} names no valid host"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// A body pattern, compiled once, meaning what a JSON Schema `pattern` means (an
/// unanchored search), like every other pattern in the catalog.
pub struct BodyPattern(jsonschema::Validator);

impl BodyPattern {
    pub fn new(pattern: &str) -> Result<BodyPattern, String> {
        let schema = serde_json::json!({ "type": "string", "pattern": pattern });
        jsonschema::validator_for(&schema)
            .map(BodyPattern)
            .map_err(|e| format!("{pattern:?} is not a valid pattern: {e}"))
    }

    pub fn is_match(&self, body: &str) -> bool {
        self.0.is_valid(&Value::from(body))
    }
}

/// What an `http` check expects of an answer.
pub struct HttpExpectation<'a> {
    pub status: u16,
    pub body_contains: Option<&'a str>,
    pub body_matches: Option<&'a BodyPattern>,
}

impl HttpExpectation<'_> {
    /// Whether an answer meets the check; the error says what differed.
    pub fn judge(&self, status: u16, body: &str) -> Result<(), String> {
        if status != self.status {
            return Err(format!("answered {status}, expected {}", self.status));
        }
        if let Some(text) = self.body_contains
            && !body.contains(text)
        {
            return Err(format!("the body does not contain {text:?}"));
        }
        if let Some(pattern) = self.body_matches
            && !pattern.is_match(body)
        {
            return Err("the body does not match the pattern".into());
        }
        Ok(())
    }
}

/// One entry of the outbound allow-list: a host, optionally with its one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    host: String,
    port: Option<u16>,
}

impl HostRule {
    /// `example.com`, `example.com:8443`, `10.0.0.5`, `::1`, `[::1]:8080`.
    pub fn parse(text: &str) -> Result<HostRule, String> {
        let text = text.trim();
        if text.contains('/') {
            return Err(format!("{text:?}: give a host or host:port, not a URL"));
        }
        let bracketed = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        // An address alone (IPv6 ones hold colons but name no port).
        if let Ok(ip) = bracketed.parse::<IpAddr>() {
            return Ok(HostRule {
                host: ip.to_string(),
                port: None,
            });
        }
        let (host, port) = if text.contains(':') {
            let (host, port) = parse_address(text)?;
            (host, Some(port))
        } else {
            (text.to_string(), None)
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(format!("{text:?} is not a host name or address"));
        }
        Ok(HostRule {
            host: normal_host(&host),
            port,
        })
    }
}

impl std::fmt::Display for HostRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => f.write_str(&host),
        }
    }
}

/// Host names compare without case or a trailing dot; addresses by value.
fn normal_host(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host,
    }
}

/// The hosts outbound checks and pipeline calls may reach. Empty allows none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(Vec<HostRule>);

impl AllowedHosts {
    pub fn new(rules: Vec<HostRule>) -> AllowedHosts {
        AllowedHosts(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The list as the setting would give it, for messages: "none" when empty.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether a host (as the URL or address names it) and port may be reached.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = normal_host(host.trim_start_matches('[').trim_end_matches(']'));
        self.0
            .iter()
            .any(|rule| rule.host == host && rule.port.is_none_or(|p| p == port))
    }

    /// An allowed name may still resolve to an address no check should reach: a
    /// cloud's metadata service (169.254.169.254; Alibaba's 100.100.100.200;
    /// AWS's and Google's IPv6 ones, unique-local addresses like any internal
    /// service's), or this host's own services on loopback, where a rebound or
    /// wildcard name would carry a pipeline's token. Those, and unspecified,
    /// "this network", multicast and broadcast addresses, are refused unless
    /// listed themselves.
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        !is_special(ip) || self.0.iter().any(|rule| rule.host == ip.to_string())
    }

    /// [`Self::allows_address`] for an address `host` (an allowed host, as the
    /// URL names it) resolved to: `localhost` names loopback and nothing else,
    /// so its loopback addresses are reached where another name's are not.
    pub fn allows_address_of(&self, host: &str, ip: IpAddr) -> bool {
        let local = normal_host(host.trim_start_matches('[').trim_end_matches(']')) == "localhost";
        (local && ip.to_canonical().is_loopback()) || self.allows_address(ip)
    }
}

/// Addresses reached only when the allow-list names them: see
/// [`AllowedHosts::allows_address`].
fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            // The rest of the shared address space (100.64.0.0/10) is where
            // carrier NAT, Tailscale and some clusters' pods live: reachable.
            let this_network = v4.octets()[0] == 0;
            v4.is_link_local()
                || v4.is_loopback()
                || this_network
                || v4 == ALIBABA_METADATA
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
                || METADATA_V6.contains(&v6)
        }
    }
}

/// The IPv4 address an IPv6 one carries and reaches: IPv4-mapped
/// (`::ffff:a.b.c.d`), through NAT64's well-known prefix (`64:ff9b::a.b.c.d`,
/// RFC 6052: a gateway connects to the IPv4 address), or the deprecated
/// IPv4-compatible form (`::a.b.c.d`, not `::` or `::1`).
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = v6.segments();
    let zero_middle = segments[2..6].iter().all(|s| *s == 0);
    let nat64 = segments[0] == 0x64 && segments[1] == 0xff9b && zero_middle;
    let compatible = segments[0] == 0 && segments[1] == 0 && zero_middle;
    let last = (u32::from(segments[6]) << 16) | u32::from(segments[7]);
    // `::` and `::1` are IPv6's own unspecified and loopback addresses.
    (nat64 || (compatible && last > 1)).then(|| std::net::Ipv4Addr::from(last))
}

/// Alibaba Cloud's instance metadata service.
const ALIBABA_METADATA: std::net::Ipv4Addr = std::net::Ipv4Addr::new(100, 100, 100, 200);

/// The instance metadata services of AWS and Google Cloud over IPv6.
const METADATA_V6: [std::net::Ipv6Addr; 2] = [
    std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    std::net::Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254),
];

#[cfg(test)]
mod tests;
