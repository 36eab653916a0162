//! What a received email may be before it is parsed, and how much text it may become.
//!
//! The MIME parser descends one call per nested multipart, with no limit of its own: a message
//! nested a few thousand deep overflows a thread's stack, which aborts the process (no panic
//! guard catches it). Each level needs a `Content-Type` header of its own, and a header's name
//! can be neither encoded nor folded, so counting the names bounds the depth before the parser
//! runs. (Counting `boundary` did not: the parser decodes RFC 2047 words anywhere in a value, so
//! `=?us-ascii?Q?multipart/mixed;_=62oundary=3Db0?=` declares one without the word.)

use crate::parsed::ParseError;

/// `Content-Type` names a message may hold, wherever they are: real mail has a handful (a part
/// each, and those of a message returned in a bounce); 200 is far below the depth that exhausts
/// a 2 MiB stack (a few thousand levels).
pub const MAX_CONTENT_TYPES: usize = 200;

/// The most text an email's body becomes (bytes). A message holds at most 64,000 characters
/// (256,000 bytes of UTF-8); what lies beyond is quoted history, which is stripped anyway.
pub const MAX_TEXT_BYTES: usize = 320 * 1024;

/// The deepest quote written as `>` marks; deeper quotes are marked this deep.
pub const MAX_QUOTE_MARKS: usize = 16;

/// Refuses a message holding more than [`MAX_CONTENT_TYPES`] `Content-Type` names.
pub fn check(raw: &[u8]) -> Result<(), ParseError> {
    let declared = count_ignoring_case(raw, b"content-type");
    if declared > MAX_CONTENT_TYPES {
        return Err(ParseError::new(format!(
            "{declared} content types (at most {MAX_CONTENT_TYPES})"
        )));
    }
    Ok(())
}

/// How often `needle` (lower case) occurs in `haystack`, ignoring ASCII case.
fn count_ignoring_case(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| w.eq_ignore_ascii_case(needle))
        .count()
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_counted_in_any_case() {
        assert_eq!(
            count_ignoring_case(
                b"Content-Type: a\r\nCONTENT-TYPE: b\r\ncontent-typ",
                b"content-type"
            ),
            2
        );
        assert!(check(&b"Content-Type: x\r\n".repeat(MAX_CONTENT_TYPES)).is_ok());
        assert!(check(&b"Content-Type: x\r\n".repeat(MAX_CONTENT_TYPES + 1)).is_err());
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let mut text = "aé".repeat(3);
        truncate(&mut text, 5);
        assert_eq!(text, "aéa", "not half of the second é");
    }
}
