//! Opaque identifiers exposed by the API.
//!
//! Ids are UUIDv7: time-ordered for index locality, with 74 random bits so they are neither
//! sequential nor guessable. On the wire they are plain strings; anything that does not parse
//! is treated by the server as an id that does not exist.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered, unguessable id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID, for storage.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Identifies a user account.
    UserId
);
id_type!(
    /// Identifies a session: one API token, listed and revoked by its owner.
    SessionId
);
id_type!(
    /// Identifies a thread: the subject and the pair of participants.
    ThreadId
);
id_type!(
    /// Identifies one message within a thread.
    MessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_string_form() {
        let id = MessageId::generate();
        assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
    }

    #[test]
    fn garbage_does_not_parse_as_an_id() {
        assert!("42".parse::<ThreadId>().is_err());
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }

    #[test]
    fn consecutive_ids_are_not_consecutive_numbers() {
        let a = MessageId::generate().as_uuid().as_u128();
        let b = MessageId::generate().as_uuid().as_u128();
        assert_ne!(b.wrapping_sub(a), 1);
    }
}
