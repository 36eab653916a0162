//! An SMTP server in this process (mailin) that keeps every email it accepts, to read back.

use mailin_embedded::response::{OK, Response};
use mailin_embedded::{Handler, Server};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One email as the SMTP server received it.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The `MAIL FROM` address (the return path; empty for `<>`).
    pub from: String,
    /// The `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message as sent (headers and body, CRLF line ends).
    pub raw: String,
}

impl Mail {
    /// The decoded body of the first part of MIME type `mime` (LF line ends); empty if none.
    pub fn part(&self, mime: &str) -> String {
        let parsed = mailparse::parse_mail(self.raw.as_bytes()).expect("a MIME message");
        parsed
            .subparts
            .iter()
            .chain(std::iter::once(&parsed))
            .find(|p| p.ctype.mimetype == mime)
            .map(|p| p.get_body().expect("decodable").replace("\r\n", "\n"))
            .unwrap_or_default()
    }

    /// A header's value as a mail client shows it: unfolded, its RFC 2047 words decoded.
    pub fn shown_header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let (headers, _) = mailparse::parse_headers(head.as_bytes()).ok()?;
        headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
    }

    /// A header's value (unfolded, not decoded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// An SMTP server that accepts everything and keeps what it receives.
#[derive(Clone, Default)]
pub struct SmtpSink {
    mails: Arc<Mutex<Vec<Mail>>>,
    /// The message being received on this connection (mailin clones the handler per
    /// connection, so this is per connection): return path, recipients, bytes.
    current: (String, Vec<String>, Vec<u8>),
    /// Holds each message this long before accepting its body, to make jobs slow.
    delay: Duration,
}

impl Handler for SmtpSink {
    fn mail(&mut self, _: std::net::IpAddr, _: &str, from: &str) -> Response {
        self.current.0 = from.to_owned();
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.current.1.push(to.to_owned());
        OK
    }

    fn data_start(&mut self, _: &str, _: &str, _: bool, _: &[String]) -> Response {
        std::thread::sleep(self.delay);
        self.current.2.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.2.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let from = std::mem::take(&mut self.current.0);
        let to = std::mem::take(&mut self.current.1);
        let raw = String::from_utf8_lossy(&std::mem::take(&mut self.current.2)).into_owned();
        self.mails
            .lock()
            .expect("the mailbox lock")
            .push(Mail { from, to, raw });
        OK
    }
}

impl SmtpSink {
    /// Starts serving on loopback `port`, holding each message `delay` before accepting it,
    /// in threads that live as long as the test process.
    pub fn serve(port: u16, delay: Duration) -> Self {
        let sink = SmtpSink {
            delay,
            ..Self::default()
        };
        let mut server = Server::new(sink.clone());
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the SMTP port is free");
        server
            .with_name("sink.test")
            .with_num_threads(64)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        sink
    }

    /// Every email accepted so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("the mailbox lock").clone()
    }
}
