//! Opaque keyset cursors: a timestamp and an id, base64url-encoded.
//!
//! Listings are ordered by `(time desc, id desc)`; the cursor is the last item of a page and
//! the next page starts strictly after it, so items inserted meanwhile never cause duplicates.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A position in a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The sort time of the last item seen.
    pub at: DateTime<Utc>,
    /// The id of the last item seen (the tiebreaker).
    pub id: Uuid,
}

impl Cursor {
    /// Encodes the cursor for the wire.
    pub fn encode(&self) -> String {
        let raw = format!("{}:{}", self.at.timestamp_micros(), self.id.simple());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes a cursor from the wire; `None` when it is not one of ours.
    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (micros, id) = text.split_once(':')?;
        let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        // Only times PostgreSQL can compare with (a forged far-off time would be a 500).
        if !(0..=253_402_300_799).contains(&at.timestamp()) {
            return None;
        }
        Some(Self {
            at,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// Cuts a listing fetched with `limit + 1` rows to `limit`, and gives the cursor of its last
/// row when more follow (the extra row proves there is a next page).
pub(crate) fn split_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    cursor: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(|r| cursor(r).encode());
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_follow() {
        let at = |s| Cursor {
            at: DateTime::from_timestamp(s, 0).unwrap(),
            id: Uuid::nil(),
        };
        let (rows, next) = split_page(vec![1, 2, 3], 2, |r| at(*r));
        assert_eq!(rows, [1, 2]);
        assert_eq!(next, Some(at(2).encode()));
        let (rows, next) = split_page(vec![1, 2], 2, |r| at(*r));
        assert_eq!((rows, next), (vec![1, 2], None));
    }

    #[test]
    fn foreign_cursors_are_refused() {
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("12:zz")), None);
    }
}
