//! `Idempotency-Key` on the API's state-changing calls (IETF httpapi draft): the
//! same key and payload get the first answer again without a second effect; the
//! same key with another payload is refused (422); a retry while the first call
//! still runs gets 409. Keys belong to the caller and are kept for at least a day.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::MAX_BODY_BYTES;
use super::problem::{ApiError, Problem};
use crate::services::Caller;
use crate::state::AppState;
use crate::storage::idempotency::{self, CallPrint, Claim, StoredAnswer};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
pub const MAX_KEY_CHARS: usize = 90;
/// A first call still "running" after this long died with its process (a replica
/// killed mid-call, a database connection cut before the key was given back). No
/// mutating call takes a minute; a retry after it runs anew, and the services' own
/// duplicate checks (the key is also the submit key) keep it from doing twice what
/// the dead call may have done.
const STALE_AFTER_MS: i64 = 60 * 1000;
/// Keys are kept at least a day; the sweep forgets them after two.
pub const KEEP_MS: i64 = crate::services::requests::API_KEY_KEPT_MS;
/// Answers bigger than this are delivered but not kept: their replay says where
/// to read the result instead. Ours are far smaller (parameters are capped at
/// 64 KiB), but a catalog's templates could still render a large change set.
const MAX_STORED_ANSWER: usize = 1024 * 1024;
/// The most of an answer read back to be kept. Answers are the server's own;
/// this only bounds the memory a runaway one could take.
const MAX_READ_ANSWER: usize = 32 * 1024 * 1024;

/// What a handler keeps for replays instead of its answer's body: an answer that
/// shows a secret once (a new API token) is replayed without it, so the secret is
/// never stored beside its hash.
#[derive(Debug, Clone)]
pub struct ReplayBody(pub String);

/// The key a call carries, checked: printable ASCII, at most 90 characters.
pub fn key_of(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= MAX_KEY_CHARS)
        .filter(|t| t.bytes().all(|b| b.is_ascii_graphic()));
    match text {
        Some(key) => Ok(Some(key.to_string())),
        None => Err(Problem::bad_request(format!(
            "the Idempotency-Key header must be 1 to {MAX_KEY_CHARS} printable ASCII characters"
        ))
        .into()),
    }
}

/// What identifies a payload. Keyed when a secret key is set, because a body may
/// carry a secret parameter and a plain hash of it would confirm a guess.
/// What a key's first call is compared with: the call itself, and the token it
/// came with. Keys belong to the user, but an answer is replayed only to the
/// credential that earned it: another token of the same user, one without the
/// scope the call needs, gets "used with another request" instead of the answer.
/// Also returns the fingerprint an earlier build made of the same call (see
/// [`CallPrint::earlier_fingerprint`]).
fn fingerprint(
    state: &AppState,
    caller: &Caller,
    (method, path): (&Method, &str),
    body: &Bytes,
) -> (String, Option<String>) {
    let mut data = Vec::with_capacity(body.len() + path.len() + 32);
    if let Some(token) = caller.token_id {
        data.extend_from_slice(format!("token {token}\n").as_bytes());
    }
    data.extend_from_slice(method.as_str().as_bytes());
    data.push(b' ');
    data.extend_from_slice(path.as_bytes());
    data.push(b'\n');
    data.extend_from_slice(&canonical_body(body));
    match &state.secrets {
        Some(secrets) => (secrets.digest(&data), Some(secrets.earlier_digest(&data))),
        None => (hex::encode(Sha256::digest(&data)), None),
    }
}

/// A JSON body as the same call is written by any client: keys in order, no
/// white space between tokens (a retry re-serialised by another library, with
/// spaces after colons or its keys in another order, is the same call). A body
/// that is not JSON is taken byte for byte.
fn canonical_body(body: &[u8]) -> Vec<u8> {
    // A body with a key given twice is refused (422): parsed, it would read as
    // the body without the first value, and a retry of it must not match that.
    if super::extract::repeated_key(body).is_some() {
        return body.to_vec();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => serde_json::to_vec(&sorted(value)).unwrap_or_else(|_| body.to_vec()),
        Err(_) => body.to_vec(),
    }
}

fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut pairs: Vec<(String, Value)> = map.into_iter().collect();
            pairs.sort_by(|(a, _), (b, _)| a.cmp(b));
            Value::Object(pairs.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn replay(answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = [
        (header::CONTENT_TYPE, answer.content_type.as_deref()),
        (header::LOCATION, answer.location.as_deref()),
    ];
    for (name, value) in headers {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// POSTs that only compute an answer (they change nothing): a key on them is
/// passed over. Kept, their answers would fill the table for nothing (a loop of
/// dry-runs with fresh keys, a megabyte each), and a retried pre-check would be
/// answered from before the quota or the catalog changed.
const COMPUTING_ONLY: [&str; 2] = ["/api/v1/requests/precheck", "/api/v1/requests/dry-run"];

pub fn computes_only(path: &str) -> bool {
    COMPUTING_ONLY.contains(&path)
}

/// Runs a POST or DELETE at most once per key.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::POST | Method::DELETE)
        || computes_only(request.uri().path())
    {
        return next.run(request).await;
    }
    let key = match key_of(&request) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(request).await,
        Err(problem) => return problem.into_response(),
    };
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        // Too large, too slow or cut off: said as the handlers' own reads say it.
        Err(error) => return super::extract::unread(error).into_response(),
    };
    let (print, earlier) = fingerprint(&state, &caller, (&parts.method, parts.uri.path()), &bytes);
    let rights = idempotency::rights_of(&caller.user.roles, &caller.user.teams);
    let call = CallPrint {
        fingerprint: &print,
        earlier_fingerprint: earlier.as_deref(),
        rights: &rights,
    };
    let claimed_at = match claim(&state, &caller, &key, call).await {
        Ok(Claim::Fresh(claimed_at)) => claimed_at,
        Ok(Claim::Replay(answer)) => return replay(answer),
        Ok(Claim::RightsLost(lost)) => {
            return Problem::new(
                StatusCode::FORBIDDEN,
                "idempotency-key-rights-lost",
                format!(
                    "this Idempotency-Key's first call was made with rights you no longer hold \
                     ({}); its answer is not shown again",
                    lost.join(", ")
                ),
            )
            .into_response();
        }
        Ok(Claim::Mismatch) => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "this Idempotency-Key was already used with another request; use a new key",
            )
            .into_response();
        }
        Ok(Claim::Running) => {
            return Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-use",
                "a request with this Idempotency-Key is still being processed; retry later",
            )
            .into_response();
        }
        Err(problem) => return problem.into_response(),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    keep_answer(&state, (caller.id, &key, claimed_at), response).await
}

async fn claim(
    state: &AppState,
    caller: &Caller,
    key: &str,
    call: CallPrint<'_>,
) -> Result<Claim, ApiError> {
    // A write transaction, not a pooled connection: on SQLite that takes its turn
    // among the writers instead of polling for the lock (which starved a claim for
    // seconds behind the audit writers under load).
    let mut tx = state.db.write().await.map_err(failed)?;
    let claim = idempotency::claim(&mut tx, caller.id, key, call, STALE_AFTER_MS)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(claim)
}

/// A claim that could not be read or written: an outage (503) or a fault.
fn failed(error: impl Into<crate::services::ServiceError>) -> ApiError {
    Problem::from(error.into()).into()
}

/// Keeps the answer for replays; a server fault, a conflict or a "too many" gives
/// the key back so a retry runs anew: they say how things stood at that moment
/// ("still stopping; try again in a few seconds"), and a retry with the same key
/// is exactly what they ask for. None of them took effect.
/// An answer is never turned into an error after the call took effect.
async fn keep_answer(state: &AppState, held: Held<'_>, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_READ_ANSWER).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "an answer could not be read back to keep it");
            if let Err(error) = give_back(state, held).await {
                tracing::error!(%error, "could not give back an Idempotency-Key");
            }
            return Problem::from(crate::services::ServiceError::Internal(
                "the answer could not be read back".into(),
            ))
            .into_response();
        }
    };
    let stored = async {
        let mut conn = state.db.write().await?;
        if kept_for_the_key(parts.status) {
            let answer = answer_to_keep(&parts, &bytes);
            idempotency::finish(&mut conn, held, &answer).await?;
        } else {
            idempotency::release(&mut conn, held).await?;
        }
        conn.commit().await?;
        Ok::<(), crate::storage::StorageError>(())
    };
    if let Err(error) = stored.await {
        tracing::error!(%error, "could not keep the answer for an Idempotency-Key");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Whether an answer is kept for its key and replayed: only that of a call that
/// did what it asked (a success, or the `303` of a change committed whose
/// answer could not be read back). A refusal changed nothing, and what it says
/// (a missing content type, a name that breaks a rule, a quota full now, a
/// right not held yet, a conflict, a pace, a fault) may not hold a moment
/// later: the same key then runs afresh, as a client retrying with it after
/// putting the call right expects.
fn kept_for_the_key(status: StatusCode) -> bool {
    status.is_success() || status == StatusCode::SEE_OTHER
}

/// A key as this call holds it: whose, which, and when it was claimed.
type Held<'a> = (slipway_core::ids::UserId, &'a str, i64);

async fn give_back(state: &AppState, held: Held<'_>) -> Result<(), crate::storage::StorageError> {
    let mut conn = state.db.write().await?;
    idempotency::release(&mut conn, held).await?;
    conn.commit().await?;
    Ok(())
}

/// What a replay of this answer returns: the answer itself, what its handler
/// chose to keep instead (an answer that shows a secret once), or for an answer
/// too large to keep, its status and location with a note where to read it.
fn answer_to_keep(parts: &axum::http::response::Parts, bytes: &Bytes) -> StoredAnswer {
    let header_text = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let location = header_text(header::LOCATION);
    let (content_type, body) = match parts.extensions.get::<ReplayBody>() {
        Some(ReplayBody(kept)) => (header_text(header::CONTENT_TYPE), kept.clone()),
        None if bytes.len() > MAX_STORED_ANSWER => {
            tracing::warn!(
                bytes = bytes.len(),
                "an answer too large to keep for its Idempotency-Key; its replay points to its location"
            );
            let note = serde_json::json!({
                "detail": format!(
                    "the first answer to this Idempotency-Key ({} bytes) was too large to keep; read the result at its location",
                    bytes.len()
                ),
                "location": location,
            });
            (Some("application/json".to_string()), note.to_string())
        }
        None => (
            header_text(header::CONTENT_TYPE),
            String::from_utf8_lossy(bytes).into_owned(),
        ),
    };
    StoredAnswer {
        status: parts.status.as_u16(),
        content_type,
        location,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_and_body(size: usize) -> (axum::http::response::Parts, Bytes) {
        let response = Response::builder()
            .status(StatusCode::CREATED)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::LOCATION, "/api/v1/requests/7")
            .body(())
            .expect("a plain response builds");
        let (parts, ()) = response.into_parts();
        (parts, Bytes::from(vec![b'x'; size]))
    }

    #[test]
    fn a_json_body_is_the_same_call_however_it_is_spaced_or_ordered() {
        let first = br#"{"params":{"cpu_limit":31,"memory_limit_gi":4}}"#;
        for same in [
            &br#"{"params": {"cpu_limit": 31, "memory_limit_gi": 4}}"#[..],
            br#"{ "params" : { "memory_limit_gi" : 4 , "cpu_limit" : 31 } }"#,
            b"{\n  \"params\": {\n    \"cpu_limit\": 31,\n    \"memory_limit_gi\": 4\n  }\n}\n",
        ] {
            assert_eq!(canonical_body(first), canonical_body(same));
        }
        for other in [
            &br#"{"params":{"cpu_limit":32,"memory_limit_gi":4}}"#[..],
            br#"{"params":{"cpu_limit":"31","memory_limit_gi":4}}"#,
            br#"{"params":[{"cpu_limit":31},{"memory_limit_gi":4}]}"#,
        ] {
            assert_ne!(canonical_body(first), canonical_body(other));
        }
        // Lists keep their order; a body that is not JSON is taken as it is.
        assert_ne!(canonical_body(b"[1,2]"), canonical_body(b"[2,1]"));
        assert_eq!(canonical_body(b"not json"), b"not json".to_vec());
        // A key given twice is not the body with its last value.
        assert_ne!(
            canonical_body(br#"{"a":1,"a":2}"#),
            canonical_body(br#"{"a":2}"#)
        );
    }

    #[test]
    fn an_answer_within_the_limit_is_kept_as_it_was() {
        let (parts, body) = parts_and_body(1000);
        let kept = answer_to_keep(&parts, &body);
        assert_eq!(kept.status, 201);
        assert_eq!(kept.location.as_deref(), Some("/api/v1/requests/7"));
        assert_eq!(kept.body.len(), 1000);
    }

    #[test]
    fn an_answer_too_large_to_keep_is_replayed_as_a_pointer_to_its_result() {
        let (parts, body) = parts_and_body(MAX_STORED_ANSWER + 1);
        let kept = answer_to_keep(&parts, &body);
        assert_eq!(kept.status, 201, "the replay still says it was created");
        assert_eq!(kept.location.as_deref(), Some("/api/v1/requests/7"));
        assert!(kept.body.len() < 1024, "{}", kept.body);
        let note: serde_json::Value = serde_json::from_str(&kept.body).expect("the note is JSON");
        assert_eq!(note["location"], "/api/v1/requests/7");
        assert!(
            note["detail"]
                .as_str()
                .is_some_and(|d| d.contains("too large to keep")),
            "{note}"
        );
    }
}
