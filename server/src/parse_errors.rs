//! The API's JSON error body on the answers hyper writes itself, to requests it cannot parse.
//!
//! hyper answers a malformed request line or header (`400`), headers past its limits (`431`)
//! and an overlong URI (`414`) before any route runs, with a head and no body, and then closes
//! the connection; it offers no hook to change them. Wrapped around a connection, [`JsonErrors`]
//! recognises such a head among the writes (one of those three statuses with
//! `content-length: 0`, which no route of the API answers: its errors all carry a body) and
//! writes it with the body [`ApiError`] gives the same refusal instead. An answer to a `HEAD`
//! request may carry no body, so one is left as hyper wrote it (the wrapper notes the method
//! of each request as its first bytes are read).

use crate::error::ApiError;
use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// A connection whose parse-error answers carry a JSON error body.
pub struct JsonErrors<T> {
    io: T,
    /// An answer being written in place of hyper's: its bytes, how many are written, and the
    /// length of hyper's buffer it stands for.
    replacing: Option<(Vec<u8>, usize, usize)>,
    /// Whether the next bytes read begin a request: the connection's first, or the first read
    /// since an answer was written.
    request_starts: bool,
    /// Whether the request being answered is a `HEAD`.
    head: bool,
}

impl<T> JsonErrors<T> {
    /// Wraps a connection.
    pub fn new(io: T) -> Self {
        Self {
            io,
            replacing: None,
            request_starts: true,
            head: false,
        }
    }
}

/// How much of a request's first read is looked at (through a buffer of this size on the
/// stack): enough for any method.
const FIRST_READ: usize = 4096;

/// The refusal a head hyper wrote for a request it could not parse stands for, if it is one.
fn refusal(head: &[u8]) -> Option<ApiError> {
    let error = match head.get(..13)? {
        b"HTTP/1.1 400 " => ApiError::MalformedRequest,
        b"HTTP/1.1 431 " => ApiError::HeadersTooLarge,
        b"HTTP/1.1 414 " => ApiError::UriTooLong,
        _ => return None,
    };
    let whole_head =
        head.ends_with(b"\r\n\r\n") && head.windows(4).filter(|w| w == b"\r\n\r\n").count() == 1;
    let bodiless = head
        .split(|&b| b == b'\n')
        .any(|line| line.eq_ignore_ascii_case(b"content-length: 0\r"));
    (whole_head && bodiless).then_some(error)
}

/// `head` with the JSON body of `error`: the `content-length: 0` line becomes the body's type and
/// length, and the connection is announced closed (hyper closes it after such an answer).
fn with_body(head: &[u8], error: &ApiError) -> Vec<u8> {
    let (_, body) = error.status_and_body();
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut answer = Vec::with_capacity(head.len() + body.len() + 64);
    for line in head[..head.len() - 2].split_inclusive(|&b| b == b'\n') {
        if line.eq_ignore_ascii_case(b"content-length: 0\r\n") {
            answer.extend_from_slice(b"content-type: application/json\r\n");
            answer.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        } else if !line.to_ascii_lowercase().starts_with(b"connection:") {
            answer.extend_from_slice(line);
        }
    }
    answer.extend_from_slice(b"connection: close\r\n\r\n");
    answer.extend_from_slice(&body);
    answer
}

impl<T: Read + Unpin> Read for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.request_starts || buf.remaining() == 0 {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let mut first = [MaybeUninit::<u8>::uninit(); FIRST_READ];
        let want = buf.remaining().min(FIRST_READ);
        let mut read = ReadBuf::uninit(&mut first[..want]);
        ready!(Pin::new(&mut self.io).poll_read(cx, read.unfilled()))?;
        let bytes = read.filled();
        if !bytes.is_empty() {
            self.head = bytes.starts_with(b"HEAD ");
            self.request_starts = false;
        }
        buf.put_slice(bytes);
        Poll::Ready(Ok(()))
    }
}

impl<T: Write + Unpin> Write for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.request_starts = true;
        if self.replacing.is_none()
            && !self.head
            && let Some(error) = refusal(buf)
        {
            self.replacing = Some((with_body(buf, &error), 0, buf.len()));
        }
        let this = &mut *self;
        let Some((answer, written, stands_for)) = &mut this.replacing else {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        };
        while *written < answer.len() {
            let n = ready!(Pin::new(&mut this.io).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let stands_for = *stands_for;
        this.replacing = None;
        Poll::Ready(Ok(stands_for))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper writes such a head as one buffer: a lone slice goes through the check.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        match (filled.next(), filled.next()) {
            (Some(only), None) => self.poll_write(cx, only),
            _ if self.replacing.is_some() => self.poll_write(cx, &[]),
            _ => Pin::new(&mut self.io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                          content-length: 0\r\ndate: Sat, 05 Dec 2026 07:00:00 GMT\r\n\r\n";

    #[test]
    fn a_bodiless_parse_error_head_gets_the_json_body() {
        let answer = String::from_utf8(with_body(HEAD, &refusal(HEAD).unwrap())).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        assert!(
            head.contains("\r\ndate: "),
            "hyper's other headers stay: {head}"
        );
        assert_eq!(head.matches("connection: close").count(), 1, "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "headers_too_large");
    }

    #[test]
    fn other_answers_are_left_alone() {
        for head in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 57\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
        ] {
            assert!(refusal(head).is_none(), "{}", String::from_utf8_lossy(head));
        }
    }
}
