//! The live event stream: reads `GET /api/v1/events`, turns events into messages for the app,
//! and reconnects with exponential backoff, resuming with `Last-Event-ID`.

use crate::app::{Connection, Msg};
use convos_core::events::Event;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// One parsed SSE frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// The `event:` name.
    pub event: String,
    /// The `id:`.
    pub id: Option<String>,
    /// The `data:` (joined lines).
    pub data: String,
}

/// Incremental SSE parser: feed bytes, get complete frames.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: String,
    frame: Frame,
}

impl Parser {
    /// Adds received text; returns the frames it completed.
    pub fn feed(&mut self, text: &str) -> Vec<Frame> {
        self.buffer.push_str(text);
        let mut frames = Vec::new();
        while let Some(end) = self.buffer.find('\n') {
            let line = self.buffer[..end].trim_end_matches('\r').to_owned();
            self.buffer.drain(..=end);
            if line.is_empty() {
                let frame = std::mem::take(&mut self.frame);
                if !frame.data.is_empty() || !frame.event.is_empty() {
                    frames.push(frame);
                }
            } else if line.starts_with(':') {
                // A heartbeat comment.
            } else {
                let (field, value) = line.split_once(':').unwrap_or((&line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => self.frame.event = value.to_owned(),
                    "id" => self.frame.id = Some(value.to_owned()),
                    "data" => {
                        if !self.frame.data.is_empty() {
                            self.frame.data.push('\n');
                        }
                        self.frame.data.push_str(value);
                    }
                    _ => {}
                }
            }
        }
        frames
    }
}

/// Follows the event stream until the receiver is gone, reconnecting as needed.
pub async fn follow(base: String, token: String, tx: UnboundedSender<Msg>) {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut last_id: Option<String> = None;
    let mut backoff = 1u64;
    loop {
        let mut req = http
            .get(format!("{base}/api/v1/events"))
            .bearer_auth(&token);
        if let Some(id) = &last_id {
            req = req.header("Last-Event-ID", id);
        }
        if let Ok(res) = req.send().await
            && res.status().is_success()
        {
            backoff = 1;
            if tx.send(Msg::Connection(Connection::Live)).is_err() {
                return;
            }
            let mut parser = Parser::default();
            let mut body = res.bytes_stream();
            // Heartbeats arrive every 15 s; silence for longer means the link is dead.
            while let Ok(Some(Ok(chunk))) =
                tokio::time::timeout(Duration::from_secs(45), body.next()).await
            {
                for frame in parser.feed(&String::from_utf8_lossy(&chunk)) {
                    if frame.id.is_some() {
                        last_id = frame.id.clone();
                    }
                    let msg = match frame.event.as_str() {
                        // Events were missed: everything shown is fetched again.
                        "reset" => Msg::Reset,
                        _ => match serde_json::from_str::<Event>(&frame.data) {
                            Ok(event) => Msg::Live(event),
                            Err(_) => continue,
                        },
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            }
        }
        // Count down to the next attempt, so the status bar can say when.
        for left in (1..=backoff).rev() {
            if tx
                .send(Msg::Connection(Connection::Reconnecting(left)))
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        backoff = (backoff * 2).min(30);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_chunks_are_reassembled_and_comments_ignored() {
        let mut parser = Parser::default();
        assert!(parser.feed(": heartbeat\n\nevent: message.cre").is_empty());
        let frames = parser.feed("ated\nid: 5-0\ndata: {\"a\":1}\n\n");
        assert_eq!(
            frames,
            [Frame {
                event: "message.created".into(),
                id: Some("5-0".into()),
                data: "{\"a\":1}".into()
            }]
        );
    }
}
