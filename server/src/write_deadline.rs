//! A deadline on clients that stop reading: a connection whose writes wait on its client for
//! the whole deadline without it taking [`MIN_PROGRESS`] bytes is reset.
//!
//! hyper has no write timeout, and once a handler returns, its request's deadline and its
//! user's place are over while the response is still being written: a client that never reads
//! kept its whole response in the server's memory for as long as it held the socket (a probe
//! held 38 MB a connection, 760 MB with 20). A reset (`SO_LINGER` 0) also lets the kernel drop
//! what it still holds for the client at once, rather than keeping it as an orphan socket.
//!
//! A healthy client, an idle event stream included, never makes a write wait: the deadline only
//! runs while one does, and ends once the client took `MIN_PROGRESS` bytes or everything
//! written so far (a flush that completes).

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Bytes a waiting client must take within the deadline to keep its connection.
pub const MIN_PROGRESS: usize = 64 * 1024;

/// A client connection with a deadline on stalled writes.
pub struct WriteDeadline {
    io: TokioIo<TcpStream>,
    limit: Duration,
    /// While a write waits: the deadline, and the bytes taken since it was set.
    stalled: Option<(Pin<Box<Sleep>>, usize)>,
}

impl WriteDeadline {
    /// Wraps `socket`: a write may wait on its client for `limit`.
    pub fn new(socket: TcpStream, limit: Duration) -> Self {
        Self {
            io: TokioIo::new(socket),
            limit,
            stalled: None,
        }
    }

    /// Counts a write's answer: progress toward ending the deadline, or a wait under it (and,
    /// once it has passed, the error that ends the connection).
    fn watch<T>(&mut self, cx: &mut Context<'_>, answer: Poll<io::Result<T>>) -> Poll<io::Result<T>>
    where
        T: Taken,
    {
        match answer {
            Poll::Ready(Ok(done)) => {
                if let Some((_, taken)) = &mut self.stalled {
                    *taken += done.bytes();
                    if *taken >= MIN_PROGRESS || done.all_flushed() {
                        self.stalled = None;
                    }
                }
                Poll::Ready(Ok(done))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let limit = self.limit;
                let (deadline, _) = self
                    .stalled
                    .get_or_insert_with(|| (Box::pin(tokio::time::sleep(limit)), 0));
                if deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Drop what the kernel still holds for the client when the socket closes.
                let _ = self.io.inner().set_zero_linger();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading its response",
                )))
            }
        }
    }
}

/// What a completed write or flush handed to the client.
trait Taken {
    /// Bytes written.
    fn bytes(&self) -> usize;
    /// Whether everything written so far is with the kernel (a flush).
    fn all_flushed(&self) -> bool;
}

impl Taken for usize {
    fn bytes(&self) -> usize {
        *self
    }
    fn all_flushed(&self) -> bool {
        false
    }
}

impl Taken for () {
    fn bytes(&self) -> usize {
        0
    }
    fn all_flushed(&self) -> bool {
        true
    }
}

impl Read for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for WriteDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let answer = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, answer)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let answer = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, answer)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let answer = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, answer)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
