//! What a received email may be before it is parsed, and how much text it may become.
//!
//! The MIME parser descends one call per nested multipart, with no limit of its own: a message
//! nested a few thousand deep overflows a thread's stack, which aborts the process (no panic
//! guard catches it). Each nested multipart declares a `boundary`, so counting the declarations
//! bounds the depth before the parser runs.

use crate::parsed::ParseError;

/// Multipart boundaries a message may declare: real mail has a handful (mixed, related,
/// alternative, and those of a returned message in a bounce); 100 is far below the depth that
/// exhausts a 2 MiB stack (a few thousand).
pub const MAX_BOUNDARIES: usize = 100;

/// The most text an email's body becomes (bytes). A message holds at most 64,000 characters
/// (256,000 bytes of UTF-8); what lies beyond is quoted history, which is stripped anyway.
pub const MAX_TEXT_BYTES: usize = 320 * 1024;

/// The deepest quote written as `>` marks; deeper quotes are marked this deep.
pub const MAX_QUOTE_MARKS: usize = 16;

/// Refuses a message that declares more than [`MAX_BOUNDARIES`] multipart boundaries.
pub fn check(raw: &[u8]) -> Result<(), ParseError> {
    let declared = count_ignoring_case(raw, b"boundary");
    if declared > MAX_BOUNDARIES {
        return Err(ParseError::new(format!(
            "{declared} multipart boundaries (at most {MAX_BOUNDARIES})"
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
    fn boundaries_are_counted_in_any_case() {
        assert_eq!(
            count_ignoring_case(b"Boundary=a; BOUNDARY=b boundar", b"boundary"),
            2
        );
        assert!(check(&b"boundary=x ".repeat(MAX_BOUNDARIES)).is_ok());
        assert!(check(&b"boundary=x ".repeat(MAX_BOUNDARIES + 1)).is_err());
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let mut text = "aé".repeat(3);
        truncate(&mut text, 5);
        assert_eq!(text, "aéa", "not half of the second é");
    }
}
