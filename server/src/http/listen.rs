//! The HTTP listener: axum's router served connection by connection on hyper,
//! with two limits `axum::serve` does not set. A client gets a time limit to send
//! a request's headers (one that sends half a request and waits would otherwise
//! hold its connection, and a shutdown, for ever), and a shutdown waits for the
//! calls in flight only as long as the grace the settings give it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceExt};

/// How long a client may take to send a request's headers, from its first byte
/// (or, on a kept-alive connection, from the end of the answer before).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The listener's time limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For a request's headers.
    pub header_read: Duration,
    /// For the calls in flight once a shutdown began.
    pub grace: Duration,
}

/// Serves `app` on `listener` until `stop` turns true, then finishes the calls
/// in flight for at most the grace and closes what is still open.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
) {
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
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
        let service = match ServiceExt::<SocketAddr>::ready(&mut make).await {
            Ok(make) => make.call(peer).await,
            Err(never) => match never {},
        };
        let service = match service {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let service =
            service.map_request(|request: Request<Incoming>| request.map(axum::body::Body::new));
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            // hyper's limit counts from a request's first byte: a client that
            // connects and sends nothing gets the same time to begin.
            let mut first = [0u8; 1];
            let begun = tokio::time::timeout(limits.header_read, stream.peek(&mut first)).await;
            if !matches!(begun, Ok(Ok(1))) {
                return;
            }
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?limits.grace,
            "connections still open when the shutdown grace ran out are closed"
        );
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
        let app = Router::new().route("/", get(|| async { "fine" }));
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
            grace: Duration::from_secs(5),
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
    async fn a_shutdown_waits_for_a_hanging_client_no_longer_than_its_grace() -> TestResult {
        let limits = Limits {
            header_read: Duration::from_secs(3600),
            grace: Duration::from_millis(300),
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
