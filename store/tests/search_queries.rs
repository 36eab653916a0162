//! Every search query the store accepts is one PostgreSQL's query parser reads without error.

use convos_store::search::SearchQuery;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use sqlx::PgPool;

/// Queries made of what PostgreSQL's `websearch_to_tsquery` reads as operators (`-`, `or`,
/// quotes, and the characters it skips between them) mixed with words.
fn operator_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        2 => "-{1,50}",
        2 => "[- !&|()<\t\n\u{3000}]{1,80}",
        1 => Just(":".to_owned()),
        1 => Just("*".to_owned()),
        1 => Just("\"".to_owned()),
        1 => Just("or".to_owned()),
        2 => Just("a".to_owned()),
        1 => Just("b-c".to_owned()),
        1 => Just("é".to_owned()),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn every_query_that_parses_is_one_postgresql_reads(db: PgPool) {
    let mut runner = TestRunner::deterministic();
    let strategy = operator_soup();
    let mut read = 0;
    let mut failures = Vec::new();
    for _ in 0..1_500 {
        let raw = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(query) = SearchQuery::parse(&raw) else {
            continue;
        };
        let answer = sqlx::query("select websearch_to_tsquery('simple', $1)")
            .bind(query.as_str())
            .execute(&db)
            .await;
        match answer {
            Ok(_) => read += 1,
            Err(e) => failures.push(format!("{raw:?} (sent as {:?}): {e}", query.as_str())),
        }
    }
    assert!(read > 500, "too few queries parsed to tell ({read})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
