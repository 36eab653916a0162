//! Signed links in notification emails that act without a login (decision 27): mute the
//! email's thread, pause or stop all email, mark a message read.
//!
//! A token is the URL-safe base64 (no padding) of `kind ‖ user ‖ target ‖ issued ‖ tag`: one
//! byte saying what the link is for, the user's id (16 bytes), the thread or message it is
//! about (16 bytes, absent for a link about the whole account), the issue time (Unix seconds,
//! 4 bytes, big-endian) and the first 16 bytes of an HMAC-SHA256 of everything before it under
//! `CONVOS_SECRET_KEY` and its own domain label: 71 characters for a thread or a message, 50
//! for the account. Without the secret no link can be made for another user, thread or
//! message, nor moved to another kind or a later issue time. A link expires [`MAX_AGE_DAYS`]
//! after it was issued, like the unsubscribe links of decision 18.

use crate::ids::{MessageId, ThreadId, UserId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// How long a link works after its email was sent, in days.
pub const MAX_AGE_DAYS: i64 = 60;

/// How far in the future an issue time may lie (clock skew between worker and server).
const MAX_SKEW: TimeDelta = TimeDelta::minutes(5);

/// Bytes of the HMAC kept in a token (128 bits).
const TAG: usize = 16;

/// What a link is about, which also decides what it may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// An email's thread: its one-click unsubscribe mutes the thread; its page also pauses or
    /// stops all email.
    Thread(ThreadId),
    /// The user's email as a whole (an email about no one thread): its one-click unsubscribe
    /// turns email off; its page also pauses it.
    Account,
    /// One notified message: its page marks the message read.
    Message(MessageId),
}

impl Target {
    fn kind(self) -> u8 {
        match self {
            Target::Thread(_) => b't',
            Target::Account => b'a',
            Target::Message(_) => b'm',
        }
    }

    fn id(self) -> Option<Uuid> {
        match self {
            Target::Thread(thread) => Some(thread.as_uuid()),
            Target::Account => None,
            Target::Message(message) => Some(message.as_uuid()),
        }
    }
}

/// What a genuine, unexpired link says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The user it was made for: the recipient of the email.
    pub user: UserId,
    /// What it is about.
    pub target: Target,
    /// When it was made (whole seconds).
    pub issued_at: DateTime<Utc>,
}

fn mac(secret: &str, signed: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    // Its own domain label: no other signature of ours (unsubscribe, reply and bounce
    // addresses, verification links) can verify as a link.
    mac.update(b"convos-email-link-v1:");
    mac.update(signed);
    mac
}

/// The token of a link for `user` about `target`, issued at `now`. Issue times before 1970 or
/// after 2106 do not fit and are clamped (no email is sent then).
pub fn token(secret: &str, user: UserId, target: Target, now: DateTime<Utc>) -> String {
    let issued = u32::try_from(now.timestamp().max(0)).unwrap_or(u32::MAX);
    let mut bytes = Vec::with_capacity(1 + 16 + 16 + 4 + TAG);
    bytes.push(target.kind());
    bytes.extend_from_slice(user.as_uuid().as_bytes());
    if let Some(id) = target.id() {
        bytes.extend_from_slice(id.as_bytes());
    }
    bytes.extend_from_slice(&issued.to_be_bytes());
    let tag = mac(secret, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag[..TAG]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What a token says, if it is genuine and was issued at most [`MAX_AGE_DAYS`] before `now`.
pub fn verify(secret: &str, token: &str, now: DateTime<Utc>) -> Option<Link> {
    // The longest genuine token is 71 characters; refuse anything much longer before decoding.
    if token.len() > 128 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let kind = *bytes.first()?;
    let with_id = match kind {
        b't' | b'm' => true,
        b'a' => false,
        _ => return None,
    };
    let signed_len = 1 + 16 + if with_id { 16 } else { 0 } + 4;
    if bytes.len() != signed_len + TAG {
        return None;
    }
    let (signed, given) = bytes.split_at(signed_len);
    // Compared in constant time.
    mac(secret, signed).verify_truncated_left(given).ok()?;
    let uuid = |at: usize| Uuid::from_slice(&signed[at..at + 16]).ok();
    let user = UserId::from(uuid(1)?);
    let target = match kind {
        b't' => Target::Thread(ThreadId::from(uuid(17)?)),
        b'm' => Target::Message(MessageId::from(uuid(17)?)),
        _ => Target::Account,
    };
    let issued = u32::from_be_bytes(signed[signed_len - 4..].try_into().ok()?);
    let issued_at = DateTime::from_timestamp(i64::from(issued), 0)?;
    let fresh = issued_at > now - TimeDelta::days(MAX_AGE_DAYS) && issued_at <= now + MAX_SKEW;
    fresh.then_some(Link {
        user,
        target,
        issued_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn targets() -> [Target; 3] {
        [
            Target::Thread(ThreadId::generate()),
            Target::Account,
            Target::Message(MessageId::generate()),
        ]
    }

    #[test]
    fn a_genuine_link_says_whom_and_what_it_is_for() {
        let user = UserId::generate();
        for target in targets() {
            let t = token("secret", user, target, now());
            assert_eq!(
                verify("secret", &t, now()),
                Some(Link {
                    user,
                    target,
                    issued_at: now()
                }),
                "{target:?}"
            );
        }
    }

    #[test]
    fn tokens_are_short_and_safe_in_a_url() {
        let user = UserId::generate();
        for target in targets() {
            let t = token("secret", user, target, now());
            assert!(t.len() <= 71, "{t}");
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
        }
    }

    #[test]
    fn another_secret_or_any_changed_byte_is_refused() {
        let user = UserId::generate();
        for target in targets() {
            let t = token("secret-a", user, target, now());
            assert_eq!(verify("secret-b", &t, now()), None, "another secret");
            let bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
            for at in 0..bytes.len() {
                let mut changed = bytes.clone();
                changed[at] ^= 0x01;
                let forged = URL_SAFE_NO_PAD.encode(&changed);
                assert_eq!(
                    verify("secret-a", &forged, now()),
                    None,
                    "byte {at} of {target:?}"
                );
            }
        }
    }

    #[test]
    fn a_link_cannot_be_moved_to_another_kind() {
        let user = UserId::generate();
        let thread = ThreadId::generate();
        let t = token("secret", user, Target::Thread(thread), now());
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        bytes[0] = b'm';
        assert_eq!(
            verify("secret", &URL_SAFE_NO_PAD.encode(&bytes), now()),
            None,
            "a thread's link is no message's"
        );
    }

    #[test]
    fn garbage_is_refused() {
        for garbage in [
            "",
            "garbage",
            "not base64!",
            &"A".repeat(71),
            &"A".repeat(5000),
        ] {
            assert_eq!(verify("secret", garbage, now()), None, "{garbage}");
        }
        let unsubscribe = crate::unsubscribe::token("secret", UserId::generate(), now());
        assert_eq!(
            verify("secret", &unsubscribe, now()),
            None,
            "an unsubscribe token"
        );
    }

    #[test]
    fn links_expire_after_the_maximum_age_and_cannot_come_from_the_future() {
        let user = UserId::generate();
        let t = token("secret", user, Target::Account, now());
        let almost = now() + TimeDelta::days(MAX_AGE_DAYS) - TimeDelta::seconds(1);
        assert!(verify("secret", &t, almost).is_some());
        let expired = now() + TimeDelta::days(MAX_AGE_DAYS);
        assert_eq!(verify("secret", &t, expired), None);
        let future = token("secret", user, Target::Account, now() + TimeDelta::hours(1));
        assert_eq!(
            verify("secret", &future, now()),
            None,
            "issued in the future"
        );
    }
}
