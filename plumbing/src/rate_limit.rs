//! Abuse limits kept in Redis, one counter per (kind, subject) living one window from its first
//! hit: the server's request limits and the worker's limit on replies by email count in the
//! same keys, so one user's sends are one budget however they arrive.

use redis::aio::ConnectionLike;
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
    conn: &mut (impl ConnectionLike + Send),
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

/// The least `CONVOS_SEND_BYTES_PER_DAY` a process starts with: more than the most one message
/// can count (a word a character, [`message_volume`]), so none is refused every day.
pub const MIN_SEND_BYTES_PER_DAY: u64 = 7_000_000;

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
/// `simple` text search configuration finds them, near enough: runs of letters and digits,
/// each compound it also indexes whole (`12.34.56`, `a-b-c`, host names, paths, addresses:
/// letters and digits joined by [`is_joiner`]'s, ended by anything else, a space or a comma
/// alike),
/// a compound's host and path apart (`a.b/c` is a URL, its host and its path), and a number's
/// signed forms apart (`-5`, `+5`). Counting its text's bytes alone let bodies of many short
/// distinct words store 8 to 19 times what they counted; counting runs alone, bodies of number
/// triples 6 times.
///
/// What PostgreSQL finds depends on its database's locale, which the count cannot know, so it
/// counts what either would find ([`Reader`]): in the C locale, only ASCII letters are folded
/// to lower case and every other character is a letter (`Ça` and `ça`, `x😀y` and `x😀😀y`,
/// `¡-¢` are words); in others, case folds everywhere and only letters are letters. Folding
/// every case and reading only letters, as first built, let bodies of words a C-locale
/// database keeps apart count a sixth to a tenth of what it stores (found by reviews). A
/// message counts at most one word per character of its text, more than PostgreSQL finds in
/// any text, so no message counts more than [`MIN_SEND_BYTES_PER_DAY`]. One pass over the text,
/// each word kept as a keyed hash, so a refused send's estimate costs little beside reading its
/// body.
pub fn message_volume(subject: &str, body: &str) -> u64 {
    let mut words = Words::default();
    let chars = words.read(subject) + words.read(body);
    let counted = (words.seen.len() as u64).min(chars);
    MESSAGE_BYTES + (subject.len() + body.len()) as u64 + WORD_BYTES * counted
}

/// Whether `c` joins letters and digits into a compound PostgreSQL's parser indexes whole
/// (`.-/@_:+~%=?&#`).
fn is_joiner(c: char) -> bool {
    matches!(
        c,
        '.' | '-' | '/' | '@' | '_' | ':' | '+' | '~' | '%' | '=' | '?' | '&' | '#'
    )
}

/// The distinct words of texts, as keyed hashes (already spread, so the set does not hash
/// them again).
#[derive(Default)]
struct Words {
    seen: std::collections::HashSet<u64, std::hash::BuildHasherDefault<Spread>>,
    /// Where a word is put in lower case to be hashed (one buffer, reused).
    lower: String,
}

impl Words {
    /// Reads the words of `text` as both readings find them; returns its length in characters.
    fn read(&mut self, text: &str) -> u64 {
        let mut readers = [Reader::new(false), Reader::new(true)];
        let mut chars = 0;
        for (at, c) in text.char_indices() {
            for reader in &mut readers {
                reader.read(text, at, c, self);
            }
            chars += 1;
        }
        for reader in &mut readers {
            reader.read(text, text.len(), ' ', self);
        }
        chars
    }

    /// Counts `word` with ASCII in lower case: every locale folds it, only some fold the rest.
    fn count(&mut self, word: &str) {
        self.lower.clear();
        self.lower
            .extend(word.chars().map(|c| c.to_ascii_lowercase()));
        self.seen.insert(KEYS.hash_one(self.lower.as_str()));
    }
}

/// One reading of a text's words, as byte ranges of it: as every locale but C reads letters
/// (Unicode's letters and digits), or as the C locale does (any non-ASCII character too).
struct Reader {
    c_locale: bool,
    /// Where the run of letters being read starts (at its sign, if it has one).
    run: Option<usize>,
    /// Whether the run starts with a sign (`-` or `+` right before a digit, at a word's start).
    signed: bool,
    /// Where the compound being read starts, and where its last letter ends.
    compound: Option<(usize, usize)>,
    /// Where the joiners read since the last letter start.
    pending: Option<usize>,
    /// Whether a joiner stands between two of the compound's letters.
    joined: bool,
    /// Whether the run, and the compound, hold a letter only the C locale calls one. A word
    /// of the C locale's reading without one is a word of the other reading too, counted
    /// there.
    run_own: bool,
    compound_own: bool,
}

impl Reader {
    fn new(c_locale: bool) -> Self {
        Self {
            c_locale,
            run: None,
            signed: false,
            compound: None,
            pending: None,
            joined: false,
            run_own: false,
            compound_own: false,
        }
    }

    fn read(&mut self, text: &str, at: usize, c: char, words: &mut Words) {
        let alphanumeric = c.is_alphanumeric();
        if alphanumeric || (self.c_locale && !c.is_ascii()) {
            if let Some(from) = self.pending.take() {
                if self.compound.is_some() {
                    self.joined = true;
                } else if matches!(&text[from..at], "-" | "+") && c.is_ascii_digit() {
                    // `-5` is a word apart from `5`.
                    self.run = Some(from);
                    self.signed = true;
                }
            }
            self.run.get_or_insert(at);
            let start = self.compound.map_or(at, |(start, _)| start);
            self.compound = Some((start, at + c.len_utf8()));
            self.run_own |= !alphanumeric;
            self.compound_own |= !alphanumeric;
            return;
        }
        self.end_run(text, at, words);
        if is_joiner(c) {
            self.pending.get_or_insert(at);
        } else {
            self.end_compound(text, words);
        }
    }

    fn end_run(&mut self, text: &str, at: usize, words: &mut Words) {
        let own = std::mem::take(&mut self.run_own);
        let signed = std::mem::take(&mut self.signed);
        let Some(from) = self.run.take() else {
            return;
        };
        if self.c_locale && !own {
            return;
        }
        let run = &text[from..at];
        words.count(run);
        if signed {
            words.count(&run[1..]);
        }
    }

    fn end_compound(&mut self, text: &str, words: &mut Words) {
        self.pending = None;
        let joined = std::mem::take(&mut self.joined);
        let own = std::mem::take(&mut self.compound_own);
        let Some((from, to)) = self.compound.take() else {
            return;
        };
        if !joined || (self.c_locale && !own) {
            return;
        }
        let compound = &text[from..to];
        words.count(compound);
        // A URL's host and path are indexed apart too.
        if let Some(slash) = compound.find('/').filter(|&i| i > 0) {
            words.count(&compound[..slash]);
            words.count(&compound[slash..]);
        }
    }
}

/// The key of the words' hashes, fresh in each process, so nobody can choose words that
/// collide (foldhash: with it instead of SipHash, the densest body counted in 4.5 ms instead of
/// 6.4, decision 72).
static KEYS: std::sync::LazyLock<foldhash::fast::RandomState> =
    std::sync::LazyLock::new(foldhash::fast::RandomState::default);

/// The set of [`Words`]'s hasher: its keys are keyed hashes already.
#[derive(Default)]
struct Spread(u64);

impl std::hash::Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

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
    conn: &mut (impl ConnectionLike + Send),
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

/// Why a send [`send`] counted stored nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsent {
    /// Refused for what it names (an unknown recipient, a thread the sender cannot see), or a
    /// replay of a twin that stored it: its attempt and its bytes are given back.
    Refused,
    /// Failed (the database): its bytes are given back, its attempt still counts against the
    /// minute, so a client retrying in a loop while the database is in trouble stays limited.
    Failed,
}

/// Takes back what [`send`] counted of a send of `bytes` that then stored nothing.
pub async fn give_back_send(
    conn: &mut (impl ConnectionLike + Send),
    prefix: &str,
    user: &str,
    bytes: u64,
    unsent: Unsent,
) -> redis::RedisResult<()> {
    if unsent == Unsent::Refused {
        forget(conn, &key(prefix, "send", user), 1).await?;
    }
    forget(conn, &key(prefix, "send_bytes", user), bytes).await
}

/// Takes back one counted attempt (a login that succeeded, a send that was refused).
pub async fn forget_one(
    conn: &mut (impl ConnectionLike + Send),
    key: &str,
) -> redis::RedisResult<()> {
    forget(conn, key, 1).await
}

/// Takes back `amount` counted under `key`, if the counter still lives: taken back just after
/// it expired, a `DECRBY` made a negative counter with no expiry, a credit for the next window.
pub async fn forget(
    conn: &mut (impl ConnectionLike + Send),
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

    /// The distinct words `body` counts, as a reply.
    fn words(body: &str) -> u64 {
        (message_volume("", body) - MESSAGE_BYTES - body.len() as u64) / WORD_BYTES
    }

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
            words(triples),
            6 + 4,
            "12, 34, 56 to 59 and the four triples"
        );
        let prose = "Hello, world. (Yes: hello!) \"World\"?";
        assert_eq!(words(prose), 3);
        // ASCII folds whatever the database's locale; the rest folds only outside the C
        // locale, so it is counted apart.
        let cases = "ça, Ça, ÇA";
        assert_eq!(words(cases), 2, "ça and Ça");
    }

    #[test]
    fn a_urls_host_and_path_and_a_numbers_signs_are_words_apart() {
        // Indexed apart by every locale: counted as one, bodies of them stored about 2.5
        // times what they counted (found by review).
        let url = "abc.de/fgh";
        assert_eq!(words(url), 6, "abc, de, fgh, abc.de/fgh, abc.de and /fgh");
        let signed = "10000 -10000 +10000";
        assert_eq!(words(signed), 3);
        let not_signed = "a-5 - 5";
        assert_eq!(
            words(not_signed),
            3,
            "a, 5 and a-5: a joiner inside a word, or standing alone, signs nothing"
        );
    }

    #[test]
    fn no_message_counts_more_than_the_least_day_a_process_starts_with() {
        // At most a word a character, so the longest subject and body of four-byte
        // characters, each a word, still fit in the least day allowed: none is refused every
        // day.
        let chars = 140 + 64_000;
        assert!(MESSAGE_BYTES + 4 * chars + WORD_BYTES * chars <= MIN_SEND_BYTES_PER_DAY);
        // Short URLs after a symbol: each part, whole, host and path a word, and again as the
        // C locale reads them, the symbol a letter: more words than characters, uncapped.
        let mut body = String::new();
        for i in 0..8_000u32 {
            let letter = |from: u32| char::from_u32(from + i).unwrap();
            let (a, b, c) = (letter(0x4e00), letter(0xac00), letter(0x20000));
            body.push_str(&format!("×{a}.{b}/{c} "));
        }
        let subject: String = (0..140u32)
            .map(|i| char::from_u32(0x10000 + i).unwrap())
            .collect();
        let counted = message_volume(&subject, &body);
        let counted_words =
            (counted - MESSAGE_BYTES - (subject.len() + body.len()) as u64) / WORD_BYTES;
        assert_eq!(
            counted_words,
            (subject.chars().count() + body.chars().count()) as u64,
            "a word a character, at most"
        );
        assert!(counted <= MIN_SEND_BYTES_PER_DAY);
    }

    #[test]
    fn what_a_c_locale_database_stores_apart_is_counted_apart() {
        // A C-locale database folds only ASCII letters and reads every other character as a
        // letter: case variants of one word, or one word with symbols inside, are as many
        // words in its search vectors. Counted as one, a body of them stored about six times
        // what it counted (found by review).
        let variants = "привет Привет пРивет ПРИВЕТ";
        assert_eq!(words(variants), 4);
        let symbols = "x😀y x😀😀y x😀😀😀y";
        assert_eq!(
            words(symbols),
            2 + 3,
            "x and y, as another locale reads them, and the three C-locale words"
        );
        // Compounds of such letters are words in the C locale, beside their parts.
        let symbols = "¡-¢ ¡-£";
        assert_eq!(words(symbols), 5, "¡, ¢, £, ¡-¢ and ¡-£");
        // Plain text counts as before: its words are the same either way.
        let prose = "Déjà vu, déjà lu.";
        assert_eq!(words(prose), 3, "déjà, vu, lu");
    }
}
