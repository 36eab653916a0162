//! The SMTP listener for the reply domain (decision 26): receives replies, bounces and
//! complaints, keeps each message in PostgreSQL with its job, and only then answers `250`.
//!
//! It is a receiver, never a relay: `RCPT TO` accepts only genuine `reply+…` and `bounce+…`
//! addresses at the reply domain (their signature is checked there, so a made-up address
//! costs no storage); each address takes at most `inbound_per_address_per_day` messages a day,
//! and all of one user's `inbound_per_user_per_day` (decision 69). Every client gets bounded
//! work: at most `inbound_max_connections` sessions at once, and
//! `inbound_max_connections_per_addr` of them from one client network other than the
//! `inbound_relays` (the rest are told `421` to come back), a minute per line (the whole line,
//! however it trickles in), ten minutes per session, lines of at most 1,000 bytes outside a
//! message, messages of at most `inbound_max_bytes`, 20 recipients, 10 errors. A database
//! failure answers `451`, so the sending server keeps the
//! message and tries again: nothing accepted is lost, nothing is accepted before it is kept.

use crate::Ctx;
use convos_core::reply_address;
use convos_plumbing::inbound_caps;
use convos_plumbing::networks::{Networks, PerNetwork};
use convos_plumbing::rate_limit::Decision;
use convos_store::inbound::{self, Received, Via};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a client may take to send one line.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one session may last.
const SESSION_LIMIT: Duration = Duration::from_secs(600);
/// Longest command line (RFC 5321 allows 512; extensions' parameters need more).
const MAX_COMMAND: usize = 1_000;
/// Recipients per message.
const MAX_RECIPIENTS: usize = 20;
/// Errors before the session is closed.
const MAX_ERRORS: usize = 10;

/// One reply: a code and its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Its text, one entry per line.
    pub lines: Vec<String>,
}

impl Reply {
    fn new(code: u16, text: impl Into<String>) -> Self {
        Self {
            code,
            lines: vec![text.into()],
        }
    }

    fn is_error(&self) -> bool {
        self.code >= 400
    }

    fn wire(&self) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i + 1 == self.lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{}{sep}{line}\r\n", self.code));
        }
        out
    }
}

/// What the session does after a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Answer and read the next command.
    Reply(Reply),
    /// Answer `354` and read the message.
    Data,
    /// Answer and close.
    Close(Reply),
}

/// The command state of one session: pure, so its rules are tested without sockets.
#[derive(Clone, Debug)]
pub struct Session {
    domain: String,
    /// The key reply addresses are signed with.
    secret: String,
    max_bytes: usize,
    greeted: bool,
    from: Option<String>,
    to: Vec<String>,
}

/// The address inside `<...>` after `prefix` (case-insensitive), and the parameters after it.
fn path<'a>(line: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let head = line.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = line[prefix.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let (address, params) = rest.split_once('>')?;
    Some((address.trim(), params.trim()))
}

impl Session {
    /// A new session for mail to the addresses signed with `secret` at `domain`, taking
    /// messages up to `max_bytes`.
    pub fn new(domain: &str, secret: &str, max_bytes: usize) -> Self {
        Self {
            domain: domain.to_owned(),
            secret: secret.to_owned(),
            max_bytes,
            greeted: false,
            from: None,
            to: Vec::new(),
        }
    }

    /// The greeting.
    pub fn greeting(&self) -> Reply {
        Reply::new(220, format!("{} Convos ESMTP", self.domain))
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    /// Answers one command line (without its line end).
    pub fn command(&mut self, line: &str) -> Next {
        if line.chars().any(|c| c.is_control() && c != '\t') {
            // A NUL in an address could not be kept (a text column), and was answered `451`:
            // the sending server would have retried for days.
            return Next::Reply(Reply::new(501, "5.5.2 control characters in the command"));
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" | "HELO" if line.split_whitespace().nth(1).is_none() => {
                Reply::new(501, "5.5.4 say who you are")
            }
            "EHLO" => {
                self.greeted = true;
                self.reset();
                Reply {
                    code: 250,
                    lines: vec![
                        self.domain.clone(),
                        format!("SIZE {}", self.max_bytes),
                        "8BITMIME".into(),
                        "PIPELINING".into(),
                        "ENHANCEDSTATUSCODES".into(),
                    ],
                }
            }
            "HELO" => {
                self.greeted = true;
                self.reset();
                Reply::new(250, self.domain.clone())
            }
            "MAIL" if !self.greeted => Reply::new(503, "5.5.1 EHLO first"),
            "MAIL" if self.from.is_some() => Reply::new(503, "5.5.1 one message at a time"),
            "MAIL" => match path(line, "MAIL FROM:") {
                None => Reply::new(501, "5.5.4 syntax: MAIL FROM:<address>"),
                Some((_, params)) if self.too_big(params) => {
                    Reply::new(552, "5.3.4 message too big")
                }
                Some((from, _)) => {
                    self.from = Some(from.to_owned());
                    Reply::new(250, "2.1.0 ok")
                }
            },
            "RCPT" if self.from.is_none() => Reply::new(503, "5.5.1 MAIL first"),
            "RCPT" => match path(line, "RCPT TO:") {
                None => Reply::new(501, "5.5.4 syntax: RCPT TO:<address>"),
                Some(_) if self.to.len() >= MAX_RECIPIENTS => {
                    Reply::new(452, "4.5.3 too many recipients")
                }
                Some((to, _)) if reply_address::parse(&self.secret, to, &self.domain).is_some() => {
                    self.to.push(to.to_owned());
                    Reply::new(250, "2.1.5 ok")
                }
                Some(_) => Reply::new(550, "5.1.1 no such address here"),
            },
            "DATA" if self.to.is_empty() => Reply::new(503, "5.5.1 RCPT first"),
            "DATA" => return Next::Data,
            "RSET" => {
                self.reset();
                Reply::new(250, "2.0.0 ok")
            }
            "NOOP" => Reply::new(250, "2.0.0 ok"),
            "VRFY" => Reply::new(252, "2.5.0 send some mail, we will see"),
            "QUIT" => return Next::Close(Reply::new(221, "2.0.0 bye")),
            _ => Reply::new(500, "5.5.2 command not recognised"),
        };
        Next::Reply(reply)
    }

    fn too_big(&self, params: &str) -> bool {
        params.split_whitespace().any(|p| {
            p.get(..5).is_some_and(|k| k.eq_ignore_ascii_case("SIZE="))
                && p[5..].parse::<usize>().is_ok_and(|n| n > self.max_bytes)
        })
    }

    /// The envelope of the message just received; the session is ready for the next one.
    pub fn take_envelope(&mut self) -> (Option<String>, Vec<String>) {
        let envelope = (self.from.take(), std::mem::take(&mut self.to));
        self.reset();
        envelope
    }
}

/// Serves SMTP on `listener` until `cancel`.
pub async fn serve(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    domain: String,
    cancel: CancellationToken,
) {
    // Strangers share `inbound_max_connections` places; the relays have as many of their own,
    // so no number of strangers' sessions (four networks' worth filled them all) keeps the MX
    // and everything it carries out.
    let places = ctx.settings.inbound_max_connections.max(1);
    let permits = Arc::new(Semaphore::new(places));
    let relay_permits = Arc::new(Semaphore::new(places));
    let per_network = PerNetwork::default();
    // Checked when the settings were loaded.
    let relays = Networks::parse(&ctx.settings.inbound_relays).unwrap_or_default();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "smtp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let relay = relays.contains(peer.ip());
        let held = if relay {
            None
        } else {
            let held = per_network.take(peer.ip(), ctx.settings.inbound_max_connections_per_addr);
            if held.is_none() {
                let busy = Reply::new(421, "4.7.0 too many connections from your network");
                turn_away(stream, busy);
                continue;
            }
            held
        };
        let places = if relay { &relay_permits } else { &permits };
        let Ok(permit) = places.clone().try_acquire_owned() else {
            turn_away(
                stream,
                Reply::new(421, format!("4.3.2 {domain} busy, try again later")),
            );
            continue;
        };
        let (ctx, domain, cancel) = (ctx.clone(), domain.clone(), cancel.clone());
        tokio::spawn(async move {
            let session = run_session(&ctx, &mut stream, &domain);
            tokio::select! {
                () = cancel.cancelled() => {}
                result = tokio::time::timeout(SESSION_LIMIT, session) => {
                    if let Ok(Err(e)) = result {
                        tracing::debug!(error = %e, %peer, "smtp session ended");
                    }
                }
            }
            drop((permit, held));
        });
    }
}

/// Tells a client there is no session for it now (`421`: come back later), and closes.
fn turn_away(mut stream: TcpStream, reply: Reply) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            stream.write_all(reply.wire().as_bytes()),
        )
        .await;
    });
}

async fn send(out: &mut (impl AsyncWrite + Unpin), reply: &Reply) -> std::io::Result<()> {
    out.write_all(reply.wire().as_bytes()).await?;
    out.flush().await
}

/// Reads one line of at most `max` bytes (its line end included) within [`LINE_TIMEOUT`];
/// `None` at end of input.
/// A longer line is read to its end and reported as `Err(TooLong)` in the `Ok` (kept reading,
/// so the session stays in step).
async fn read_line(
    input: &mut (impl tokio::io::AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    // One deadline for the whole line: a byte every few seconds kept a session (and one of the
    // listener's slots) alive for its ten minutes when each read had a minute of its own.
    let deadline = tokio::time::Instant::now() + LINE_TIMEOUT;
    loop {
        let chunk = tokio::time::timeout_at(deadline, input.fill_buf())
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "line timeout"))??;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() && !too_long {
                None
            } else {
                Some(!too_long)
            });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > max {
            too_long = true;
        } else {
            buf.extend_from_slice(&chunk[..take]);
        }
        input.consume(take);
        if done {
            return Ok(Some(!too_long));
        }
    }
}

async fn run_session(
    ctx: &Ctx,
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    domain: &str,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut input = BufReader::new(read);
    let max_bytes = ctx.settings.inbound_max_bytes;
    let mut session = Session::new(domain, &ctx.email.secret_key, max_bytes);
    send(&mut write, &session.greeting()).await?;
    let mut line = Vec::new();
    let mut errors = 0;
    loop {
        let Some(fits) = read_line(&mut input, &mut line, MAX_COMMAND).await? else {
            return Ok(());
        };
        let next = if fits {
            let text = String::from_utf8_lossy(&line);
            session.command(text.trim_end_matches(['\r', '\n']))
        } else {
            Next::Reply(Reply::new(500, "5.5.6 line too long"))
        };
        let reply = match next {
            Next::Close(reply) => return send(&mut write, &reply).await,
            Next::Reply(reply) => reply,
            Next::Data => {
                send(&mut write, &Reply::new(354, "end with <CRLF>.<CRLF>")).await?;
                let Some(message) = read_message(&mut input, max_bytes).await? else {
                    return Ok(());
                };
                let (from, to) = session.take_envelope();
                match message {
                    None => Reply::new(552, "5.3.4 message too big"),
                    Some(_) if !within_daily_cap(ctx, &to, domain).await => {
                        ctx.metrics
                            .inbound
                            .with_label_values(&["smtp", "over_cap"])
                            .inc();
                        Reply::new(452, "4.2.2 this address takes no more mail today")
                    }
                    Some(raw) => keep(ctx, from.as_deref(), &to, &raw).await,
                }
            }
        };
        if reply.is_error() {
            errors += 1;
        }
        send(&mut write, &reply).await?;
        if errors >= MAX_ERRORS {
            return send(&mut write, &Reply::new(421, "4.7.0 too many errors")).await;
        }
    }
}

/// Reads a message up to the lone `.` line (`.<CRLF>`), unstuffing dots. `Ok(None)` if the client went
/// away; `Ok(Some(None))` if it was larger than `max` (read to its end, not kept).
async fn read_message(
    input: &mut (impl tokio::io::AsyncBufRead + Unpin),
    max: usize,
) -> std::io::Result<Option<Option<Vec<u8>>>> {
    let mut raw = Vec::new();
    let mut line = Vec::new();
    let mut too_big = false;
    // Whether the line before ended in CRLF (the `DATA` command's did).
    let mut after_crlf = true;
    loop {
        // A line longer than the whole allowance makes the message too big anyway.
        let Some(fits) = read_line(input, &mut line, max + 3).await? else {
            return Ok(None);
        };
        // Only `<CRLF>.<CRLF>` ends the data: `<LF>.<LF>` and `<LF>.<CRLF>` ended it too, so a
        // message could carry SMTP commands the listener then read as the client's (SMTP
        // smuggling).
        if after_crlf && line == b".\r\n" {
            return Ok(Some((!too_big).then_some(raw)));
        }
        after_crlf = line.ends_with(b"\r\n");
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if !fits || raw.len() + content.len() > max {
            too_big = true;
            raw.clear();
        } else if !too_big {
            raw.extend_from_slice(content);
        }
    }
}

/// Whether every address in `to`, and each address's owner, may take one more message today
/// (decision 69; the webhook counts in the same keys).
async fn within_daily_cap(ctx: &Ctx, to: &[String], domain: &str) -> bool {
    let tokens: Vec<reply_address::Token> = to
        .iter()
        .filter_map(|address| reply_address::parse(&ctx.email.secret_key, address, domain))
        .collect();
    let mut redis = ctx.redis.clone();
    let caps = ctx.settings.inbound_caps();
    let prefix = &ctx.settings.redis_prefix;
    inbound_caps::hit(&ctx.db, &mut redis, prefix, caps, &tokens).await == Decision::Allowed
}

/// Keeps the message and its job; the answer says whether the sender may forget it.
async fn keep(ctx: &Ctx, from: Option<&str>, to: &[String], raw: &[u8]) -> Reply {
    let received = Received {
        via: Via::Smtp,
        envelope_from: from,
        envelope_to: to,
        raw,
    };
    match inbound::accept(&ctx.db, received).await {
        Ok(written) => {
            let id = ctx.committed(written);
            ctx.metrics
                .inbound
                .with_label_values(&["smtp", "accepted"])
                .inc();
            Reply::new(250, format!("2.0.0 queued as {id}"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not keep a received message; the sender will retry");
            ctx.metrics
                .inbound
                .with_label_values(&["smtp", "deferred"])
                .inc();
            Reply::new(451, "4.3.0 could not keep the message now, try again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(session: &mut Session, lines: &[&str]) -> Vec<u16> {
        lines
            .iter()
            .map(|l| match session.command(l) {
                Next::Reply(r) | Next::Close(r) => r.code,
                Next::Data => 354,
            })
            .collect()
    }

    /// A genuine reply address at `domain`, signed with "secret".
    fn genuine(domain: &str) -> String {
        reply_address::address(
            "secret",
            reply_address::Purpose::Reply,
            convos_core::MessageId::generate(),
            chrono::Utc::now(),
            domain,
        )
    }

    #[test]
    fn a_reply_is_taken_for_our_genuine_addresses_only() {
        let mut s = Session::new("reply.convos.test", "secret", 1000);
        let ours = genuine("reply.convos.test").to_uppercase();
        let made_up = format!("reply+{}@reply.convos.test", "a".repeat(52));
        let codes = replies(
            &mut s,
            &[
                "EHLO mx.example.com",
                "MAIL FROM:<bob@example.com> SIZE=200 BODY=8BITMIME",
                "RCPT TO:<postmaster@reply.convos.test>",
                "RCPT TO:<someone@elsewhere.test>",
                &format!("RCPT TO:<{made_up}>"),
                &format!("RCPT TO:<{ours}>"),
                "DATA",
            ],
        );
        assert_eq!(codes, [250, 250, 550, 550, 550, 250, 354]);
        let (from, to) = s.take_envelope();
        assert_eq!(from.as_deref(), Some("bob@example.com"));
        assert_eq!(to, [ours]);
    }

    #[test]
    fn commands_out_of_order_are_refused() {
        let mut s = Session::new("d.test", "secret", 1000);
        assert_eq!(
            replies(
                &mut s,
                &[
                    "MAIL FROM:<a@b.c>",
                    "HELO",
                    "HELO x",
                    "DATA",
                    &format!("RCPT TO:<{}>", genuine("d.test")),
                ]
            ),
            [503, 501, 250, 503, 503]
        );
    }

    #[test]
    fn a_declared_size_over_the_limit_is_refused_up_front() {
        let mut s = Session::new("d.test", "secret", 1000);
        assert_eq!(
            replies(
                &mut s,
                &[
                    "EHLO x",
                    "MAIL FROM:<a@b.c> SIZE=1001",
                    "MAIL FROM:<> SIZE=1000"
                ]
            ),
            [250, 552, 250]
        );
    }

    #[test]
    fn recipients_are_capped() {
        let mut s = Session::new("d.test", "secret", 1000);
        s.command("EHLO x");
        s.command("MAIL FROM:<>");
        let codes: Vec<u16> = (0..=MAX_RECIPIENTS)
            .map(
                |_| match s.command(&format!("RCPT TO:<{}>", genuine("d.test"))) {
                    Next::Reply(r) => r.code,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert!(codes[..MAX_RECIPIENTS].iter().all(|&c| c == 250));
        assert_eq!(codes[MAX_RECIPIENTS], 452);
    }

    #[tokio::test]
    async fn a_message_is_unstuffed_and_a_large_one_is_read_to_its_end_but_not_kept() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\nend\r\n.\r\nNEXT\r\n";
        let mut reader = BufReader::new(&input[..]);
        let message = read_message(&mut reader, 1000).await.unwrap().unwrap();
        assert_eq!(
            message.unwrap(),
            b"Subject: x\r\n\r\n.leading dot\r\nend\r\n"
        );
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, "NEXT\r\n", "the session stays in step");

        let big = [b"x".repeat(50), b"\r\n".to_vec()].concat().repeat(10);
        let input = [big, b".\r\nQUIT\r\n".to_vec()].concat();
        let mut reader = BufReader::new(&input[..]);
        assert_eq!(read_message(&mut reader, 100).await.unwrap(), Some(None));
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, "QUIT\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_trickled_a_byte_at_a_time_runs_out_of_time() {
        // Slowloris: one byte every 25 s, never a line end. Each read got a minute of its own,
        // so the session held its slot until the ten-minute limit.
        let (client, server) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let mut client = client;
            while client.write_all(b"N").await.is_ok() {
                tokio::time::sleep(Duration::from_secs(25)).await;
            }
        });
        let mut reader = BufReader::new(server);
        let started = tokio::time::Instant::now();
        let read = tokio::time::timeout(
            SESSION_LIMIT,
            read_line(&mut reader, &mut Vec::new(), MAX_COMMAND),
        )
        .await
        .expect("the line's own deadline ends it");
        assert_eq!(read.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() <= LINE_TIMEOUT + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn only_crlf_dot_crlf_ends_a_message() {
        // A bare `.<LF>` inside the data is content, not the end: what follows it is not read
        // as the client's next command (SMTP smuggling).
        let input = b"first\n.\nMAIL FROM:<b@evil.test>\r\nlast\r\n.\r\nQUIT\r\n";
        let mut reader = BufReader::new(&input[..]);
        let message = read_message(&mut reader, 1000).await.unwrap().unwrap();
        assert_eq!(
            message.unwrap(),
            b"first\n\nMAIL FROM:<b@evil.test>\r\nlast\r\n"
        );
        // `<LF>.<CRLF>`, the variant of the published research, is not the end either.
        let input = b"first\n.\r\nMAIL FROM:<b@evil.test>\r\n.\r\nQUIT\r\n";
        let mut reader = BufReader::new(&input[..]);
        let message = read_message(&mut reader, 1000).await.unwrap().unwrap();
        assert_eq!(message.unwrap(), b"first\n\r\nMAIL FROM:<b@evil.test>\r\n");
    }

    #[test]
    fn control_characters_in_a_command_are_a_syntax_error() {
        let mut s = Session::new("d.test", "secret", 1000);
        assert_eq!(
            replies(
                &mut s,
                &[
                    "EHLO x",
                    "MAIL FROM:<a\u{0}b@evil.test>",
                    "MAIL FROM:<a@b.test>",
                    "RCPT TO:<reply+\u{0}zz@d.test>",
                ]
            ),
            [250, 501, 250, 501]
        );
    }
}
