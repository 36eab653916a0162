//! The daily caps on mail coming in to reply and bounce addresses (decisions 69 and 70): one
//! copy for the worker's SMTP listener and the server's inbound webhook, counted in the same
//! Redis keys, so a sender has one budget however the mail reaches Convos.

use crate::rate_limit::{self, Decision};
use convos_core::reply_address::{Purpose, Token};
use redis::aio::ConnectionLike;
use sqlx::PgPool;
use std::time::Duration;

/// How long a cap's count lives from its first message.
const DAY: Duration = Duration::from_secs(86_400);

/// The distinct addresses one message is counted against, as the listener takes at most 20
/// recipients: a message naming more (a webhook's headers can name thousands) is counted
/// against its first 20, and costs no more than they do.
pub const MAX_COUNTED: usize = 20;

/// The messages a day mail to our addresses may bring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyCaps {
    /// To one reply or bounce address (`CONVOS_INBOUND_PER_ADDRESS_PER_DAY`): an answer or
    /// two and a bounce are what one email's address gets.
    pub per_address: u32,
    /// To all the addresses of one user (`CONVOS_INBOUND_PER_USER_PER_DAY`): addresses never
    /// expire, so without it a patient sender's supply of them grows by a day's emails a day.
    pub per_user: u32,
}

impl Default for DailyCaps {
    fn default() -> Self {
        Self {
            per_address: 20,
            per_user: 200,
        }
    }
}

/// Counts one message to the genuine addresses `to` against each address's cap and each of
/// their owners', and decides: limited if any count is over, and then nothing is counted, so
/// a refused message (and the provider's or server's retries of it) costs no address its
/// budget. Each address counts once however often it is named. An address its owner revoked
/// counts against itself, not against its owner's budget, so that whoever holds leaked
/// addresses cannot spend the owner's (decision 59 for revocation). Like every abuse limit,
/// enforced only while Redis and PostgreSQL answer (decision 6): an owner PostgreSQL cannot
/// name, or a count Redis cannot keep, is logged and let through.
pub async fn hit(
    db: &PgPool,
    redis: &mut (impl ConnectionLike + Send),
    prefix: &str,
    caps: DailyCaps,
    to: &[Token],
) -> Decision {
    let mut distinct: Vec<&Token> = Vec::new();
    for token in to {
        let seen = distinct
            .iter()
            .any(|t| (t.purpose, t.message) == (token.purpose, token.message));
        if !seen && distinct.len() < MAX_COUNTED {
            distinct.push(token);
        }
    }
    let mut owners = Vec::new();
    for token in &distinct {
        match convos_store::inbound::reply_target(db, token.message).await {
            Ok(Some(target)) => {
                let made = token.made.unwrap_or(target.created_at);
                let revoked = target.revoked_at.is_some_and(|at| at >= made);
                if !revoked && !owners.contains(&target.user_id) {
                    owners.push(target.user_id);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "inbound cap per owner not enforced"),
        }
    }
    let per_address = distinct.iter().map(|token| {
        let purpose = match token.purpose {
            Purpose::Reply => "reply",
            Purpose::Bounce => "bounce",
        };
        (format!("{purpose}:{}", token.message), caps.per_address)
    });
    let per_owner = owners
        .iter()
        .map(|user| (format!("user:{user}"), caps.per_user));
    let mut counted = Vec::new();
    for (subject, limit) in per_address.chain(per_owner) {
        let counter = rate_limit::key(prefix, "inbound", &subject);
        match rate_limit::hit(redis, &counter, limit, DAY).await {
            Ok(Decision::Allowed) => counted.push(counter),
            Ok(limited) => {
                counted.push(counter);
                for counter in &counted {
                    if let Err(e) = rate_limit::forget_one(redis, counter).await {
                        tracing::warn!(error = %e, "an inbound count not taken back");
                    }
                }
                return limited;
            }
            Err(e) => tracing::warn!(error = %e, "inbound cap not enforced: redis unavailable"),
        }
    }
    Decision::Allowed
}
