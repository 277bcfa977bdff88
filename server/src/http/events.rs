//! A request's live progress as server-sent events, for the portal (session) and
//! the REST API (token) alike. The stream follows the database, not this process,
//! so it shows a job that another replica runs: it polls for events after the last
//! one sent, each sent with its id as the SSE `id` so that a reconnecting client's
//! `Last-Event-ID` resumes after it. It ends with an `end` event once the request
//! settled and every event was sent; it also ends when the server shuts down and
//! after a while (clients reconnect and resume).

use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt as _};
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::{ProgressEnd, ProgressEvent};
use tokio::time::Instant;

use crate::services::detail::{self, ProgressPage};
use crate::services::{Caller, ServiceResult};
use crate::state::AppState;

/// How often a stream asks the database for what is new.
pub const POLL_EVERY: Duration = Duration::from_millis(400);
/// The most events one poll sends; more are sent by the next poll at once.
pub const MAX_EVENTS_PER_POLL: i64 = 200;
/// How long one stream lives before the client is made to reconnect (and be
/// authorised again from its session or token).
pub const MAX_STREAM_LIFE: Duration = Duration::from_secs(60);
/// How often a stream asks again whether its caller still stands (the token
/// usable, the account allowed to act, with its teams as they are now): a
/// revoked token, a disabled account or a person moved out of the team stops
/// following within this long, not a stream's whole life; so does a portal
/// session signed out in another tab or ended from the sessions page.
pub const STANDING_CHECKED_EVERY: Duration = Duration::from_secs(5);
/// How long a browser waits before it reconnects a stream that ended early.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// The header a reconnecting `EventSource` sends.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// Where a stream starts: after the `Last-Event-ID` of a reconnect, else after
/// `after` (a page starts after the events it already shows), else at the start.
/// A `Last-Event-ID` that is not an event id is refused: starting over instead
/// would send a client events it has shown already, silently.
pub fn resume_point(headers: &HeaderMap, after: Option<i64>) -> ServiceResult<i64> {
    let Some(given) = headers.get(LAST_EVENT_ID) else {
        return Ok(after.unwrap_or(0).max(0));
    };
    // A browser's `EventSource` sends an empty one when no event had an id yet.
    let text = given.to_str().map(str::trim).unwrap_or("garbled");
    if text.is_empty() {
        return Ok(after.unwrap_or(0).max(0));
    }
    match text.parse::<i64>() {
        Ok(id) if id >= 0 => Ok(id),
        _ => Err(crate::services::ServiceError::Invalid(vec![
            slipway_core::validate::FieldError::new(
                "Last-Event-ID",
                "must be the id of an event this stream sent (a whole number, 0 or more)",
            ),
        ])),
    }
}

/// The events of request `id` after event `after`, as `caller` may view them. The
/// first page is read (and the caller authorised) before any byte is sent, so a
/// refusal is an error answer, never an empty stream.
pub async fn progress_stream(
    state: AppState,
    caller: Caller,
    id: RequestId,
    after: i64,
) -> ServiceResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let first = detail::progress_after(&state, &caller, id, after, MAX_EVENTS_PER_POLL).await?;
    let slot = state.streams.take(&caller.username)?;
    let follower = Follower {
        _slot: slot,
        deadline: Instant::now() + MAX_STREAM_LIFE,
        state,
        caller,
        id,
        after,
        first: Some(first),
        full: false,
        ended: false,
        standing_checked: Instant::now(),
    };
    let events = stream::unfold(follower, next_events)
        .flat_map(stream::iter)
        .map(Ok);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

struct Follower {
    /// Held while the stream lives.
    _slot: crate::services::slots::Slot,
    state: AppState,
    caller: Caller,
    id: RequestId,
    /// The id of the last event sent.
    after: i64,
    /// The page read when the stream opened, not sent yet.
    first: Option<ProgressPage>,
    /// The last poll sent all it may: poll again at once.
    full: bool,
    ended: bool,
    deadline: Instant,
    /// When the caller was last found still standing.
    standing_checked: Instant,
}

/// The next events to send, none when this poll found nothing new, or the end
/// of the stream.
async fn next_events(mut follower: Follower) -> Option<(Vec<Event>, Follower)> {
    if follower.ended {
        return None;
    }
    let mut events = Vec::new();
    let page = match follower.first.take() {
        Some(page) => {
            events.push(Event::default().retry(RECONNECT_AFTER));
            page
        }
        None => {
            if !follower.full {
                let wake = (Instant::now() + POLL_EVERY).min(follower.deadline);
                tokio::select! {
                    _ = follower.state.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep_until(wake) => {}
                }
            }
            if Instant::now() >= follower.deadline || follower.state.shutdown.is_cancelled() {
                return None;
            }
            if follower.standing_checked.elapsed() >= STANDING_CHECKED_EVERY {
                match crate::services::tokens::still_standing(&follower.state, &follower.caller)
                    .await
                {
                    Ok(now) => follower.caller = now,
                    Err(error) => {
                        tracing::info!(%error, request_id = %follower.id, "a progress stream's caller no longer stands");
                        return None;
                    }
                }
                follower.standing_checked = Instant::now();
            }
            let polled = detail::progress_after(
                &follower.state,
                &follower.caller,
                follower.id,
                follower.after,
                MAX_EVENTS_PER_POLL,
            )
            .await;
            match polled {
                Ok(page) => page,
                Err(error) => {
                    // The client reconnects and is answered (or refused) afresh.
                    tracing::info!(%error, request_id = %follower.id, "a progress stream ended early");
                    return None;
                }
            }
        }
    };
    follower.full = page.events.len() as i64 >= MAX_EVENTS_PER_POLL;
    if let Some(last) = page.events.last() {
        follower.after = last.id;
    }
    events.extend(page.events.iter().filter_map(progress_event));
    if let Some(settled) = page.settled {
        events.extend(end_event(settled));
        follower.ended = true;
    }
    Some((events, follower))
}

fn progress_event(event: &ProgressEvent) -> Option<Event> {
    Event::default()
        .id(event.id.to_string())
        .event(event.kind.as_str())
        .json_data(event)
        .inspect_err(|error| tracing::error!(%error, "could not encode a progress event"))
        .ok()
}

/// The last event: it has no id, so a client's `Last-Event-ID` stays on the last
/// progress it saw.
fn end_event(state: RequestState) -> Option<Event> {
    Event::default()
        .event("end")
        .json_data(ProgressEnd { state })
        .inspect_err(|error| tracing::error!(%error, "could not encode the end event"))
        .ok()
}

#[cfg(test)]
mod tests {
    use crate::services::ServiceError;
    use crate::services::slots::{PROGRESS_STREAMS, Slot, Slots};

    #[test]
    fn streams_are_bounded_per_person_and_in_all() {
        let slots = Slots::new(&PROGRESS_STREAMS);
        let mine: Vec<Slot> = (0..8).filter_map(|_| slots.take("alice").ok()).collect();
        assert_eq!(mine.len(), 8);
        let refused = slots.take("alice").err().map(|e| e.to_string());
        assert!(
            refused.is_some_and(|m| m.contains("at most 8")),
            "a ninth stream of one person"
        );
        let bobs = slots.take("bob");
        assert!(bobs.is_ok(), "others are not held up");
        drop(mine);
        assert_eq!(slots.open(), 1, "ended streams give their places back");
        let many: Vec<Slot> = (0..256)
            .filter_map(|n| slots.take(&format!("user-{n}")).ok())
            .collect();
        assert_eq!(many.len(), 255);
        assert!(matches!(
            slots.take("carol"),
            Err(ServiceError::TooMany(..))
        ));
    }
}
