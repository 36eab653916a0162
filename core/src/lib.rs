//! The Convos wire contract shared by the server, the worker and the terminal client.
//!
//! It holds the opaque ids, the domain newtypes that parse untrusted input at the edge, the
//! JSON request and response shapes of `/api/v1`, and the error body. It knows nothing of
//! HTTP frameworks, databases or terminals.

pub mod api;
pub mod domain;
pub mod email_links;
pub mod error;
pub mod events;
pub mod ids;
pub mod jobs;
pub mod ops;
pub mod reply_address;
pub mod text;
pub mod unsubscribe;
pub mod verification;

pub use domain::{
    Body, DisplayName, EmailAddress, ExpiresIn, FieldError, IdempotencyKey, Password, Subject,
    Username, excerpt,
};
pub use error::{ErrorBody, ErrorDetail};
pub use ids::{MessageId, SessionId, ThreadId, UserId};
