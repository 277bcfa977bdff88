//! The single sign-on under way, kept in the browser instead of the database:
//! anyone may start one without an account, so starting one must cost the
//! server no stored row (a loop on `/auth/oidc/start` once wrote a session row
//! per call). The cookie is sealed with XChaCha20-Poly1305, so the browser can
//! neither read nor change the state, nonce and PKCE verifier it carries, and
//! it holds its own expiry. The key is derived from the settings' secret key, so
//! a sign-in started on one replica finishes on another; without one, each
//! process makes its own.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::secrets::SecretKey;
use crate::services::oidc::PendingSignIn;

/// How long a sign-in may stay with the provider.
pub const SIGN_IN_LIFETIME: Duration = Duration::from_secs(600);
/// Binds the sealed text to this use: no other sealed value opens as one.
const PURPOSE: &[u8] = b"slipway oidc sign-in under way";
const NONCE_LEN: usize = 24;
/// Browsers drop a cookie past about 4 KiB; the sign-in then fails as expired.
pub const MAX_COOKIE_LEN: usize = 3_500;

pub struct SignInCookie {
    cipher: XChaCha20Poly1305,
    secure: bool,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    pending: PendingSignIn,
    /// Unix milliseconds.
    expires_at: i64,
}

impl SignInCookie {
    pub fn new(key: Option<&SecretKey>, secure: bool) -> SignInCookie {
        let key = match key {
            Some(key) => key.derive("oidc-sign-in-cookie"),
            None => {
                tracing::info!(
                    "no secret key is set: a sign-in started on this process must finish on it"
                );
                let mut key = [0u8; 32];
                rand::rng().fill(&mut key);
                key
            }
        };
        SignInCookie {
            cipher: XChaCha20Poly1305::new(key.as_slice().into()),
            secure,
        }
    }

    pub fn name(&self) -> &'static str {
        if self.secure {
            "__Host-slipway_sign_in"
        } else {
            "slipway_sign_in"
        }
    }

    /// The `Set-Cookie` value carrying the sign-in; `None` when it would not fit
    /// in a cookie.
    pub fn set(&self, pending: &PendingSignIn, now_millis: i64) -> Option<HeaderValue> {
        let sealed = Sealed {
            pending: pending.clone(),
            expires_at: now_millis.saturating_add(SIGN_IN_LIFETIME.as_millis() as i64),
        };
        let plain = serde_json::to_vec(&sealed).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: PURPOSE,
                },
            )
            .ok()?;
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode([nonce.as_slice(), &ciphertext].concat());
        let cookie = self.attributes(&value, SIGN_IN_LIFETIME.as_secs());
        (cookie.len() <= MAX_COOKIE_LEN)
            .then(|| HeaderValue::from_str(&cookie).ok())
            .flatten()
    }

    /// The `Set-Cookie` value that removes it: a sign-in answers once.
    pub fn clear(&self) -> HeaderValue {
        HeaderValue::from_str(&self.attributes("", 0))
            .unwrap_or_else(|_| HeaderValue::from_static("slipway_sign_in=; Max-Age=0; Path=/"))
    }

    /// The sign-in the request's cookie carries, if it opens and has not expired.
    pub fn read(&self, headers: &HeaderMap, now_millis: i64) -> Option<PendingSignIn> {
        let value = cookie_value(headers, self.name())?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: PURPOSE,
                },
            )
            .ok()?;
        let sealed: Sealed = serde_json::from_slice(&plain).ok()?;
        (now_millis < sealed.expires_at).then_some(sealed.pending)
    }

    fn attributes(&self, value: &str, max_age_secs: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Max-Age={max_age_secs}; Path=/; HttpOnly; SameSite=Lax{secure}",
            self.name()
        )
    }
}

/// The value of the first cookie named `name` in the request's `Cookie` headers.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn pending(next: &str) -> PendingSignIn {
        PendingSignIn::new("the-state", "the-nonce", "the-verifier", next)
    }

    fn request_with(set: &HeaderValue) -> Result<HeaderMap, Box<dyn std::error::Error>> {
        let pair = set.to_str()?.split(';').next().unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}"))?,
        );
        Ok(headers)
    }

    #[test]
    fn a_sealed_sign_in_opens_once_in_its_lifetime_and_nowhere_else() -> TestResult {
        let key = SecretKey::generate();
        let cookie = SignInCookie::new(Some(&key), false);
        let set = cookie.set(&pending("/assets"), 1_000).ok_or("fits")?;
        let text = set.to_str()?;
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Lax"));
        assert!(!text.contains("the-verifier"), "the browser cannot read it");
        let headers = request_with(&set)?;
        let opened = cookie.read(&headers, 2_000).ok_or("opens")?;
        assert_eq!(opened.next, "/assets");
        let expiry = 1_000 + SIGN_IN_LIFETIME.as_millis() as i64;
        assert!(cookie.read(&headers, expiry).is_none(), "expired");
        // Another replica with the same key opens it; another key does not.
        assert!(
            SignInCookie::new(Some(&key), false)
                .read(&headers, 2_000)
                .is_some()
        );
        let stranger = SignInCookie::new(Some(&SecretKey::generate()), false);
        assert!(stranger.read(&headers, 2_000).is_none());
        assert!(
            SignInCookie::new(None, false)
                .read(&headers, 2_000)
                .is_none()
        );
        Ok(())
    }

    #[test]
    fn a_changed_or_hostile_cookie_opens_as_nothing() -> TestResult {
        let cookie = SignInCookie::new(None, true);
        let set = cookie.set(&pending("/"), 0).ok_or("fits")?;
        assert!(set.to_str()?.starts_with("__Host-slipway_sign_in="));
        assert!(set.to_str()?.contains("; Secure"));
        let good = request_with(&set)?;
        let value = cookie_value(&good, cookie.name()).ok_or("set")?.to_string();
        let mut flipped = value.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let hostile = [
            String::from_utf8(flipped)?,
            String::new(),
            "%%%".into(),
            "A".repeat(20),
            "A".repeat(100_000),
            value[..value.len() / 2].to_string(),
        ];
        for text in hostile {
            let mut headers = HeaderMap::new();
            let Ok(header) = HeaderValue::from_str(&format!("{}={text}", cookie.name())) else {
                continue;
            };
            headers.insert(header::COOKIE, header);
            assert!(cookie.read(&headers, 1).is_none(), "{text:.40}");
        }
        assert!(cookie.clear().to_str()?.contains("Max-Age=0"));
        Ok(())
    }

    #[test]
    fn a_sign_in_too_large_for_a_cookie_is_not_set() {
        let cookie = SignInCookie::new(None, false);
        let long = format!("/{}", "a".repeat(4_000));
        assert!(cookie.set(&pending(&long), 0).is_none());
    }
}
