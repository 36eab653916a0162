//! The Convos terminal client: a mail-like ratatui app for reading threads and replying, live.
//!
//! The app is a pure state machine ([`app::App::update`]: a message in, effects out); the
//! runtime ([`runtime`]) does the I/O at the edges: terminal events, API calls and the live
//! event stream all arrive as messages on one channel, and effects run as tasks.

pub mod api;
pub mod app;
pub mod cache;
pub mod config;
pub mod desktop;
pub mod drafts;
pub mod keys;
pub mod outbox;
pub mod runtime;
pub mod sse;
pub mod theme;
pub mod ui;
pub mod wrap;
