//! The outbound checks: ask until the answer is right or the deadline passes.
//! A target the settings refuse fails at once; trying again would not change it.

use std::time::{Duration, Instant};

use reqwest::Method;
use slipway_core::checks::{BodyPattern, HttpExpectation, parse_address};

use crate::outbound::{MAX_BODY, Outbound, OutboundError, OutboundRequest, redacted};

/// One try never waits longer than this, so a hanging server leaves room for
/// more tries before the deadline.
pub(super) const MAX_TRY: Duration = Duration::from_secs(10);
/// Redirects followed per try, each to an allowed host only.
pub(super) const MAX_REDIRECTS: u32 = 5;

pub(super) struct HttpCheck<'a> {
    pub url: &'a str,
    pub status: u16,
    pub body_contains: Option<&'a str>,
    pub body_matches: Option<&'a str>,
    pub deadline: Duration,
}

/// (passed, detail, tries)
pub(super) async fn http(
    outbound: &Outbound,
    check: &HttpCheck<'_>,
    interval: Duration,
) -> (bool, String, u32) {
    let pattern = match check.body_matches.map(BodyPattern::new).transpose() {
        Ok(pattern) => pattern,
        Err(message) => return (false, message, 0),
    };
    let expected = HttpExpectation {
        status: check.status,
        body_contains: check.body_contains,
        body_matches: pattern.as_ref(),
    };
    let until = Instant::now() + check.deadline;
    let mut tries = 0;
    loop {
        tries += 1;
        let last = match get(outbound, check.url, try_timeout(until)).await {
            Ok(answer) => match expected.judge(answer.status, &answer.body) {
                Ok(()) => {
                    return (
                        true,
                        format!("{} answered {}", answer.url, answer.status),
                        tries,
                    );
                }
                Err(why) if answer.truncated => {
                    format!("{why} (in its first {} KiB)", MAX_BODY / 1024)
                }
                Err(why) => why,
            },
            Err(OutboundError::Refused(why)) => return (false, why, tries),
            Err(OutboundError::Unreachable(why) | OutboundError::Lost(why)) => why,
        };
        if !wait_for_next_try(until, interval).await {
            return (
                false,
                gave_up(check.url, &last, tries, check.deadline),
                tries,
            );
        }
    }
}

/// (passed, detail, tries)
pub(super) async fn tcp(
    outbound: &Outbound,
    address: &str,
    deadline: Duration,
    interval: Duration,
) -> (bool, String, u32) {
    let (host, port) = match parse_address(address) {
        Ok(parts) => parts,
        Err(message) => return (false, message, 0),
    };
    let until = Instant::now() + deadline;
    let mut tries = 0;
    loop {
        tries += 1;
        let last = match outbound.resolve(&host, port, try_timeout(until)).await {
            Err(OutboundError::Refused(why)) => return (false, why, tries),
            Err(OutboundError::Unreachable(why) | OutboundError::Lost(why)) => why,
            Ok(addresses) => {
                let connect = tokio::net::TcpStream::connect(&addresses[..]);
                match tokio::time::timeout(try_timeout(until), connect).await {
                    Ok(Ok(stream)) => {
                        let peer = stream
                            .peer_addr()
                            .map_or_else(|_| address.to_string(), |a| a.to_string());
                        return (
                            true,
                            format!("{address} accepted a connection ({peer})"),
                            tries,
                        );
                    }
                    Ok(Err(e)) => format!("{address}: {e}"),
                    Err(_) => format!("{address}: no answer to the connection"),
                }
            }
        };
        if !wait_for_next_try(until, interval).await {
            return (false, gave_up(address, &last, tries, deadline), tries);
        }
    }
}

struct Answer {
    status: u16,
    body: String,
    truncated: bool,
    url: String,
}

/// A GET that follows redirects itself, sending each hop through the allow-list:
/// a redirect to a host the settings do not allow is refused, not followed.
async fn get(outbound: &Outbound, url: &str, timeout: Duration) -> Result<Answer, OutboundError> {
    let mut url = url.to_string();
    let mut redirected_by: Option<String> = None;
    for _ in 0..=MAX_REDIRECTS {
        let sent = outbound
            .send(OutboundRequest {
                method: Method::GET,
                url: &url,
                headers: &[],
                body: None,
                timeout,
            })
            .await;
        let response = match (sent, &redirected_by) {
            (Ok(response), _) => response,
            (Err(OutboundError::Refused(why)), Some(by)) => {
                return Err(OutboundError::Refused(format!(
                    "{by} redirects to {}, which is refused: {why}",
                    shown(&url)
                )));
            }
            (Err(error), _) => return Err(error),
        };
        let location = response
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok());
        let Some(location) = location.filter(|_| (300..400).contains(&response.status)) else {
            return Ok(Answer {
                status: response.status,
                body: response.body,
                truncated: response.truncated,
                url: redacted(&response.url),
            });
        };
        let by = redacted(&response.url);
        url = response
            .url
            .join(location)
            .map_err(|e| {
                OutboundError::Refused(format!("{by} redirects to something not a URL: {e}"))
            })?
            .to_string();
        redirected_by = Some(by);
    }
    Err(OutboundError::Refused(format!(
        "{}: more than {MAX_REDIRECTS} redirects",
        shown(&url)
    )))
}

/// A URL as a check's result may quote it: its query and any user or password
/// left out (a redirect may carry a token the check's detail must not keep).
fn shown(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| "a URL that does not parse".to_string(),
        |u| redacted(&u),
    )
}

pub(super) fn try_timeout(until: Instant) -> Duration {
    until
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(200), MAX_TRY)
}

/// Sleeps for the interval when another try fits before the deadline.
pub(super) async fn wait_for_next_try(until: Instant, interval: Duration) -> bool {
    if Instant::now() + interval >= until {
        return false;
    }
    tokio::time::sleep(interval).await;
    true
}

pub(super) fn gave_up(target: &str, last: &str, tries: u32, deadline: Duration) -> String {
    format!(
        "{last} (gave up on {target} after {tries} tries within the {} s deadline)",
        deadline.as_secs()
    )
}
