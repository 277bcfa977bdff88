//! `slipway request …`: the REST API from the command line, with a personal API
//! token, for scripts and pipelines that would rather not write HTTP by hand.

use serde_json::{Map, Value};

/// Where the API is and who calls it.
#[derive(Clone, clap::Args)]
pub struct ApiArgs {
    /// The Slipway to talk to.
    #[arg(long, env = "SLIPWAY_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// A personal API token (portal: API tokens; or `slipway token create`).
    #[arg(long, env = "SLIPWAY_TOKEN", hide_env_values = true)]
    pub token: String,
}

// The token never reaches a log or an error message.
impl std::fmt::Debug for ApiArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiArgs")
            .field("url", &self.url)
            .field("token", &"***")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--param {0:?}: write KEY=VALUE, e.g. --param name=orders or --param cpu_limit=2")]
    BadParam(String),
    #[error("--param {0}: given twice")]
    DuplicateParam(String),
    #[error("{setting}: {message}")]
    BadSetting {
        setting: &'static str,
        message: String,
    },
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{status}: {detail}")]
    Refused { status: u16, detail: String },
}

/// `key=value`: the value is JSON when it reads as a number, true/false, a list or
/// an object (`cpu_limit=2`, `admins=["ann"]`), otherwise it is text (`name=orders`).
pub fn parse_param(text: &str) -> Result<(String, Value), ClientError> {
    let (key, raw) = text
        .split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .ok_or_else(|| ClientError::BadParam(text.to_string()))?;
    let value = match serde_json::from_str::<Value>(raw) {
        Ok(value @ (Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_))) => {
            value
        }
        _ => Value::String(raw.to_string()),
    };
    Ok((key.trim().to_string(), value))
}

pub fn params_of(pairs: &[String]) -> Result<Value, ClientError> {
    let mut params = Map::new();
    for pair in pairs {
        let (key, value) = parse_param(pair)?;
        if params.insert(key.clone(), value).is_some() {
            return Err(ClientError::DuplicateParam(key));
        }
    }
    Ok(Value::Object(params))
}

impl ApiArgs {
    /// The URL and the token as they can be sent, or which of them is wrong:
    /// said before anything is sent (reqwest's own words, "builder error", name
    /// neither).
    fn check(&self) -> Result<(), ClientError> {
        let url_problem = match reqwest::Url::parse(&self.url) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                Some("must start with http:// or https://".to_string())
            }
            Ok(url) if url.host_str().is_none_or(str::is_empty) => Some("names no host".into()),
            Ok(_) => None,
            Err(error) => Some(format!("is not a URL: {error}")),
        };
        if let Some(message) = url_problem {
            return Err(ClientError::BadSetting {
                setting: "--url (SLIPWAY_URL)",
                message,
            });
        }
        let token = self.token.trim();
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ClientError::BadSetting {
                setting: "--token (SLIPWAY_TOKEN)",
                message: "must be the token as shown when it was made: letters, digits and \
                          punctuation, no spaces or line breaks"
                    .into(),
            });
        }
        Ok(())
    }
}

fn endpoint(api: &ApiArgs, path: &str) -> String {
    format!("{}/api/v1{path}", api.url.trim_end_matches('/'))
}

/// The answer's JSON, or the problem it reports said in one line per field.
async fn answer(api: &ApiArgs, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
    api.check()?;
    let response = request
        .bearer_auth(api.token.trim())
        .send()
        .await
        .map_err(|source| ClientError::Unreachable {
            url: api.url.clone(),
            source,
        })?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let mut detail = shown(body["detail"].as_str().unwrap_or("no details"));
    for error in body["errors"].as_array().into_iter().flatten() {
        let field = shown(error["field"].as_str().unwrap_or_default());
        let message = shown(error["message"].as_str().unwrap_or_default());
        detail.push_str(&format!("\n  {field}: {message}"));
    }
    Err(ClientError::Refused {
        status: status.as_u16(),
        detail,
    })
}

/// Whether a character of an answer may reach a terminal as it is: not a
/// control character (an escape sequence retitles, recolours or rewrites the
/// screen; C1's CSI does on some terminals) nor one that turns text round or
/// draws as nothing. An answer quotes what people typed, and the server named
/// by `--url` is not necessarily one's own.
fn shows_as_is(c: char) -> bool {
    !(c.is_control() || slipway_core::validate::unfit_in_text(c))
}

/// A refusal's text for the terminal: each character that may not reach it
/// as it is written as its escape (`\u{1b}`); line breaks stay.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            c if shows_as_is(c) => c.to_string(),
            c => c.escape_unicode().to_string(),
        })
        .collect()
}

/// An answer as the terminal is given it: pretty JSON in which every
/// character that may not reach a terminal as it is (serde_json escapes C0's
/// controls only) is a `\uXXXX` escape, which reads as the same JSON.
pub fn terminal_json(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' || shows_as_is(c) {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Submits a request; a retry with the same idempotency key makes no second one.
pub async fn create(
    api: &ApiArgs,
    type_name: &str,
    params: Value,
    idempotency_key: &str,
) -> Result<Value, ClientError> {
    let body = serde_json::json!({ "type": type_name, "params": params });
    let request = reqwest::Client::new()
        .post(endpoint(api, "/requests"))
        .header("Idempotency-Key", idempotency_key)
        .json(&body);
    answer(api, request).await
}

pub async fn get(api: &ApiArgs, id: i64) -> Result<Value, ClientError> {
    let request = reqwest::Client::new().get(endpoint(api, &format!("/requests/{id}")));
    answer(api, request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_read_as_json_where_they_can_and_as_text_otherwise() {
        let params = params_of(&[
            "name=orders".into(),
            "cpu_limit=2".into(),
            "ha=true".into(),
            "admins=[\"ann\"]".into(),
            "note=a=b".into(),
        ])
        .ok();
        assert_eq!(
            params,
            Some(serde_json::json!({
                "name": "orders", "cpu_limit": 2, "ha": true, "admins": ["ann"], "note": "a=b"
            }))
        );
        assert!(params_of(&["novalue".into()]).is_err());
        assert!(params_of(&["=x".into()]).is_err());
        assert!(params_of(&["a=1".into(), "a=2".into()]).is_err());
    }

    #[test]
    fn a_bad_url_or_token_is_named_before_anything_is_sent() {
        let api = |url: &str, token: &str| ApiArgs {
            url: url.into(),
            token: token.into(),
        };
        assert!(api("http://127.0.0.1:3000", "slw_abc").check().is_ok());
        for (url, token, setting) in [
            ("javascript:x", "slw_abc", "SLIPWAY_URL"),
            ("not a url", "slw_abc", "SLIPWAY_URL"),
            ("file:///etc/passwd", "slw_abc", "SLIPWAY_URL"),
            ("http://127.0.0.1:3000", "slw_x\nX: 1", "SLIPWAY_TOKEN"),
            ("http://127.0.0.1:3000", "", "SLIPWAY_TOKEN"),
            ("http://127.0.0.1:3000", "slw é", "SLIPWAY_TOKEN"),
        ] {
            let said = api(url, token)
                .check()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(said.contains(setting), "{url} {token:?}: {said}");
        }
    }

    /// A hostile answer (an escape sequence in a parameter, C1's CSI, a
    /// direction mark) reaches the terminal escaped, and the JSON reads the same.
    #[test]
    fn an_answer_reaches_the_terminal_escaped() -> Result<(), serde_json::Error> {
        let hostile = "a\u{1b}]0;owned\u{7}b\u{9b}31mc\u{202e}d\u{e0041}";
        let value = serde_json::json!({ "name": hostile, "ok": "zahlungsverkehr ä" });
        let printed = terminal_json(&value);
        assert!(
            printed.chars().all(|c| c == '\n' || shows_as_is(c)),
            "{printed}"
        );
        assert!(
            printed.contains("\\u009b") && printed.contains("\\u202e"),
            "{printed}"
        );
        assert_eq!(serde_json::from_str::<Value>(&printed)?, value);
        assert_eq!(shown("x\u{1b}[2Jy\nz"), "x\\u{1b}[2Jy\nz");
        Ok(())
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let api = ApiArgs {
            url: "http://x".into(),
            token: "slw_secret".into(),
        };
        assert!(!format!("{api:?}").contains("slw_secret"));
    }
}
