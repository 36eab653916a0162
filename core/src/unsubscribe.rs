//! Signed one-click unsubscribe tokens: `<user id>.<HMAC-SHA256 of it, hex>`.
//!
//! The worker puts them in email links; the server checks them without a login. Without the
//! secret a token cannot be made for another user.

use crate::ids::UserId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, user: UserId) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(b"convos-unsubscribe:");
    mac.update(user.to_string().as_bytes());
    mac
}

/// The token for `user`.
pub fn token(secret: &str, user: UserId) -> String {
    format!(
        "{user}.{}",
        hex::encode(mac(secret, user).finalize().into_bytes())
    )
}

/// The user a token was made for, if it is genuine.
pub fn verify(secret: &str, token: &str) -> Option<UserId> {
    let (user, sig) = token.split_once('.')?;
    let user: UserId = user.parse().ok()?;
    let sig = hex::decode(sig).ok()?;
    mac(secret, user).verify_slice(&sig).ok()?;
    Some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genuine_tokens_verify_and_forgeries_do_not() {
        let user = UserId::generate();
        let t = token("secret-a", user);
        assert_eq!(verify("secret-a", &t), Some(user));
        assert_eq!(verify("secret-b", &t), None, "another secret");
        let other = UserId::generate();
        let forged = format!("{other}.{}", t.split_once('.').unwrap().1);
        assert_eq!(
            verify("secret-a", &forged),
            None,
            "a signature moved to another user"
        );
        assert_eq!(verify("secret-a", "garbage"), None);
        assert_eq!(verify("secret-a", &format!("{user}.00")), None);
    }
}
