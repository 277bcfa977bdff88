//! Long answers that a client stops taking. A download holds one of a few
//! places (see `services::slots`) while it is sent, and a client that keeps
//! its connection open but stops reading would hold it for ever. The pieces
//! are made one at a time as the client asks for them: a client that asks for
//! none within [`STALL_LIMIT`] has its answer ended, cut off (it reads an
//! error, never a short answer that looks whole), and what it held given back.

use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt as _};
use tokio::sync::oneshot;

/// How long a piece of an answer waits for its client to take it.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

type Piece = Result<String, std::io::Error>;

/// What the maker hands over: a piece, or word that all of them were sent.
enum Handed {
    Piece(Piece),
    End,
}

/// `pieces`, ended when its client stops taking them for [`STALL_LIMIT`].
pub fn ending_when_stalled<S>(pieces: S) -> impl Stream<Item = Piece> + Send + 'static
where
    S: Stream<Item = Piece> + Send + 'static,
{
    ending_after(pieces, STALL_LIMIT)
}

fn ending_after<S>(pieces: S, limit: Duration) -> impl Stream<Item = Piece> + Send + 'static
where
    S: Stream<Item = Piece> + Send + 'static,
{
    // The client asks for each piece (the HTTP server polls the body when the
    // connection takes more) and the piece is made then, as an answer read
    // lazily is: a piece made ahead would be read under the rights of a
    // moment the client has not reached yet.
    let (asks, mut asked) = tokio::sync::mpsc::channel::<oneshot::Sender<Handed>>(1);
    tokio::spawn(async move {
        let mut pieces = std::pin::pin!(pieces);
        loop {
            let reply = match tokio::time::timeout(limit, asked.recv()).await {
                Ok(Some(reply)) => reply,
                // The client went away.
                Ok(None) => return,
                Err(_) => {
                    tracing::info!(
                        limit_s = limit.as_secs(),
                        "an answer was cut off: its client took nothing for too long"
                    );
                    return;
                }
            };
            let Some(piece) = pieces.next().await else {
                let _ = reply.send(Handed::End);
                return;
            };
            let _ = reply.send(Handed::Piece(piece));
        }
    });
    stream::unfold(Some(asks), |asks| async move {
        let asks = asks?;
        let (reply, answer) = oneshot::channel();
        let handed = match asks.send(reply).await {
            Ok(()) => answer.await.ok(),
            Err(_) => None,
        };
        match handed {
            Some(Handed::Piece(piece)) => Some((piece, Some(asks))),
            Some(Handed::End) => None,
            None => Some((
                Err(std::io::Error::other(
                    "the answer was cut off: its client stopped taking it",
                )),
                None,
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn an_answer_taken_to_its_end_is_whole() {
        let pieces = stream::iter(["a", "b", "c"].map(|p| Ok(p.to_string())));
        let taken: Vec<String> = ending_after(pieces, Duration::from_secs(5))
            .map(|p| p.unwrap_or_else(|e| format!("error: {e}")))
            .collect()
            .await;
        assert_eq!(taken, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn no_piece_is_made_before_it_is_asked_for() {
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&made);
        let pieces = stream::iter((0..10).map(|n| Ok(n.to_string()))).map(move |piece| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            piece
        });
        let mut answer = Box::pin(ending_after(pieces, Duration::from_secs(5)));
        assert!(answer.next().await.is_some_and(|p| p.is_ok()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_not_taken_gives_back_what_it_held_and_ends_cut_off() {
        let held = Arc::new(());
        let holder = Arc::clone(&held);
        let pieces = stream::iter((0..100).map(|n| Ok(n.to_string()))).map(move |piece| {
            let _still = &holder;
            piece
        });
        let mut answer = Box::pin(ending_after(pieces, Duration::from_millis(50)));
        assert_eq!(
            answer.next().await.and_then(Result::ok).as_deref(),
            Some("0")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(Arc::strong_count(&held), 1, "the pieces were dropped");
        let mut rest = Vec::new();
        while let Some(piece) = answer.next().await {
            rest.push(piece.is_ok());
        }
        assert_eq!(rest.last(), Some(&false), "the answer ends in an error");
        assert!(rest.len() <= 3, "{rest:?}");
    }
}
