//! Full-text search over the caller's own convos: subjects and bodies of the messages they can
//! see (never a read-once body), ranked, with the matching words marked.
//!
//! Every search does bounded work, whatever the query and the mailbox (decision 0017):
//! - the query is parsed at the edge ([`SearchQuery::parse`]) and limited in words and in the
//!   length of its phrases;
//! - matches are looked for among the caller's own messages only, through per-participant
//!   indexes (migration 0012) over each message's subject and body words (0014, decision 23),
//!   never by scanning everyone's;
//! - only the newest [`CANDIDATES`] matching messages are ranked;
//! - the statement runs under its own, tighter, `statement_timeout`;
//! - the excerpt is cut here, in Rust, from the body around the first match, in one linear
//!   scan. PostgreSQL's `ts_headline` over a whole body grows combinatorially with phrases: a
//!   12-word phrase over a 2,000-word body took gigabytes.

use crate::visibility::{shown_name, visible_to_caller};
use crate::{Result, millis};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use convos_core::UserId;
use convos_core::api::{Page, SearchHit, UserSummary};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// Most characters a query may have.
pub const MAX_CHARS: usize = 200;
/// Most words a query may have (each word of a phrase counts; `or` does not).
pub const MAX_WORDS: usize = 8;
/// Most words one quoted phrase may have.
pub const MAX_PHRASE_WORDS: usize = 4;
/// How many of the newest matching messages are ranked; older matches are not returned.
pub const CANDIDATES: i64 = 1_000;
/// Words an excerpt shows at most.
const EXCERPT_WORDS: usize = 24;
/// Words an excerpt shows before the first match.
const EXCERPT_LEAD: usize = 8;

/// The most characters of a hit's body read for its excerpt: a window starting
/// [`EXCERPT_SOURCE_LEAD`] characters before the first place a search word appears in it (or
/// the body's start). PostgreSQL cuts it, so a page of 100 hits of 64,000 characters is never
/// read whole, nor walked word by word on the request's thread.
pub const EXCERPT_SOURCE: usize = 2_000;

/// Characters of the excerpt's window before the first place a search word appears.
const EXCERPT_SOURCE_LEAD: usize = 300;

/// Why a query is refused; the message tells the user what to shorten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Empty, too long, or holding a NUL.
    #[error("must be 1 to {MAX_CHARS} characters without NUL")]
    Length,
    /// More words than [`MAX_WORDS`].
    #[error("has {0} words; search with at most {MAX_WORDS}")]
    TooManyWords(usize),
    /// A phrase longer than [`MAX_PHRASE_WORDS`].
    #[error("has a quoted phrase of {0} words; quote at most {MAX_PHRASE_WORDS} words together")]
    PhraseTooLong(usize),
}

/// A search query in web-search syntax (words, `"phrases"`, `-exclusions`, `or`), within the
/// limits above, with the words it looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    text: String,
    terms: Vec<String>,
}

impl SearchQuery {
    /// Trims and checks `raw`, and collects the words to mark in excerpts (lowercased; excluded
    /// words and the `or` operator left out).
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let text = raw.trim();
        if text.is_empty() || text.chars().count() > MAX_CHARS || text.contains('\0') {
            return Err(QueryError::Length);
        }
        let mut terms = Vec::new();
        let mut words = 0;
        // The open phrase: its words so far and whether it is excluded.
        let mut phrase: Option<(usize, bool)> = None;
        // A `-` opened the next word or phrase (only at the start of a token, as in PostgreSQL).
        let mut excluding = false;
        let mut at_token_start = true;
        for token in Tokens::new(text) {
            match token {
                Token::Quote => match phrase.take() {
                    Some((n, _)) if n > MAX_PHRASE_WORDS => {
                        return Err(QueryError::PhraseTooLong(n));
                    }
                    Some(_) => {}
                    None => phrase = Some((0, std::mem::take(&mut excluding))),
                },
                Token::Other('-') if phrase.is_none() && at_token_start => excluding = true,
                Token::Other(c) => {
                    excluding = false;
                    at_token_start = c.is_whitespace();
                    continue;
                }
                Token::Word(word) => {
                    let lower = word.to_lowercase();
                    let excluded = match &mut phrase {
                        Some((n, phrase_excluded)) => {
                            *n += 1;
                            *phrase_excluded
                        }
                        // `or` between words is an operator, not a word to find.
                        None if lower == "or" => false,
                        None => std::mem::take(&mut excluding),
                    };
                    if phrase.is_some() || lower != "or" {
                        words += 1;
                        if !excluded && !terms.contains(&lower) {
                            terms.push(lower);
                        }
                    }
                }
            }
            at_token_start = false;
        }
        if let Some((n, _)) = phrase
            && n > MAX_PHRASE_WORDS
        {
            return Err(QueryError::PhraseTooLong(n));
        }
        if words > MAX_WORDS {
            return Err(QueryError::TooManyWords(words));
        }
        Ok(Self {
            text: short_negations(text),
            terms,
        })
    }

    /// The query as PostgreSQL's `websearch_to_tsquery` reads it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The lowercased words an excerpt marks.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }
}

/// Longest run of `-` [`short_negations`] leaves as it is.
const MAX_NEGATIONS: usize = 3;

/// `text` with each long run of negations cut short. PostgreSQL's `websearch_to_tsquery` reads
/// every `-` before a word as a NOT, passing over whitespace and `! & | ( ) <` between them, and
/// stacks the NOTs before the word: past 32 it fails ("tsquery stack too small"), a server
/// error for a query of 33 dashes. A run of those characters holding more than
/// [`MAX_NEGATIONS`] dashes keeps its first two or three, whichever keeps the count's parity,
/// so the query means what it meant (two NOTs cancel out); the other characters stay.
fn short_negations(text: &str) -> String {
    let in_run =
        |c: char| c == '-' || c.is_whitespace() || matches!(c, '!' | '&' | '|' | '(' | ')' | '<');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(in_run) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let end = run.find(|c: char| !in_run(c)).unwrap_or(run.len());
        let dashes = run[..end].matches('-').count();
        let mut keep = if dashes > MAX_NEGATIONS {
            2 + dashes % 2
        } else {
            dashes
        };
        for c in run[..end].chars() {
            if c != '-' {
                out.push(c);
            } else if keep > 0 {
                out.push(c);
                keep -= 1;
            }
        }
        rest = &run[end..];
    }
    out.push_str(rest);
    out
}

/// A piece of query or body text: a word (a run of letters and digits, as PostgreSQL's parser
/// splits them), a double quote, or any other character.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Quote,
    Other(char),
}

/// Splits text into [`Token`]s.
struct Tokens<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let rest = &self.text[self.at..];
        let first = rest.chars().next()?;
        if !first.is_alphanumeric() {
            self.at += first.len_utf8();
            return Some(if first == '"' {
                Token::Quote
            } else {
                Token::Other(first)
            });
        }
        let len = rest
            .char_indices()
            .find(|(_, c)| !c.is_alphanumeric())
            .map_or(rest.len(), |(i, _)| i);
        self.at += len;
        Some(Token::Word(&rest[..len]))
    }
}

/// A short excerpt of `body`: up to [`EXCERPT_WORDS`] words starting a little before the first
/// word that is one of `terms`, every such word between `«` and `»`, whitespace collapsed, `…`
/// where text was cut. Without a match, the body's first words.
///
/// One pass over the body at most, stopping once the excerpt is complete.
pub fn excerpt(body: &str, terms: &[String]) -> String {
    excerpt_of(body, terms, false, false)
}

/// [`excerpt`] of a window of a body: `cut_before` and `cut_after` say whether the body goes on
/// before and after it. A word cut by the window's start is left out.
fn excerpt_of(body: &str, terms: &[String], cut_before: bool, cut_after: bool) -> String {
    let body = if cut_before {
        body.find(|c: char| !c.is_alphanumeric())
            .map_or("", |at| &body[at..])
    } else {
        body
    };
    let is_term = |word: &str| {
        let lower = word.to_lowercase();
        terms.contains(&lower)
    };
    // (start, end, is a match) of each word kept; a sliding window until the first match.
    let mut window: std::collections::VecDeque<(usize, usize, bool)> = Default::default();
    let mut dropped = cut_before;
    let mut matched = false;
    let mut at = 0;
    let mut more = cut_after;
    for token in Tokens::new(body) {
        let start = at;
        at += match token {
            Token::Word(w) => w.len(),
            Token::Quote => 1,
            Token::Other(c) => c.len_utf8(),
        };
        let Token::Word(word) = token else { continue };
        if window.len() == EXCERPT_WORDS {
            if matched {
                more = true;
                break;
            }
            dropped = true;
            window.pop_front();
        }
        let hit = is_term(word);
        window.push_back((start, at, hit));
        if hit && !matched {
            matched = true;
            while window.len() > EXCERPT_LEAD + 1 {
                dropped = true;
                window.pop_front();
            }
        }
    }
    if !matched {
        // No match in the body (the subject matched): show its beginning instead.
        return excerpt_of_start(body, cut_before, cut_after);
    }
    render(body, window.make_contiguous(), dropped, more)
}

/// The first [`EXCERPT_WORDS`] words of `body`.
fn excerpt_of_start(body: &str, cut_before: bool, cut_after: bool) -> String {
    let mut words = Vec::with_capacity(EXCERPT_WORDS);
    let mut at = 0;
    let mut more = cut_after;
    for token in Tokens::new(body) {
        let start = at;
        at += match token {
            Token::Word(w) => w.len(),
            Token::Quote => 1,
            Token::Other(c) => c.len_utf8(),
        };
        if let Token::Word(_) = token {
            if words.len() == EXCERPT_WORDS {
                more = true;
                break;
            }
            words.push((start, at, false));
        }
    }
    render(body, &words, cut_before, more)
}

/// The text from the first to the last of `words`, matches marked.
fn render(body: &str, words: &[(usize, usize, bool)], cut_before: bool, cut_after: bool) -> String {
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return String::new();
    };
    let mut out = String::with_capacity(last.1 - first.0 + 16);
    if cut_before {
        out.push('…');
    } else {
        // Punctuation before the first word (an opening bracket or quote), within reason.
        let before = &body[..first.0];
        let from = before
            .char_indices()
            .rev()
            .nth(EDGE_CHARS - 1)
            .map_or(0, |(i, _)| i);
        let mut lead = String::new();
        push_plain(&mut lead, &before[from..], EDGE_CHARS);
        out.push_str(lead.trim_start());
    }
    let mut at = first.0;
    for &(start, end, hit) in words {
        push_plain(&mut out, &body[at..start], usize::MAX);
        if hit {
            out.push('«');
            out.push_str(&body[start..end]);
            out.push('»');
        } else {
            out.push_str(&body[start..end]);
        }
        at = end;
    }
    if cut_after {
        out.push('…');
    } else {
        push_plain(&mut out, &body[at..], EDGE_CHARS);
        out.truncate(out.trim_end().len());
    }
    out
}

/// Characters of punctuation kept before the first or after the last word of a body.
const EDGE_CHARS: usize = 16;

/// Up to `max` characters of text between words: whitespace and controls become one space, and
/// the marks themselves are replaced so that only ours delimit matches.
fn push_plain(out: &mut String, text: &str, max: usize) {
    for c in text.chars().take(max) {
        match c {
            c if c.is_whitespace() || c.is_control() => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            '«' => out.push('‹'),
            '»' => out.push('›'),
            c => out.push(c),
        }
    }
}

#[derive(sqlx::FromRow)]
struct HitRow {
    id: Uuid,
    thread_id: Uuid,
    subject: String,
    sender_id: Uuid,
    sender_username: String,
    sender_display_name: String,
    body: Option<String>,
    body_cut_before: bool,
    body_cut_after: bool,
    created_at: DateTime<Utc>,
    rank: f32,
}

/// Encodes a result offset as an opaque cursor (ranked results have no stable key to page by).
pub fn cursor(offset: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("search:{offset}"))
}

/// Decodes a search cursor.
pub fn offset(cursor: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("search:")?
        .parse()
        .ok()
        .filter(|o| *o >= 0)
}

/// The caller's messages in one role (`recipient` or `sender`) that match `$2` by their
/// subject or body (a message's search vector holds both, and never a read-once body:
/// migration 0014), newest first, at most `$5`.
///
/// One index path over the caller's own messages, whichever the planner finds cheaper for the
/// words: walking `messages_<role>_created` from the newest until `$5` match (a common word),
/// or intersecting the caller's and the word's entries in `messages_<role>_search` (a rare
/// one). The visibility test here is [`visible_to_caller`] for one role, written so the
/// planner estimates the role's rows right; the statement applies [`visible_to_caller`] itself
/// again to the candidates.
macro_rules! matches_as {
    ($role:literal) => {
        concat!(
            "(select m.id, m.created_at from messages m \
              where m.",
            $role,
            "_id = $1 \
                and m.search @@ websearch_to_tsquery('simple', $2) \
                and m.consumed_at is null and m.purged_at is null \
                and (m.expires_at is null or m.expires_at > now()) \
                and m.",
            $role,
            "_deleted_at is null \
              order by m.created_at desc, m.id desc limit $5)"
        )
    };
}

/// The search statement. Binds: `$1` the caller, `$2` the query text, `$3` rows to return,
/// `$4` rows to skip, `$5` candidates to rank ([`CANDIDATES`]), `$6` the query's words
/// ([`SearchQuery::terms`]), `$7` and `$8` [`EXCERPT_SOURCE`] and [`EXCERPT_SOURCE_LEAD`].
///
/// Innermost, the newest matching messages the caller can see (at most `$5`), found among the
/// caller's own messages only (migrations 0012 and 0014); then their ranks (a subject word
/// weighs twice a body word) and the page; only then the page's subjects, senders and, of each
/// body, the window its excerpt is made from ([`EXCERPT_SOURCE`] characters from a little before
/// the first place one of the words appears, found by `strpos` of the lower-cased body). The
/// query is written out where it is used, so that PostgreSQL folds it to a constant and
/// estimates each word's frequency.
pub const SEARCH_SQL: &str = concat!(
    "select m.id, m.thread_id, t.subject, s.id as sender_id, \
                s.username as sender_username, ",
    shown_name!("$1", "s"),
    " as sender_display_name, \
                case when m.read_once then null \
                     else substr(m.body, w.start, $7) end as body, \
                w.start > 1 as body_cut_before, \
                char_length(m.body) >= w.start + $7 as body_cut_after, \
                m.created_at, page.rank \
         from ( \
           select c.id, c.created_at, \
                  ts_rank('{0.5, 0.5, 0.5, 1.0}', m.search, \
                          websearch_to_tsquery('simple', $2))::float4 as rank \
           from ( \
             select id, created_at from (",
    matches_as!("recipient"),
    " union ",
    matches_as!("sender"),
    "    ) matching \
             order by created_at desc, id desc limit $5 \
           ) c \
           join messages m on m.id = c.id \
           where ",
    visible_to_caller!(),
    "  order by rank desc, c.created_at desc, c.id desc limit $3 offset $4 \
         ) page \
         join messages m on m.id = page.id \
         cross join lateral ( \
           select greatest(1, coalesce(min(nullif(strpos(lower(m.body), term), 0)), 1) - $8) \
             as start \
           from unnest($6::text[]) term where not m.read_once) w \
         join threads t on t.id = m.thread_id \
         join users s on s.id = m.sender_id \
         order by page.rank desc, page.created_at desc, page.id desc"
);

/// The binds of [`SEARCH_SQL`] for `caller`'s `query`: `limit` rows after `offset`. One copy,
/// for the store, the tests and the bench that run the statement (a bench's explain of it
/// bound five of its eight).
pub fn arguments(
    caller: UserId,
    query: &SearchQuery,
    limit: i64,
    offset: i64,
) -> std::result::Result<PgArguments, sqlx::Error> {
    let mut args = PgArguments::default();
    let encoded = (|| {
        args.add(caller.as_uuid())?;
        args.add(query.as_str().to_owned())?;
        args.add(limit)?;
        args.add(offset)?;
        args.add(CANDIDATES)?;
        args.add(query.terms().to_vec())?;
        args.add(EXCERPT_SOURCE as i32)?;
        args.add(EXCERPT_SOURCE_LEAD as i32)
    })();
    encoded.map_err(sqlx::Error::Encode)?;
    Ok(args)
}

/// Settings of the search transaction, beside its `statement_timeout`: a plan made for each
/// query's words (a generic plan cannot tell a rare word from a common one, and so cannot pick
/// the index path), and no JIT compilation (it cost ~100 ms, more than the search itself, when
/// the estimates of a large mailbox crossed `jit_above_cost`).
pub const SEARCH_SETTINGS_SQL: &str = "select set_config('statement_timeout', $1, true), \
       set_config('plan_cache_mode', 'force_custom_plan', true), \
       set_config('jit', 'off', true)";

/// One page of results for `query`, best first, among the newest [`CANDIDATES`] matches.
///
/// The statement may run for `timeout` at most; past it PostgreSQL cancels it and this returns
/// [`crate::StoreError::TimedOut`].
pub async fn search(
    db: &PgPool,
    caller: UserId,
    query: &SearchQuery,
    limit: i64,
    offset: i64,
    timeout: Duration,
) -> Result<Page<SearchHit>> {
    let mut tx = db.begin().await?;
    sqlx::query(SEARCH_SETTINGS_SQL)
        .bind(millis(timeout))
        .execute(&mut *tx)
        .await?;
    let rows: Vec<HitRow> =
        sqlx::query_as_with(SEARCH_SQL, arguments(caller, query, limit + 1, offset)?)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    let more = rows.len() as i64 > limit;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| SearchHit {
            message_id: r.id.into(),
            thread_id: r.thread_id.into(),
            subject: r.subject,
            sender: UserSummary {
                id: r.sender_id.into(),
                username: r.sender_username,
                display_name: r.sender_display_name,
            },
            excerpt: r
                .body
                .map(|body| excerpt_of(&body, query.terms(), r.body_cut_before, r.body_cut_after)),
            created_at: r.created_at,
            rank: r.rank,
        })
        .collect();
    Ok(Page {
        items,
        next_cursor: more.then(|| cursor(offset + limit)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_query_either_parses_within_limits_or_says_why(raw in "\\PC{0,220}") {
            match SearchQuery::parse(&raw) {
                Ok(q) => {
                    prop_assert!(q.terms().len() <= MAX_WORDS);
                    prop_assert!(q.as_str().chars().count() <= MAX_CHARS);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn any_excerpt_is_short_and_its_marks_pair_up(
            body in "[a-zA-Zé «»\\n.,!-]{0,2000}",
            term in "[a-zé]{1,3}",
        ) {
            let shown = excerpt(&body, &[term]);
            prop_assert!(shown.matches('«').count() <= EXCERPT_WORDS);
            prop_assert_eq!(shown.matches('«').count(), shown.matches('»').count());
            prop_assert!(!shown.contains('\n'));
        }
    }

    #[test]
    fn long_runs_of_negations_are_cut_to_two_or_three_keeping_what_they_mean() {
        let dashes = |n| "-".repeat(n);
        assert_eq!(short_negations(&format!("{}a", dashes(40))), "--a");
        assert_eq!(short_negations(&format!("{}a", dashes(41))), "---a");
        assert_eq!(short_negations("- - - - a"), "- -   a");
        assert_eq!(
            short_negations("-!-(-|-a"),
            "-!-(|a",
            "the skipped characters stay"
        );
        assert_eq!(
            short_negations("e-mail ---a b-c"),
            "e-mail ---a b-c",
            "short runs stay"
        );
        assert_eq!(short_negations("a b"), "a b");
    }

    fn terms(q: &str) -> Vec<String> {
        SearchQuery::parse(q).expect("query parses").terms
    }

    #[test]
    fn a_window_cut_inside_a_word_leaves_the_word_out_and_says_so() {
        let ramen = ["ramen".to_owned()];
        assert_eq!(
            excerpt_of("dle soup and ramen tonight", &ramen, true, true),
            "…soup and «ramen» tonight…"
        );
        assert_eq!(
            excerpt_of("dle soup tonight", &ramen, true, false),
            "…soup tonight"
        );
    }

    #[test]
    fn a_query_keeps_the_words_it_looks_for_and_drops_exclusions_and_or() {
        assert_eq!(terms("Ramen"), ["ramen"]);
        assert_eq!(terms("ramen or udon -soba"), ["ramen", "udon"]);
        assert_eq!(
            terms("\"new ramen\" -\"old place\" near"),
            ["new", "ramen", "near"]
        );
        assert_eq!(
            terms("e-mail"),
            ["e", "mail"],
            "a hyphen inside a word is no exclusion"
        );
        assert_eq!(
            terms("'); drop table users; -- \" or"),
            ["drop", "table", "users", "or"]
        );
    }

    #[test]
    fn a_query_is_refused_when_too_long_too_wordy_or_with_a_long_phrase() {
        assert_eq!(SearchQuery::parse("  "), Err(QueryError::Length));
        assert_eq!(SearchQuery::parse("a\0b"), Err(QueryError::Length));
        assert_eq!(
            SearchQuery::parse(&"a".repeat(201)),
            Err(QueryError::Length)
        );
        assert!(SearchQuery::parse(&"a".repeat(200)).is_ok());
        assert_eq!(
            SearchQuery::parse("one two three four five six seven eight nine"),
            Err(QueryError::TooManyWords(9))
        );
        assert!(SearchQuery::parse("one or two or three or four or five or six").is_ok());
        assert_eq!(
            SearchQuery::parse("\"word word word word word\""),
            Err(QueryError::PhraseTooLong(5))
        );
        assert_eq!(
            SearchQuery::parse("\"word word word word word"),
            Err(QueryError::PhraseTooLong(5)),
            "an unclosed quote runs to the end, as in PostgreSQL"
        );
        let bomb = format!("\"{}\"", ["word"; 12].join(" "));
        assert_eq!(
            SearchQuery::parse(&bomb),
            Err(QueryError::PhraseTooLong(12))
        );
        assert!(SearchQuery::parse("\"word word word word\" other").is_ok());
    }

    #[test]
    fn an_excerpt_marks_matches_around_the_first_one() {
        let ramen = vec!["ramen".to_owned()];
        assert_eq!(
            excerpt("The new Ramen place\nopened near the station.", &ramen),
            "The new «Ramen» place opened near the station."
        );
        let long = format!(
            "{} ramen {}",
            ["early"; 30].join(" "),
            ["late"; 30].join(" ")
        );
        let shown = excerpt(&long, &ramen);
        assert!(shown.starts_with("…early"), "{shown}");
        assert!(shown.ends_with("late…"), "{shown}");
        assert_eq!(shown.split_whitespace().count(), EXCERPT_WORDS, "{shown}");
        assert_eq!(
            shown
                .split_whitespace()
                .take_while(|w| !w.contains('«'))
                .count(),
            EXCERPT_LEAD
        );
    }

    #[test]
    fn an_excerpt_without_a_match_shows_the_start_and_only_our_marks_delimit() {
        let none = vec!["absent".to_owned()];
        let body = ["word"; 100].join(" ");
        let shown = excerpt(&body, &none);
        assert_eq!(shown.split_whitespace().count(), EXCERPT_WORDS);
        assert!(shown.ends_with("word…"), "{shown}");
        assert_eq!(
            excerpt("a «quoted» ramen", &["ramen".to_owned()]),
            "a ‹quoted› «ramen»"
        );
        assert_eq!(excerpt("", &none), "");
        assert_eq!(
            excerpt("  (see the ramen!)  ", &["ramen".to_owned()]),
            "(see the «ramen»!)"
        );
    }

    #[test]
    fn an_excerpt_of_the_largest_body_stays_short() {
        let body = "word ".repeat(12_800);
        let shown = excerpt(&body, &["word".to_owned()]);
        assert_eq!(shown.matches('«').count(), EXCERPT_WORDS);
        assert!(shown.len() < 300, "{shown}");
    }
}
