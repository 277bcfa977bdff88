//! A form refused without script comes back to its page with the refusal in the
//! URL (`__err`, with the form's `__path`), as Leptos's server functions do it,
//! and the page shows that text in its refusal box. So anyone could send a link
//! that puts words of their own on our page ("your account is locked: call …").
//! The server signs each refusal its own redirect carries (`__errsig`, an
//! HMAC-SHA-256 over the form and the refusal); a page asked for with a refusal
//! that is not signed so has it taken out of the URL before the page reads it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use url::form_urlencoded;

use crate::secrets::SecretKey;

const ERROR: &str = "__err";
const FORM: &str = "__path";
const SIGNATURE: &str = "__errsig";

/// Signs and checks refusals in URLs. The key is derived from the settings'
/// secret key, so a refusal signed by one replica reads on another; without
/// one, each process makes its own.
pub struct FormErrorSeal {
    key: [u8; 32],
}

impl FormErrorSeal {
    pub fn new(key: Option<&SecretKey>) -> FormErrorSeal {
        let key = match key {
            Some(key) => key.derive("form-error-seal"),
            None => {
                let mut key = [0u8; 32];
                rand::rng().fill(&mut key);
                key
            }
        };
        FormErrorSeal { key }
    }

    /// The MAC over a refusal: the page it is shown on, the form, the text and
    /// when it was signed. A link keeps its refusal for [`SIGNED_FOR_SECS`] on
    /// its own page only.
    fn mac(&self, refusal: &Refusal<'_>, issued: u64) -> Option<Hmac<Sha256>> {
        // HMAC takes a key of any length: `new_from_slice` does not fail here.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        let parts = [
            refusal.page,
            refusal.form,
            refusal.error,
            refusal.rest,
            refusal.viewer,
        ];
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac.update(issued.to_string().as_bytes());
        Some(mac)
    }

    fn signature(&self, refusal: &Refusal<'_>, issued: u64) -> String {
        self.mac(refusal, issued)
            .map(|mac| format!("{issued}.{}", hex::encode(mac.finalize().into_bytes())))
            .unwrap_or_default()
    }

    fn is_signed(&self, refusal: &Refusal<'_>, signature: &str, now: u64) -> bool {
        let Some((issued, tag)) = signature.split_once('.') else {
            return false;
        };
        let Ok(issued) = issued.parse::<u64>() else {
            return false;
        };
        // Clocks of replicas differ a little; a signature from the future by more
        // than that, or an old one, is not ours to honour.
        if issued > now.saturating_add(60) || now.saturating_sub(issued) > SIGNED_FOR_SECS {
            return false;
        }
        match (hex::decode(tag), self.mac(refusal, issued)) {
            (Ok(given), Some(mac)) => mac.verify_slice(&given).is_ok(),
            _ => false,
        }
    }

    /// The redirect's target with its refusal signed; `None` when it carries none.
    /// A form refused again on a page that shows an earlier refusal has both in
    /// its URL (Leptos appends the new one): only the newest is kept.
    pub fn signed_location(&self, location: &str, now: u64, viewer: &str) -> Option<String> {
        let (before_fragment, fragment) = split_once_or_all(location, '#');
        let (target, query) = before_fragment.split_once('?')?;
        let pairs = pairs(query);
        let newest = |name| {
            pairs
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, v)| v.as_str())
        };
        let rest = rest_of(&pairs);
        let refusal = Refusal {
            page: page_path(target),
            form: newest(FORM).unwrap_or_default(),
            error: newest(ERROR)?,
            rest: &rest,
            viewer,
        };
        let signature = self.signature(&refusal, now);
        let query = form_urlencoded::Serializer::new(rest.clone())
            .append_pair(FORM, refusal.form)
            .append_pair(ERROR, refusal.error)
            .append_pair(SIGNATURE, &signature)
            .finish();
        let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
        Some(format!("{target}?{query}{fragment}"))
    }

    /// The query of a request for `page` without a refusal this server did not
    /// sign for that page; `None` when the query may stay as it is.
    pub fn unsigned_removed(
        &self,
        page: &str,
        query: &str,
        now: u64,
        viewer: &str,
    ) -> Option<String> {
        let pairs = pairs(query);
        let named = |name| value(&pairs, name);
        let (error, signature) = (named(ERROR), named(SIGNATURE));
        if error.is_none() && signature.is_none() && named(FORM).is_none() {
            return None;
        }
        let rest = rest_of(&pairs);
        if let (Some(error), Some(signature)) = (error, signature) {
            let refusal = Refusal {
                page,
                form: named(FORM).unwrap_or_default(),
                error,
                rest: &rest,
                viewer,
            };
            if self.is_signed(&refusal, signature, now) {
                return None;
            }
        }
        Some(rest)
    }
}

/// How long a signed refusal stays in a link: long enough to read it after the
/// redirect, and to reload.
const SIGNED_FOR_SECS: u64 = 600;

/// One refusal as a page shows it.
struct Refusal<'a> {
    /// The path of the page it returns to.
    page: &'a str,
    /// The server function that refused.
    form: &'a str,
    error: &'a str,
    /// The rest of the query (a refused form's values, which its page fills
    /// the form with), as it was signed.
    rest: &'a str,
    /// Whose browser it was made for: a digest of the session cookie's value
    /// (empty without one). A link made from a refusal of one's own cannot put
    /// values in someone else's form.
    viewer: &'a str,
}

/// The path of a redirect target, which may be a whole URL (Leptos sends the
/// browser back to its `Referer`).
fn page_path(target: &str) -> &str {
    match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => target,
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn split_once_or_all(text: &str, at: char) -> (&str, Option<&str>) {
    match text.split_once(at) {
        Some((head, tail)) => (head, Some(tail)),
        None => (text, None),
    }
}

/// The query's pairs but the refusal's own, in their order, as a query.
fn rest_of(pairs: &[(String, String)]) -> String {
    let kept = pairs
        .iter()
        .filter(|(key, _)| ![ERROR, FORM, SIGNATURE].contains(&key.as_str()));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

/// A digest of the request's session cookie (either name it may have), empty
/// without one: what a refusal is bound to.
fn viewer_of(headers: &axum::http::HeaderMap) -> String {
    use sha2::Digest as _;
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| {
            [
                super::session_cookie_name(true),
                super::session_cookie_name(false),
            ]
            .contains(name)
        })
        .map(|(_, value)| value);
    session
        .map(|value| hex::encode(Sha256::digest(value.as_bytes())))
        .unwrap_or_default()
}

fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The value of `name`, if it is there exactly once: two of them would leave
/// open which one the page reads.
fn value<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    let mut found = pairs.iter().filter(|(key, _)| key == name);
    match (found.next(), found.next()) {
        (Some((_, value)), None) => Some(value),
        _ => None,
    }
}

/// Sends a page asked for with a refusal it did not sign to the same page
/// without it (the browser's address must lose it too: the page reads the
/// refusal from the address again once its script runs), and signs the refusal
/// in a redirect the server sends back.
pub async fn seal_form_errors(
    State(seal): State<Arc<FormErrorSeal>>,
    request: Request,
    next: Next,
) -> Response {
    let is_page = matches!(*request.method(), Method::GET | Method::HEAD);
    let viewer = viewer_of(request.headers());
    let cleaned =
        request.uri().query().filter(|_| is_page).and_then(|query| {
            seal.unsigned_removed(request.uri().path(), query, now_secs(), &viewer)
        });
    if let Some(query) = cleaned {
        // One leading slash: `//evil.example/x` is a path to the server and
        // another site to a browser.
        let path = format!("/{}", request.uri().path().trim_start_matches(['/', '\\']));
        let target = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        return Redirect::to(&target).into_response();
    }
    // Only a form's own refusal is signed: a server function answering a post.
    // A redirect to a page the request named (`next` after signing in) carries
    // whatever the asker wrote.
    let posted = request.method() == Method::POST;
    let mut response = next.run(request).await;
    let signed = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|location| posted && location.contains(ERROR))
        .and_then(|location| seal.signed_location(location, now_secs(), &viewer));
    if let Some(location) = signed.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const NOW: u64 = 1_800_000_000;
    const PAGE: &str = "/requests/7";

    fn query_of(location: &str) -> &str {
        location.split_once('?').map(|(_, q)| q).unwrap_or_default()
    }

    #[test]
    fn a_signed_refusal_stays_on_its_page_for_a_while_and_a_crafted_one_goes() -> TestResult {
        let seal = FormErrorSeal::new(Some(&SecretKey::generate()));
        let redirect = "http://portal.test/requests/7?tab=x&__path=%2Fapi%2Fresolve&__err=eyJGb3JiaWRkZW4iOiJubyJ9";
        let signed = seal.signed_location(redirect, NOW, "").ok_or("signed")?;
        assert!(signed.starts_with(redirect) && signed.contains("&__errsig="));
        let kept = |location: &str, page: &str, now: u64| {
            seal.unsigned_removed(page, query_of(location), now, "")
                .is_none()
        };
        assert!(kept(&signed, PAGE, NOW + 5));
        assert!(!kept(&signed, "/requests/8", NOW + 5), "another page");
        assert!(!kept(&signed, PAGE, NOW + SIGNED_FOR_SECS + 1), "expired");
        assert!(!kept(&signed, PAGE, NOW - 3_600), "from the future");
        // Refused again on that page: the newest refusal alone, signed.
        let again = format!("{signed}&__path=%2Fapi%2Fresolve&__err=bmV3");
        let resigned = seal.signed_location(&again, NOW, "").ok_or("signed")?;
        assert_eq!(resigned.matches("__err=").count(), 1, "{resigned}");
        assert!(resigned.contains("__err=bmV3"), "{resigned}");
        assert!(kept(&resigned, PAGE, NOW));
        // Crafted: no signature, another's signature, a changed text, a changed
        // form, the signature twice.
        let other = FormErrorSeal::new(Some(&SecretKey::generate()));
        let foreign = other.signed_location(redirect, NOW, "").ok_or("signed")?;
        let changed = signed.replace(
            "eyJGb3JiaWRkZW4iOiJubyJ9",
            "eyJGb3JiaWRkZW4iOiJjYWxsIHVzIn0",
        );
        let moved = signed.replace("resolve", "login");
        let doubled = format!("{signed}&__errsig=00");
        for crafted in [redirect, &foreign, &changed, &moved, &doubled] {
            let cleaned = seal
                .unsigned_removed(PAGE, query_of(crafted), NOW, "")
                .ok_or("cleaned")?;
            assert_eq!(cleaned, "tab=x", "{crafted}");
        }
        // A refused form's values belong to the refusal, and the refusal to the
        // browser it was made for: values added to the link, or the link opened
        // in another session, lose it (and with it the values the page would
        // fill the form with).
        let bound = seal
            .signed_location(redirect, NOW, "alice-session")
            .ok_or("signed")?;
        let own = |location: &str, viewer: &str| {
            seal.unsigned_removed(PAGE, query_of(location), NOW, viewer)
                .is_none()
        };
        assert!(own(&bound, "alice-session"));
        assert!(!own(&bound, "bob-session"), "another browser");
        assert!(!own(&bound, ""), "signed out");
        let extended = format!("{bound}&replicas=9");
        assert!(!own(&extended, "alice-session"), "a value added");
        let edited = bound.replace("tab=x", "tab=y");
        assert!(!own(&edited, "alice-session"), "a value changed");
        // Nothing to do for a query without a refusal.
        assert_eq!(
            seal.unsigned_removed(PAGE, "next=%2Fassets&q=a", NOW, ""),
            None
        );
        assert_eq!(seal.signed_location("/login?next=%2Fassets", NOW, ""), None);
        Ok(())
    }

    #[test]
    fn hostile_queries_are_cleaned_not_trusted() {
        let seal = FormErrorSeal::new(None);
        for query in [
            "__err",
            "__err=&__errsig=",
            "__errsig=zz&__err=x",
            "__errsig=99999999999999999999999.00&__err=x",
            "__errsig=.&__err=x",
            "__path=%ZZ&__err=%FF%FE",
            &format!("__err={}", "A".repeat(100_000)),
        ] {
            let cleaned = seal.unsigned_removed(PAGE, query, NOW, "");
            assert!(
                cleaned.as_deref().is_some_and(|q| !q.contains("__")),
                "{query:.40}: {cleaned:?}"
            );
        }
    }

    #[test]
    fn a_redirect_target_names_its_page() {
        assert_eq!(page_path("http://portal.test/requests/7"), "/requests/7");
        assert_eq!(page_path("https://portal.test"), "/");
        assert_eq!(page_path("/login"), "/login");
    }
}
