//! Signed one-click unsubscribe tokens: `<user id>.<issued at, Unix seconds>.<HMAC-SHA256, hex>`.
//!
//! The worker puts them in email links; the server checks them without a login. Without the
//! secret a token cannot be made for another user, nor given a later issue time. A token
//! expires [`MAX_AGE_DAYS`] after it was issued; the server also refuses one issued before the
//! user last turned email back on, so an old email cannot turn it off again. Tokens of the
//! first format (`<user id>.<HMAC>`, no issue time) no longer verify.

use crate::ids::UserId;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How long an unsubscribe link works after its email was sent, in days.
pub const MAX_AGE_DAYS: i64 = 60;

/// How far in the future an issue time may lie (clock skew between worker and server).
const MAX_SKEW: TimeDelta = TimeDelta::minutes(5);

/// What a genuine, unexpired token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The user it was made for.
    pub user: UserId,
    /// When it was made (whole seconds).
    pub issued_at: DateTime<Utc>,
}

fn mac(secret: &str, user: UserId, issued: i64) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    // A new domain label: a signature of the first format can never verify as this one.
    mac.update(b"convos-unsubscribe-v2:");
    mac.update(user.to_string().as_bytes());
    mac.update(b":");
    mac.update(issued.to_string().as_bytes());
    mac
}

/// The token for `user`, issued at `now`.
pub fn token(secret: &str, user: UserId, now: DateTime<Utc>) -> String {
    let issued = now.timestamp();
    format!(
        "{user}.{issued}.{}",
        hex::encode(mac(secret, user, issued).finalize().into_bytes())
    )
}

/// What a token claims, if it is genuine and was issued at most [`MAX_AGE_DAYS`] before `now`.
pub fn verify(secret: &str, token: &str, now: DateTime<Utc>) -> Option<Claim> {
    let mut parts = token.split('.');
    let (user, issued_text, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let user: UserId = user.parse().ok()?;
    // One spelling per number (no sign, no leading zero), so a token has exactly one form.
    let issued: i64 = issued_text.parse().ok()?;
    if issued.to_string() != issued_text {
        return None;
    }
    let sig = hex::decode(sig).ok()?;
    mac(secret, user, issued).verify_slice(&sig).ok()?;
    let issued_at = DateTime::from_timestamp(issued, 0)?;
    let fresh = issued_at > now - TimeDelta::days(MAX_AGE_DAYS) && issued_at <= now + MAX_SKEW;
    fresh.then_some(Claim { user, issued_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn genuine_tokens_verify_and_forgeries_do_not() {
        let user = UserId::generate();
        let t = token("secret-a", user, now());
        let claim = verify("secret-a", &t, now()).expect("genuine");
        assert_eq!(claim.user, user);
        assert_eq!(claim.issued_at, now());
        assert_eq!(verify("secret-b", &t, now()), None, "another secret");
        let other = UserId::generate();
        let (_, rest) = t.split_once('.').unwrap();
        assert_eq!(
            verify("secret-a", &format!("{other}.{rest}"), now()),
            None,
            "a signature moved to another user"
        );
        assert_eq!(verify("secret-a", "garbage", now()), None);
        assert_eq!(
            verify("secret-a", &format!("{user}.1800000000.00"), now()),
            None
        );
    }

    #[test]
    fn a_later_issue_time_cannot_be_claimed() {
        let user = UserId::generate();
        let t = token("secret", user, now());
        let sig = t.rsplit('.').next().unwrap();
        let moved = format!("{user}.{}.{sig}", now().timestamp() + 86_400);
        assert_eq!(verify("secret", &moved, now()), None);
        let padded = format!("{user}.0{}.{sig}", now().timestamp());
        assert_eq!(
            verify("secret", &padded, now()),
            None,
            "one number, one spelling"
        );
    }

    #[test]
    fn tokens_expire_after_the_maximum_age() {
        let user = UserId::generate();
        let t = token("secret", user, now());
        let almost = now() + TimeDelta::days(MAX_AGE_DAYS) - TimeDelta::seconds(1);
        assert!(verify("secret", &t, almost).is_some());
        let expired = now() + TimeDelta::days(MAX_AGE_DAYS);
        assert_eq!(verify("secret", &t, expired), None);
        let future = token("secret", user, now() + TimeDelta::hours(1));
        assert_eq!(
            verify("secret", &future, now()),
            None,
            "issued in the future"
        );
    }

    #[test]
    fn first_format_tokens_are_refused() {
        let user = UserId::generate();
        let mut old = HmacSha256::new_from_slice(b"secret").unwrap();
        old.update(b"convos-unsubscribe:");
        old.update(user.to_string().as_bytes());
        let old = format!("{user}.{}", hex::encode(old.finalize().into_bytes()));
        assert_eq!(verify("secret", &old, now()), None);
    }
}
