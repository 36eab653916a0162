//! The addresses a notification carries back to Convos (decision 26): `reply+<token>@<domain>`
//! in `Reply-To`, and `bounce+<token>@<domain>` as its return path (VERP).
//!
//! A token is the notified message's id and an HMAC-SHA256 of it under `CONVOS_SECRET_KEY`,
//! truncated to 80 bits, both in lower-case base32 (42 characters: local parts stay under
//! RFC 5321's 64, and a relay that changes their case changes nothing). The message names
//! everything else: its recipient is the only person who may answer through the address, and
//! its thread is where the answer goes. Without the secret no address can be made for another
//! message; the two purposes sign under different labels, so a bounce address is no reply
//! address. Revocation needs no table: the owner's `reply_addresses_revoked_at` retires every
//! address issued for messages written before it.

use convos_core::MessageId;
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

    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Reply => b"convos-reply-v1:",
            Purpose::Bounce => b"convos-bounce-v1:",
        }
    }
}

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

fn signature(secret: &str, purpose: Purpose, message: MessageId) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(purpose.label());
    mac.update(message.as_uuid().as_bytes());
    mac.finalize().into_bytes()[..SIGNATURE].to_vec()
}

/// The address for `purpose` about `message` at `domain`.
pub fn address(secret: &str, purpose: Purpose, message: MessageId, domain: &str) -> String {
    format!(
        "{}{}{}@{domain}",
        purpose.prefix(),
        base32(message.as_uuid().as_bytes()),
        base32(&signature(secret, purpose, message))
    )
}

/// What a received address is, if it is a genuine one of ours at `domain`: its purpose and the
/// message it was made for. Case-insensitive.
pub fn parse(secret: &str, address: &str, domain: &str) -> Option<(Purpose, MessageId)> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, host) = address.rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(domain) {
        return None;
    }
    let local = local.to_ascii_lowercase();
    let (purpose, token) = [Purpose::Reply, Purpose::Bounce]
        .into_iter()
        .find_map(|p| local.strip_prefix(p.prefix()).map(|t| (p, t)))?;
    // 16 bytes of id are 26 characters; the signature the rest.
    if token.len() != 26 + 16 {
        return None;
    }
    let id = unbase32(&token[..26])?;
    let sig = unbase32(&token[26..])?;
    let message = MessageId::from(uuid::Uuid::from_slice(&id).ok()?);
    let expected = signature(secret, purpose, message);
    // Compared in constant time.
    let equal = sig.len() == expected.len()
        && sig
            .iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    equal.then_some((purpose, message))
}

/// Whether `address` is any address of ours at `domain` (genuine or not): what the SMTP
/// listener accepts at `RCPT TO`, leaving the verdict to the job, which records it.
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

    #[test]
    fn an_address_names_its_message_and_fits_a_local_part() {
        let message = MessageId::generate();
        let reply = address("secret", Purpose::Reply, message, "reply.convos.test");
        let local = reply.split('@').next().unwrap();
        assert!(local.len() <= 64, "{reply}");
        assert_eq!(
            parse("secret", &reply, "reply.convos.test"),
            Some((Purpose::Reply, message))
        );
        assert_eq!(
            parse("secret", &reply.to_uppercase(), "REPLY.convos.test"),
            Some((Purpose::Reply, message)),
            "relays may change the case"
        );
    }

    #[test]
    fn forged_moved_and_foreign_addresses_are_refused() {
        let message = MessageId::generate();
        let reply = address("secret", Purpose::Reply, message, "d.test");
        assert_eq!(parse("other secret", &reply, "d.test"), None);
        assert_eq!(parse("secret", &reply, "elsewhere.test"), None);
        let as_bounce = reply.replacen("reply+", "bounce+", 1);
        assert_eq!(
            parse("secret", &as_bounce, "d.test"),
            None,
            "a reply token is not a bounce token"
        );
        let other = address("secret", Purpose::Reply, MessageId::generate(), "d.test");
        let moved = format!("{}{}", &reply[..6 + 26], &other[6 + 26..]);
        assert_eq!(
            parse("secret", &moved, "d.test"),
            None,
            "a signature moved to another message"
        );
        assert_eq!(parse("secret", "reply+abc@d.test", "d.test"), None);
        assert_eq!(parse("secret", "bob@d.test", "d.test"), None);
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
