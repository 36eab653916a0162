//! A local SMTP sink (a real SMTP server, in process) that counts what it accepts.

use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts accepted messages.
#[derive(Clone, Default)]
pub struct Sink {
    accepted: Arc<AtomicU64>,
}

impl Handler for Sink {
    fn data_end(&mut self) -> Response {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        OK
    }
}

impl Sink {
    /// Serves on a free loopback port, in threads that live as long as the process.
    pub fn serve() -> anyhow::Result<(Self, u16)> {
        let sink = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let mut server = Server::new(sink.clone());
        server
            .with_name("sink.bench")
            .with_num_threads(64)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Ok((sink, port))
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}
