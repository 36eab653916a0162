//! Abuse limits kept in Redis, one counter per (kind, subject) living one window from its first
//! hit: the server's request limits and the worker's limit on replies by email count in the
//! same keys, so one user's sends are one budget however they arrive.

use redis::aio::ConnectionManager;
use std::hash::BuildHasher;
use std::time::Duration;

/// The outcome of counting one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Under the limit.
    Allowed,
    /// Over the limit until this much time has passed.
    Limited(Duration),
}

/// The counter of `kind` for `subject` under the key prefix `prefix`.
pub fn key(prefix: &str, kind: &str, subject: &str) -> String {
    format!("{prefix}rl:{kind}:{subject}")
}

/// Counts one attempt against counter `key` (at most `limit` per `window`) and decides, in one
/// atomic round trip (an answer Redis left out, as no counter, is allowed: limits fail open,
/// decision 6).
pub async fn hit(
    conn: &mut ConnectionManager,
    key: &str,
    limit: u32,
    window: Duration,
) -> redis::RedisResult<Decision> {
    let (total, ttl_ms): (i64, i64) = redis::pipe()
        .atomic()
        .incr(key, 1)
        .cmd("PEXPIRE")
        .arg(key)
        .arg(window.as_millis() as u64)
        .arg("NX")
        .ignore()
        .pttl(key)
        .query_async(conn)
        .await?;
    Ok(if u64::try_from(total).unwrap_or(0) > u64::from(limit) {
        Decision::Limited(Duration::from_millis(ttl_ms.max(1000) as u64))
    } else {
        Decision::Allowed
    })
}

/// The default of the daily volume of sends (`CONVOS_SEND_BYTES_PER_DAY`): 20 MB of what sends
/// store, by [`message_volume`] (decision 72).
pub const SEND_BYTES_PER_DAY: u64 = 20_000_000;

/// The least `CONVOS_SEND_BYTES_PER_DAY` a process starts with: about the most one message can
/// count (64,000 characters of distinct one-letter words and compounds), so none is refused
/// every day.
pub const MIN_SEND_BYTES_PER_DAY: u64 = 5_000_000;

/// What any message stores besides its text, in bytes: its row, its entries in the messages'
/// indexes, its thread's subject words copied into its search vector, and the jobs it writes
/// (measured by a probe: a one-byte reply stored 486 bytes of row and some 1,500 of jobs).
pub const MESSAGE_BYTES: u64 = 2_000;

/// What each distinct word of a message stores, in bytes: its entry in the message's search
/// vector and in the two indexes over it (measured by a probe: 95 bytes a word for bodies of
/// distinct four- and five-letter words).
pub const WORD_BYTES: u64 = 100;

/// What a message of `subject` (empty for a reply) and `body` counts against its sender's
/// volume a day: an estimate of what it stores (decision 72). Words are counted as PostgreSQL's
/// `simple` text search configuration finds them, near enough: runs of letters and digits, and
/// each compound it also indexes whole (`12.34.56`, `a-b-c`, host names, paths, addresses:
/// letters and digits joined by [`JOINERS`], ended by anything else, a space or a comma alike).
/// Counting its text's bytes alone let bodies of many short distinct words store 8 to 19 times
/// what they counted; counting runs alone, bodies of number triples 6 times.
///
/// What PostgreSQL finds depends on its database's locale, which the count cannot know, so it
/// counts what either would find: in the C locale, only ASCII letters are folded to lower case
/// and every other character is a letter (`Ça` and `ça`, `x😀y` and `x😀😀y` are distinct
/// words); in others, case folds everywhere and only letters are letters. Folding every case,
/// as first built, let bodies of case variants of one word count a sixth of what a C-locale
/// database stores. One pass over the text, each word kept as a keyed hash, so a refused
/// send's estimate costs little beside reading its body.
pub fn message_volume(subject: &str, body: &str) -> u64 {
    let mut words = Words::default();
    for text in [subject, body] {
        for c in text.chars() {
            words.read(c);
        }
        words.read(' ');
    }
    MESSAGE_BYTES + (subject.len() + body.len()) as u64 + WORD_BYTES * words.seen.len() as u64
}

/// What joins letters and digits into a compound PostgreSQL's parser indexes whole.
const JOINERS: &str = ".-/@_:+~%=?&#";

/// The distinct words of a text read a character at a time.
#[derive(Default)]
struct Words {
    seen: std::collections::HashSet<u64>,
    /// The run of letters and digits being read, ASCII in lower case.
    run: String,
    /// The run being read as the C locale reads it: letters, digits and any non-ASCII
    /// character.
    wide: String,
    /// The compound being read, in lower case, up to its last letter or digit.
    compound: String,
    /// Joiners read since the compound's last letter or digit.
    pending: String,
    /// Whether a joiner stands between two of the compound's letters or digits.
    joined: bool,
}

impl Words {
    fn read(&mut self, c: char) {
        let c = c.to_ascii_lowercase();
        if !c.is_ascii() {
            self.wide.push(c);
        }
        if c.is_alphanumeric() {
            if !self.pending.is_empty() {
                self.compound.push_str(&self.pending);
                self.pending.clear();
                self.joined = true;
            }
            self.run.push(c);
            self.compound.push(c);
            if c.is_ascii() {
                self.wide.push(c);
            }
            return;
        }
        self.end_run();
        if c.is_ascii() {
            self.end_wide();
        }
        if JOINERS.contains(c) && !self.compound.is_empty() {
            self.pending.push(c);
        } else {
            if self.joined {
                self.seen.insert(KEYS.hash_one(self.compound.as_str()));
            }
            self.compound.clear();
            self.pending.clear();
            self.joined = false;
        }
    }

    fn end_run(&mut self) {
        if !self.run.is_empty() {
            self.seen.insert(KEYS.hash_one(self.run.as_str()));
            self.run.clear();
        }
    }

    /// Ends the C locale's run; one that is also a run of letters and digits hashes the same,
    /// and counts once.
    fn end_wide(&mut self) {
        if !self.wide.is_empty() {
            self.seen.insert(KEYS.hash_one(self.wide.as_str()));
            self.wide.clear();
        }
    }
}

/// The key of the words' hashes, fresh in each process, so nobody can choose words that
/// collide.
static KEYS: std::sync::LazyLock<std::hash::RandomState> =
    std::sync::LazyLock::new(std::hash::RandomState::new);

/// What one user may send, however it arrives (the API, a reply by email).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendLimits {
    /// Messages a minute (`CONVOS_SEND_RATE_PER_MIN`).
    pub per_minute: u32,
    /// Bytes a day of what sends store ([`message_volume`]), from the day's first send
    /// (`CONVOS_SEND_BYTES_PER_DAY`).
    pub bytes_per_day: u64,
}

/// Whether a send may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendDecision {
    /// Within both limits.
    Allowed,
    /// Over the messages a minute, until this much time has passed.
    TooFast(Duration),
    /// Over the bytes a day, until this much time has passed.
    DaySent(Duration),
}

/// Counts one send by `user` of `bytes` (its [`message_volume`]) under `prefix` against
/// `limits`, in one round trip: the attempt against the minute (a refused one still counts, as
/// every limited attempt does), then, if the minute allows it, its bytes against the day, only
/// if they fit. Checking and counting the bytes are one step (a script): counted first and
/// checked after, a send too big for the day's rest made one arriving beside it, which fitted,
/// over too.
pub async fn send(
    conn: &mut ConnectionManager,
    prefix: &str,
    user: &str,
    limits: SendLimits,
    bytes: u64,
) -> redis::RedisResult<SendDecision> {
    static SEND: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(
            "local sent = redis.call('INCR', KEYS[1]) \
             redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX') \
             if sent > tonumber(ARGV[1]) then \
               return {1, redis.call('PTTL', KEYS[1])} \
             end \
             local volume = tonumber(redis.call('GET', KEYS[2]) or '0') \
             if volume + tonumber(ARGV[3]) > tonumber(ARGV[4]) then \
               return {2, redis.call('PTTL', KEYS[2])} \
             end \
             redis.call('INCRBY', KEYS[2], ARGV[3]) \
             redis.call('PEXPIRE', KEYS[2], ARGV[5], 'NX') \
             return {0, 0}",
        )
    });
    const MINUTE: Duration = Duration::from_secs(60);
    const DAY: Duration = Duration::from_secs(86_400);
    let (refused, ttl_ms): (i64, i64) = SEND
        .key(key(prefix, "send", user))
        .key(key(prefix, "send_bytes", user))
        .arg(limits.per_minute)
        .arg(MINUTE.as_millis() as u64)
        .arg(bytes)
        .arg(limits.bytes_per_day)
        .arg(DAY.as_millis() as u64)
        .invoke_async(conn)
        .await?;
    // A day's counter that does not exist yet (a send bigger than the whole day) is refused
    // for the day.
    let wait = |window: Duration| {
        if ttl_ms > 0 {
            Duration::from_millis(ttl_ms.max(1000) as u64)
        } else {
            window
        }
    };
    Ok(match refused {
        1 => SendDecision::TooFast(wait(MINUTE)),
        2 => SendDecision::DaySent(wait(DAY)),
        _ => SendDecision::Allowed,
    })
}

/// Takes back a send [`send`] counted that was then refused (an unknown recipient, a thread
/// the sender cannot see).
pub async fn give_back_send(
    conn: &mut ConnectionManager,
    prefix: &str,
    user: &str,
    bytes: u64,
) -> redis::RedisResult<()> {
    forget(conn, &key(prefix, "send", user), 1).await?;
    forget(conn, &key(prefix, "send_bytes", user), bytes).await
}

/// Takes back one counted attempt (a login that succeeded, a send that was refused).
pub async fn forget_one(conn: &mut ConnectionManager, key: &str) -> redis::RedisResult<()> {
    forget(conn, key, 1).await
}

/// Takes back `amount` counted under `key`, if the counter still lives: taken back just after
/// it expired, a `DECRBY` made a negative counter with no expiry, a credit for the next window.
pub async fn forget(
    conn: &mut ConnectionManager,
    key: &str,
    amount: u64,
) -> redis::RedisResult<()> {
    static FORGET: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(
            "if redis.call('EXISTS', KEYS[1]) == 1 then \
               return redis.call('DECRBY', KEYS[1], ARGV[1]) \
             end \
             return 0",
        )
    });
    FORGET
        .key(key)
        .arg(amount)
        .invoke_async::<i64>(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_counts_what_it_stores_its_text_its_distinct_words_and_its_rows() {
        let longest = "x".repeat(64_000);
        assert_eq!(message_volume("", &longest), 2_000 + 64_000 + 100);
        assert_eq!(
            message_volume("Lunch on Friday?", "Sounds good: friday, noon."),
            2_000 + 16 + 26 + 100 * 6,
            "lunch, on, friday, sounds, good, noon: friday counts once, in either case"
        );
        // The probe's bodies: distinct short words stored 95 bytes each beyond their text.
        let distinct: Vec<String> = (0..12_800).map(|i| format!("{i:04x}")).collect();
        let body = distinct.join(" ");
        assert_eq!(body.chars().count(), 63_999);
        assert_eq!(message_volume("", &body), 2_000 + 63_999 + 100 * 12_800);
        // Compounds are indexed whole beside their parts, whatever ends them; prose's
        // punctuation makes none.
        let triples = "12.34.56 12.34.57, (12.34.56);12.34.58,12.34.59";
        assert_eq!(
            message_volume("", triples),
            2_000 + triples.len() as u64 + 100 * (6 + 4),
            "12, 34, 56 to 59 and the four triples"
        );
        let prose = "Hello, world. (Yes: hello!) \"World\"?";
        assert_eq!(
            message_volume("", prose),
            2_000 + prose.len() as u64 + 100 * 3
        );
        // ASCII folds whatever the database's locale; the rest folds only outside the C
        // locale, so it is counted apart.
        let cases = "ça, Ça, ÇA";
        assert_eq!(
            message_volume("", cases),
            2_000 + cases.len() as u64 + 100 * 2,
            "ça and Ça"
        );
    }

    #[test]
    fn what_a_c_locale_database_stores_apart_is_counted_apart() {
        // A C-locale database folds only ASCII letters and reads every other character as a
        // letter: case variants of one word, or one word with symbols inside, are as many
        // words in its search vectors. Counted as one, a body of them stored about six times
        // what it counted (found by review).
        let variants = "привет Привет пРивет ПРИВЕТ";
        assert_eq!(
            message_volume("", variants),
            2_000 + variants.len() as u64 + 100 * 4
        );
        let symbols = "x😀y x😀😀y x😀😀😀y";
        assert_eq!(
            message_volume("", symbols),
            2_000 + symbols.len() as u64 + 100 * (2 + 3),
            "x and y, as another locale reads them, and the three C-locale words"
        );
        // Plain text counts as before: its words are the same either way.
        let prose = "Déjà vu, déjà lu.";
        assert_eq!(
            message_volume("", prose),
            2_000 + prose.len() as u64 + 100 * 3,
            "déjà, vu, lu"
        );
    }
}
