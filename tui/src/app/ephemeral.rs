//! Ephemeral and read-once messages: the options a message is sent with (how long until it
//! disappears for both sides, and whether its recipient can read it only once), the durations
//! the composer offers or reads from what is typed (`10m`, `90m`, `2h`, `3d`, `1w`), the
//! requests they go out in, and the times at which expiring messages change on screen.

use chrono::{DateTime, Utc};
use convos_core::ExpiresIn;
use convos_core::api::{CreateMessageRequest, CreateReplyRequest};

/// How a message is sent: plain by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendOptions {
    /// Seconds until it disappears for both sides (10 to 2,592,000); `None`: it stays.
    #[serde(default)]
    pub expires_in: Option<u32>,
    /// The recipient can open the body once.
    #[serde(default)]
    pub read_once: bool,
}

/// The expiries the composer's expiry key steps through, in order, before "never" again.
pub const PRESETS: [&str; 4] = ["10m", "1h", "1d", "1w"];

/// The preset after `current` (what the expiry field holds): never, 10m, 1h, 1d, 1w, never.
/// A typed duration steps to the first preset longer than it.
pub fn next_preset(current: &str) -> String {
    let current = parse_duration(current).ok().flatten();
    let next = match current {
        None => Some(PRESETS[0]),
        Some(secs) => PRESETS
            .iter()
            .find(|p| parse_duration(p).ok().flatten().is_some_and(|p| p > secs))
            .copied(),
    };
    next.unwrap_or_default().to_owned()
}

/// Reads a typed duration: numbers with a unit each (`s`, `m`, `h`, `d`, `w`), as in `90m`,
/// `2h`, `1h30m`, `3d`; an empty text means no expiry. The result is within the API's limits,
/// or the reason it is not, worded for the field.
pub fn parse_duration(text: &str) -> Result<Option<u32>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "{c:?} is not a unit: use s, m, h, d or w (as in 90m)"
                ));
            }
        };
        let n: i64 = number
            .parse()
            .map_err(|_| "put a number before each unit (as in 2h)".to_owned())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!(
            "add a unit: {number}s, {number}m, {number}h or {number}d"
        ));
    }
    let limits = || {
        format!(
            "must be between {} and {} (30 days)",
            describe(ExpiresIn::MIN as u32),
            describe(ExpiresIn::MAX as u32)
        )
    };
    let lifetime = ExpiresIn::parse(total).map_err(|_| limits())?;
    Ok(Some(lifetime.seconds()))
}

/// A lifetime the way it is typed: `10s`, `90m`, `2h`, `3d`, `1w` (the largest unit that
/// divides it).
pub fn describe(secs: u32) -> String {
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

impl SendOptions {
    /// Whether it is sent as anything but a plain message.
    pub fn is_plain(self) -> bool {
        self == Self::default()
    }

    /// The options in a few words, for titles and the status after sending:
    /// "disappears 1h after sending · read once".
    pub fn summary(self) -> String {
        let mut parts = Vec::new();
        if let Some(secs) = self.expires_in {
            parts.push(format!("disappears {} after sending", describe(secs)));
        }
        if self.read_once {
            parts.push("read once".to_owned());
        }
        parts.join(" · ")
    }

    /// The request that starts a thread with these options.
    pub fn message_request(
        self,
        recipient: &str,
        subject: &str,
        body: &str,
    ) -> CreateMessageRequest {
        CreateMessageRequest {
            recipient: Some(recipient.to_owned()),
            subject: Some(subject.to_owned()),
            body: Some(body.to_owned()),
            expires_in: self.expires_in.map(i64::from),
            read_once: self.read_once.then_some(true),
        }
    }

    /// The request that replies with these options.
    pub fn reply_request(self, body: &str) -> CreateReplyRequest {
        CreateReplyRequest {
            body: Some(body.to_owned()),
            expires_in: self.expires_in.map(i64::from),
            read_once: self.read_once.then_some(true),
        }
    }
}

/// Whole seconds left until `until`, rounded up (0 once it has passed).
pub fn seconds_left(until: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    ((until - now).num_milliseconds().max(0) + 999) / 1000
}

/// When the screen next changes for something that expires at `until`: when its countdown
/// (seconds under a minute, then whole minutes, hours, days) shows a new number, or when it
/// goes. `None` once it has gone.
pub fn next_change(until: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let left = seconds_left(until, now);
    if left == 0 {
        return None;
    }
    // The count shown changes when the seconds left reach the next smaller number shown.
    let next = match left {
        0..60 => left - 1,
        60..3600 => left / 60 * 60 - 1,
        3600..86_400 => left / 3600 * 3600 - 1,
        _ => left / 86_400 * 86_400 - 1,
    };
    Some(until - chrono::TimeDelta::seconds(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn typed_durations_read_as_seconds_within_the_api_limits() {
        assert_eq!(parse_duration(""), Ok(None));
        assert_eq!(parse_duration("90m"), Ok(Some(5400)));
        assert_eq!(parse_duration("2h"), Ok(Some(7200)));
        assert_eq!(parse_duration("3d"), Ok(Some(259_200)));
        assert_eq!(parse_duration("1h30m"), Ok(Some(5400)));
        assert_eq!(parse_duration("10s"), Ok(Some(10)));
        assert_eq!(parse_duration("30d"), Ok(Some(2_592_000)));
        assert!(
            parse_duration("9s")
                .unwrap_err()
                .contains("between 10s and 30d")
        );
        assert!(parse_duration("31d").is_err());
        assert!(parse_duration("90").unwrap_err().contains("add a unit"));
        assert!(parse_duration("5y").unwrap_err().contains("not a unit"));
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn lifetimes_are_described_as_they_are_typed() {
        assert_eq!(describe(600), "10m");
        assert_eq!(describe(5400), "90m");
        assert_eq!(describe(604_800), "1w");
        assert_eq!(describe(45), "45s");
    }

    #[test]
    fn the_expiry_key_steps_through_the_presets_and_back_to_never() {
        let mut text = String::new();
        let mut seen = Vec::new();
        for _ in 0..5 {
            text = next_preset(&text);
            seen.push(text.clone());
        }
        assert_eq!(seen, ["10m", "1h", "1d", "1w", ""]);
        assert_eq!(
            next_preset("90m"),
            "1d",
            "a typed duration steps to the next longer one"
        );
    }

    #[test]
    fn the_requests_carry_the_options() {
        let plain = SendOptions::default().reply_request("hi");
        assert_eq!((plain.expires_in, plain.read_once), (None, None));
        let options = SendOptions {
            expires_in: Some(600),
            read_once: true,
        };
        let new = options.message_request("bob", "Hi", "there");
        assert_eq!((new.expires_in, new.read_once), (Some(600), Some(true)));
        assert_eq!(
            options.summary(),
            "disappears 10m after sending · read once"
        );
    }

    #[test]
    fn the_screen_changes_when_the_countdown_shows_a_new_number_or_it_goes() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
        let ms = chrono::TimeDelta::milliseconds;
        let at = |left_ms: i64| next_change(now + ms(left_ms), now).map(|t| t - now);
        assert_eq!(at(30_000), Some(ms(1_000)), "30s, then 29s");
        assert_eq!(at(30_500), Some(ms(500)), "31s (rounded up), then 30s");
        assert_eq!(at(1_000), Some(ms(1_000)), "1s, then gone");
        assert_eq!(at(60_000), Some(ms(1_000)), "1m, then 59s");
        assert_eq!(at(125_000), Some(ms(6_000)), "2m, then 1m");
        assert_eq!(at(7_200_000), Some(ms(1_000)), "2h, then 1h");
        assert_eq!(at(5_400_000), Some(ms(1_801_000)), "1h, then 59m");
        assert_eq!(next_change(now, now), None);
        assert_eq!(at(500), Some(ms(500)), "then it goes");
    }
}
