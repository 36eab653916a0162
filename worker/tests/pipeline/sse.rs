//! A minimal server-sent-events client for tests: frames as the protocol defines them.

use convos_testkit::{Client, TestUser};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Frame {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// A connected event stream.
pub struct Events {
    rx: mpsc::UnboundedReceiver<Frame>,
    pub comments: mpsc::UnboundedReceiver<String>,
}

impl Events {
    /// Opens `GET /api/v1/events` as `user`, resuming after `last_event_id` if given.
    pub async fn connect(api: &Client, user: &TestUser, last_event_id: Option<&str>) -> Self {
        let mut req = api
            .http
            .get(format!("{}/api/v1/events", api.base))
            .bearer_auth(&user.token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = req.send().await.expect("event stream opens");
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let (ctx, comments) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut body = res.bytes_stream();
            let mut buffer = String::new();
            let mut frame = Frame {
                event: "message".into(),
                id: None,
                data: String::new(),
            };
            while let Some(Ok(chunk)) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find('\n') {
                    let line = buffer[..end].trim_end_matches('\r').to_owned();
                    buffer.drain(..=end);
                    if line.is_empty() {
                        if !frame.data.is_empty() || frame.event != "message" {
                            let done = std::mem::replace(
                                &mut frame,
                                Frame {
                                    event: "message".into(),
                                    id: None,
                                    data: String::new(),
                                },
                            );
                            if tx.send(done).is_err() {
                                return;
                            }
                        }
                    } else if let Some(comment) = line.strip_prefix(':') {
                        let _ = ctx.send(comment.trim().to_owned());
                    } else if let Some((field, value)) = line.split_once(':') {
                        let value = value.strip_prefix(' ').unwrap_or(value);
                        match field {
                            "event" => frame.event = value.to_owned(),
                            "id" => frame.id = Some(value.to_owned()),
                            "data" => {
                                if !frame.data.is_empty() {
                                    frame.data.push('\n');
                                }
                                frame.data.push_str(value);
                            }
                            _ => {}
                        }
                    }
                }
            }
        });
        Self { rx, comments }
    }

    /// Whether the server closed the stream (and every event was read).
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed() && self.rx.is_empty()
    }

    /// The next event, if one comes within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<Frame> {
        tokio::time::timeout(limit, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next event that is not a `reset`.
    pub async fn next_event(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next(left).await?;
            if frame.event != "reset" {
                return Some(frame);
            }
        }
    }
}
