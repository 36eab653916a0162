//! The addresses a notification carries back to Convos (decision 26): `reply+<token>@<domain>`
//! in `Reply-To`, and `bounce+<token>@<domain>` as its return path (VERP).
//!
//! A token is the notified message's id, the time the address was made (milliseconds, 48
//! bits) and an HMAC-SHA256 of both under `CONVOS_SECRET_KEY`, truncated to 80 bits, all in
//! lower-case base32 (52 characters: local parts stay under RFC 5321's 64, and a relay that
//! changes their case changes nothing). The message names everything else: its recipient is
//! the only person who may answer through the address, and its thread is where the answer
//! goes. Without the secret no address can be made for another message or time; the two
//! purposes sign under different labels, so a bounce address is no reply address.
//! Revocation needs no table: the owner's `reply_addresses_revoked_at` retires every address
//! made before it (decision 68). Addresses made before the time was in them (42 characters,
//! the message's id and its signature) still parse; they count as made when their message
//! was written.

use crate::MessageId;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What an address is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The recipient answers the thread.
    Reply,
    /// Delivery status notifications and complaints about the email.
    Bounce,
}

impl Purpose {
    fn prefix(self) -> &'static str {
        match self {
            Purpose::Reply => "reply+",
            Purpose::Bounce => "bounce+",
        }
    }

    /// What a token of the first form (without a time) is signed under.
    fn label_v1(self) -> &'static [u8] {
        match self {
            Purpose::Reply => b"convos-reply-v1:",
            Purpose::Bounce => b"convos-bounce-v1:",
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Reply => b"convos-reply-v2:",
            Purpose::Bounce => b"convos-bounce-v2:",
        }
    }
}

/// A genuine address of ours, read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is for.
    pub purpose: Purpose,
    /// The message it was made for.
    pub message: MessageId,
    /// When it was made; `None` for an address of the first form, made before the time was
    /// in them.
    pub made: Option<DateTime<Utc>>,
}

/// Bytes of the time in a token: milliseconds since 1970 fit 48 bits until the year 10889.
const TIME: usize = 6;

/// Bytes of the signature kept in a token.
const SIGNATURE: usize = 10;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = ALPHABET.iter().position(|&a| a == c.to_ascii_lowercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    // Leftover bits must be zero padding, so each token has one spelling (up to case).
    (buffer & ((1 << bits) - 1) == 0).then_some(out)
}

/// The signature of `signed` (the token's bytes before it) under `label`.
fn signature(secret: &str, label: &[u8], signed: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(label);
    mac.update(signed);
    mac.finalize().into_bytes()[..SIGNATURE].to_vec()
}

/// The address for `purpose` about `message` at `domain`, made at `now`.
pub fn address(
    secret: &str,
    purpose: Purpose,
    message: MessageId,
    now: DateTime<Utc>,
    domain: &str,
) -> String {
    let mut signed = message.as_uuid().as_bytes().to_vec();
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    signed.extend_from_slice(&millis.to_be_bytes()[8 - TIME..]);
    format!(
        "{}{}{}@{domain}",
        purpose.prefix(),
        base32(&signed),
        base32(&signature(secret, purpose.label(), &signed))
    )
}

/// What a received address is, if it is a genuine one of ours at `domain`: its purpose, the
/// message it was made for and when. Case-insensitive.
pub fn parse(secret: &str, address: &str, domain: &str) -> Option<Token> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, host) = address.rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(domain) {
        return None;
    }
    let local = local.to_ascii_lowercase();
    let (purpose, token) = [Purpose::Reply, Purpose::Bounce]
        .into_iter()
        .find_map(|p| local.strip_prefix(p.prefix()).map(|t| (p, t)))?;
    // Only our alphabet is ever in a token; anything else is no token, and is not cut.
    if !token.is_ascii() {
        return None;
    }
    // The id and the time (22 bytes) are 36 characters, the id alone (16) 26; the signature
    // (10) the other 16.
    let (signed_len, label) = match token.len() {
        52 => (36, purpose.label()),
        42 => (26, purpose.label_v1()),
        _ => return None,
    };
    let signed = unbase32(&token[..signed_len])?;
    let sig = unbase32(&token[signed_len..])?;
    let expected = signature(secret, label, &signed);
    // Compared in constant time.
    let equal = sig.len() == expected.len()
        && sig
            .iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !equal {
        return None;
    }
    let message = MessageId::from(uuid::Uuid::from_slice(&signed[..16]).ok()?);
    let made = match &signed[16..] {
        [] => None,
        time => {
            let mut millis = [0u8; 8];
            millis[8 - TIME..].copy_from_slice(time);
            Some(DateTime::from_timestamp_millis(
                i64::try_from(u64::from_be_bytes(millis)).ok()?,
            )?)
        }
    };
    Some(Token {
        purpose,
        message,
        made,
    })
}

/// What `address` is if it is a genuine one of ours, at whatever domain it names: the inbound
/// webhook's check, which is not told the reply domain (its provider posts it only mail for
/// that domain). The signature is what a stranger cannot make; the job that reads the mail
/// checks the domain as well.
pub fn parse_at_any_domain(secret: &str, address: &str) -> Option<Token> {
    let (_, host) = address.trim().trim_end_matches('>').rsplit_once('@')?;
    parse(secret, address, host)
}

/// Whether `address` is any address of ours at `domain`, genuine or not: what tells a made-up
/// token (`unknown_token`) from mail that was never for us when a received email is decided.
pub fn is_ours(address: &str, domain: &str) -> bool {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    address.rsplit_once('@').is_some_and(|(local, host)| {
        let local = local.to_ascii_lowercase();
        host.eq_ignore_ascii_case(domain)
            && [Purpose::Reply, Purpose::Bounce]
                .iter()
                .any(|p| local.starts_with(p.prefix()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    /// An address of the first form, as made before the time was in them.
    fn first_form(secret: &str, purpose: Purpose, message: MessageId, domain: &str) -> String {
        let id = *message.as_uuid().as_bytes();
        format!(
            "{}{}{}@{domain}",
            purpose.prefix(),
            base32(&id),
            base32(&signature(secret, purpose.label_v1(), &id))
        )
    }

    #[test]
    fn an_address_names_its_message_and_when_it_was_made_and_fits_a_local_part() {
        let message = MessageId::generate();
        let made = at(1_796_000_000_123);
        let expected = Some(Token {
            purpose: Purpose::Reply,
            message,
            made: Some(made),
        });
        let reply = address("secret", Purpose::Reply, message, made, "reply.convos.test");
        let bounce = address(
            "secret",
            Purpose::Bounce,
            message,
            made,
            "reply.convos.test",
        );
        for local in [&reply, &bounce].map(|a| a.split('@').next().unwrap()) {
            assert!(local.len() <= 64, "{local}");
        }
        assert_eq!(parse("secret", &reply, "reply.convos.test"), expected);
        assert_eq!(
            parse("secret", &reply.to_uppercase(), "REPLY.convos.test"),
            expected,
            "relays may change the case"
        );
    }

    #[test]
    fn at_any_domain_only_the_signature_is_checked() {
        let message = MessageId::generate();
        let reply = address(
            "secret",
            Purpose::Reply,
            message,
            at(1),
            "reply.convos.test",
        );
        let elsewhere = reply.replace("reply.convos.test", "in.example.org");
        let token = parse_at_any_domain("secret", &format!("<{elsewhere}>")).unwrap();
        assert_eq!((token.purpose, token.message), (Purpose::Reply, message));
        assert_eq!(parse_at_any_domain("other secret", &reply), None);
        assert_eq!(
            parse_at_any_domain("secret", "reply+made-up@reply.convos.test"),
            None
        );
        assert_eq!(parse_at_any_domain("secret", "no-at-sign"), None);
    }

    #[test]
    fn an_address_of_the_first_form_still_parses_without_a_time() {
        let message = MessageId::generate();
        let old = first_form("secret", Purpose::Reply, message, "d.test");
        assert_eq!(
            parse("secret", &old, "d.test"),
            Some(Token {
                purpose: Purpose::Reply,
                message,
                made: None
            })
        );
        let as_bounce = old.replacen("reply+", "bounce+", 1);
        assert_eq!(parse("secret", &as_bounce, "d.test"), None);
    }

    #[test]
    fn forged_moved_and_foreign_addresses_are_refused() {
        let message = MessageId::generate();
        let now = at(1_796_000_000_000);
        let reply = address("secret", Purpose::Reply, message, now, "d.test");
        assert_eq!(parse("other secret", &reply, "d.test"), None);
        assert_eq!(parse("secret", &reply, "elsewhere.test"), None);
        let as_bounce = reply.replacen("reply+", "bounce+", 1);
        assert_eq!(
            parse("secret", &as_bounce, "d.test"),
            None,
            "a reply token is not a bounce token"
        );
        let other = address(
            "secret",
            Purpose::Reply,
            MessageId::generate(),
            now,
            "d.test",
        );
        let moved = format!("{}{}", &reply[..6 + 36], &other[6 + 36..]);
        assert_eq!(
            parse("secret", &moved, "d.test"),
            None,
            "a signature moved to another message"
        );
        let later = address(
            "secret",
            Purpose::Reply,
            message,
            at(1_797_000_000_000),
            "d.test",
        );
        let redated = format!("{}{}", &later[..6 + 36], &reply[6 + 36..]);
        assert_eq!(
            parse("secret", &redated, "d.test"),
            None,
            "a time changed under the signature"
        );
        assert_eq!(parse("secret", "reply+abc@d.test", "d.test"), None);
        assert_eq!(parse("secret", "bob@d.test", "d.test"), None);
    }

    #[test]
    fn an_address_with_a_character_of_several_bytes_where_a_token_is_cut_is_refused() {
        // The listener takes any UTF-8 at `RCPT TO`; cut inside a character, the token made
        // the job panic, and it was retried until dead.
        for (before, after) in [(35, 15), (25, 15)] {
            let address = format!("reply+{}é{}@d.test", "a".repeat(before), "a".repeat(after));
            assert_eq!(parse("secret", &address, "d.test"), None, "{address}");
        }
    }

    #[test]
    fn the_listener_accepts_only_our_prefixes_at_our_domain() {
        assert!(is_ours("<Reply+anything@D.test>", "d.test"));
        assert!(is_ours("bounce+x@d.test", "d.test"));
        assert!(!is_ours("postmaster@d.test", "d.test"));
        assert!(!is_ours("reply+x@other.test", "d.test"));
    }

    #[test]
    fn base32_round_trips_and_has_one_spelling() {
        for bytes in [&[][..], &[0], &[255, 1], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] {
            assert_eq!(unbase32(&base32(bytes)).unwrap(), bytes);
        }
        // "ab" decodes to one byte with two padding bits, which must be zero.
        assert!(unbase32("ab").is_none());
    }
}
