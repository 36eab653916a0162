//! The HTTP listener: HTTP/1.1 with a cap on open connections (overall and per client network),
//! a deadline for every request's headers (which also closes idle kept-alive connections) and
//! for clients that stop reading their responses, the JSON error body on what the HTTP parser
//! refuses, the peer address on each request, and a graceful stop.
//!
//! `axum::serve` runs hyper without a timer, so no header deadline applies there: a client
//! sending a header line every few seconds (or nothing) could hold a connection forever.

use crate::client_addr::TrustedProxies;
use crate::parse_errors::JsonErrors;
use crate::write_deadline::WriteDeadline;
use axum::Router;
use axum::extract::ConnectInfo;
use convos_plumbing::networks::PerNetwork;
use hyper::body::Incoming;
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a stop waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// What bounds the connections of one listener.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once; further ones wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// Connections one client network (an IPv4 address, an IPv6 /64) may hold open at once,
    /// and twice that one IPv6 /48 (decision 64); one more is closed as soon as it is
    /// accepted. Trusted proxies are exempt: their connections carry everyone's requests.
    pub max_per_addr: usize,
    /// Peers exempt from the per-address cap.
    pub proxies: Arc<TrustedProxies>,
    /// Time a client has to send a request's headers, counted from when the server starts
    /// waiting for them (so it is also the idle time allowed between kept-alive requests).
    pub header_timeout: Duration,
    /// Time a response's writes may wait on a client that does not read (see
    /// [`crate::write_deadline`]).
    pub write_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` is cancelled, then stops accepting and waits for
/// open connections to finish their requests (event streams end through the same token).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_network = PerNetwork::default();
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(64)
        .max_buf_size(64 * 1024);
    loop {
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (socket, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: keep the
                    // listener alive, and give the process a moment to free resources.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let held = if limits.proxies.trusts(peer.ip()) {
            None
        } else {
            match per_network.take(peer.ip(), limits.max_per_addr) {
                Some(held) => Some(held),
                None => {
                    tracing::debug!(%peer, "too many connections from this network; closed");
                    continue;
                }
            }
        };
        let _ = socket.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(
            JsonErrors::new(WriteDeadline::new(socket, limits.write_timeout)),
            service,
        ));
        tokio::spawn(async move {
            let (_slot, _held) = (slot, held);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Responses still being written get a minute: a client reading at the write deadline's
    // minimum rate could otherwise hold the stop for as long as it liked.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("stopped with connections still open after the grace period");
    }
    Ok(())
}
