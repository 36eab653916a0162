//! Understanding the email that comes back to Convos: replies to notifications, delivery status
//! notifications and complaint reports. Pure functions over raw bytes; the worker does the I/O.

pub mod autoreply;
pub mod html;
pub mod limits;
pub mod parsed;
pub mod quotes;
pub mod reports;
