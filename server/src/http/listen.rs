//! The HTTP listener: axum's router served connection by connection on hyper's
//! HTTP/1, with limits `axum::serve` does not set. A client gets a time limit
//! to send a request's headers and another for its body (one that sends half a
//! request and waits would otherwise hold its connection, and a shutdown, for
//! ever); only so many connections are open at once, fewer than the process
//! has file descriptors (past them, accepting waits, instead of the database,
//! git and every other file failing); and a shutdown waits for the calls in
//! flight only as long as the grace the settings give it, then drops the
//! connections still open.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::{Service, ServiceExt};

use super::deadline_body::DeadlineBody;

/// How long a client may take to send a request's headers, from connecting or,
/// on a kept-alive connection, from the answer before: so also how long an idle
/// kept-alive connection stays open. Longer than the 60 s a reverse proxy or a
/// load balancer keeps its idle connections to the server (nginx, AWS's), so the
/// proxy, not Slipway, closes one: a proxy that reused a connection just as the
/// server closed it would answer its caller 502.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(75);

/// How long a client may take to send a request's body once its headers came:
/// the largest the server takes (256 KiB) arrives far sooner on any link.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The listener's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For a request's headers.
    pub header_read: Duration,
    /// For a request's body, from its headers.
    pub body_read: Duration,
    /// For the calls in flight once a shutdown began.
    pub grace: Duration,
    /// Connections open at once.
    pub connections: usize,
}

impl Limits {
    /// The limits a server runs with, the grace from its settings.
    pub fn serving(grace: Duration) -> Limits {
        Limits {
            header_read: HEADER_READ_TIMEOUT,
            body_read: BODY_READ_TIMEOUT,
            grace,
            connections: connection_cap(),
        }
    }
}

/// The most connections served at once, however many descriptors there are.
const MOST_CONNECTIONS: u64 = 65_536;

/// Half the file descriptors the process may open, after raising its limit as
/// far as the system lets it (often from 1,024), up to what the cap needs
/// (commands and git inherit the limit, and some walk every descriptor it
/// allows when they start): the other half is for the database, git, commands
/// and files. At least 64, at most [`MOST_CONNECTIONS`].
fn connection_cap() -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = limit
        .maximum
        .map_or(2 * MOST_CONNECTIONS, |most| most.min(2 * MOST_CONNECTIONS));
    if limit.current.is_some_and(|current| current < wanted) {
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%error, "the limit of open files stays as it was");
        }
    }
    let open_files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    usize::try_from((open_files / 2).clamp(64, MOST_CONNECTIONS)).unwrap_or(64)
}

/// Serves `app` on `listener` until `stop` turns true, then finishes the calls
/// in flight for at most the grace and drops the connections still open.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
) {
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let open = std::sync::Arc::new(Semaphore::new(limits.connections));
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stopping(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: wait a moment, not spin.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopping(&mut stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let service = match ServiceExt::<SocketAddr>::ready(&mut make).await {
            Ok(make) => make.call(peer).await,
            Err(never) => match never {},
        };
        let service = match service {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let body_read = limits.body_read;
        let service = service.map_request(move |request: Request<Incoming>| {
            request.map(|body| axum::body::Body::new(DeadlineBody::new(body, body_read)))
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let mut closed = closed.clone();
        connections.spawn(async move {
            let _open = permit;
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = stopping(&mut closed) => {
                    // The call in flight finishes; an idle connection closes now.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let finished = tokio::time::timeout(limits.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            grace = ?limits.grace,
            open = connections.len(),
            "connections still open when the shutdown grace ran out are dropped"
        );
        connections.shutdown().await;
    }
}

/// Until `stop` turns true (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    async fn started(
        limits: Limits,
    ) -> std::io::Result<(SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().route(
            "/",
            get(|| async { "fine" }).post(|body: String| async move { body }),
        );
        let (stop, stopped) = watch::channel(false);
        let served = tokio::spawn(serve(listener, app, stopped, limits));
        Ok((addr, stop, served))
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut TcpStream, what: &str) -> String {
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
        assert!(
            read.is_ok(),
            "the server still holds the connection of {what}"
        );
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() -> TestResult {
        let limits = Limits {
            header_read: Duration::from_millis(300),
            ..Limits::serving(Duration::from_secs(5))
        };
        let (addr, stop, served) = started(limits).await?;
        let mut half = TcpStream::connect(addr).await?;
        half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await?;
        let answer = until_closed(&mut half, "half a request").await;
        assert!(!answer.contains("fine"), "{answer}");
        // Nor may one that connects and sends nothing hold on.
        let mut silent = TcpStream::connect(addr).await?;
        let answer = until_closed(&mut silent, "a silent client").await;
        assert!(answer.is_empty(), "{answer}");
        // A whole request is answered as before; the connection kept alive after
        // it is closed once it idles past the limit.
        let mut whole = TcpStream::connect(addr).await?;
        whole
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let answer = until_closed(&mut whole, "a kept-alive connection").await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("fine"),
            "{answer}"
        );
        stop.send(true)?;
        served.await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_body_is_cut_off() -> TestResult {
        let limits = Limits {
            body_read: Duration::from_millis(300),
            ..Limits::serving(Duration::from_secs(5))
        };
        let (addr, stop, served) = started(limits).await?;
        let mut slow = TcpStream::connect(addr).await?;
        slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
            .await?;
        let answer = until_closed(&mut slow, "half a body").await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        // A body sent in time is read whole.
        let mut whole = TcpStream::connect(addr).await?;
        whole
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
            .await?;
        let mut answer = [0u8; 256];
        let read = whole.read(&mut answer).await?;
        assert!(String::from_utf8_lossy(&answer[..read]).ends_with("body"));
        stop.send(true)?;
        served.await?;
        Ok(())
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_for_one_to_close() -> TestResult {
        let limits = Limits {
            connections: 1,
            ..Limits::serving(Duration::from_secs(5))
        };
        let (addr, stop, served) = started(limits).await?;
        let first = TcpStream::connect(addr).await?;
        let mut second = TcpStream::connect(addr).await?;
        second
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = [0u8; 256];
        let waited =
            tokio::time::timeout(Duration::from_millis(300), second.read(&mut answer)).await;
        assert!(waited.is_err(), "served past the cap");
        drop(first);
        let answer = until_closed(&mut second, "the second connection").await;
        assert!(answer.ends_with("fine"), "{answer}");
        stop.send(true)?;
        served.await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_shutdown_closes_idle_connections_at_once() -> TestResult {
        let limits = Limits {
            header_read: Duration::from_secs(3600),
            ..Limits::serving(Duration::from_secs(3600))
        };
        let (addr, stop, served) = started(limits).await?;
        let _silent = TcpStream::connect(addr).await?;
        let mut kept = TcpStream::connect(addr).await?;
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let mut answer = [0u8; 256];
        let read = kept.read(&mut answer).await?;
        assert!(String::from_utf8_lossy(&answer[..read]).ends_with("fine"));
        stop.send(true)?;
        // Neither waits for the hour's grace: nothing of theirs is in flight.
        tokio::time::timeout(Duration::from_secs(20), served).await??;
        let answer = until_closed(&mut kept, "a kept-alive connection").await;
        assert!(answer.is_empty(), "{answer}");
        Ok(())
    }

    #[tokio::test]
    async fn a_shutdown_waits_for_a_hanging_client_no_longer_than_its_grace() -> TestResult {
        let limits = Limits {
            header_read: Duration::from_secs(3600),
            ..Limits::serving(Duration::from_millis(300))
        };
        let (addr, stop, served) = started(limits).await?;
        let mut half = TcpStream::connect(addr).await?;
        half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = Instant::now();
        stop.send(true)?;
        tokio::time::timeout(Duration::from_secs(20), served).await??;
        assert!(
            asked.elapsed() >= Duration::from_millis(300),
            "the grace was given"
        );
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener is closed"
        );
        Ok(())
    }
}
