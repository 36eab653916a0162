//! The reply corpus: real mail clients' replies to a Convos notification (`tests/replies/`,
//! each `NAME.eml` with its `NAME.expected.txt`), parsed and stripped to their new text; the
//! fraction stripped exactly right is printed and must not fall.

use std::path::{Path, PathBuf};

/// Cases known to come out wrong, each with why.
const KNOWN_MISSES: &[(&str, &str)] = &[];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replies")
}

/// Every case in the corpus: its name, raw message and expected new text.
fn corpus() -> Vec<(String, Vec<u8>, String)> {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("the corpus directory tests/replies exists")
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .map(|path| {
            path.file_stem()
                .expect("an .eml file has a stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let dir = corpus_dir();
            let raw = std::fs::read(dir.join(format!("{name}.eml")))
                .unwrap_or_else(|e| panic!("reading {name}.eml: {e}"));
            let expected = std::fs::read_to_string(dir.join(format!("{name}.expected.txt")))
                .unwrap_or_else(|e| panic!("reading {name}.expected.txt: {e}"));
            let expected = expected.strip_suffix('\n').unwrap_or(&expected).to_owned();
            (name, raw, expected)
        })
        .collect()
}

fn new_text_of(raw: &[u8]) -> String {
    let parsed = convos_mail::parsed::parse(raw).expect("every corpus message parses");
    convos_mail::quotes::new_text(&parsed.text)
}

#[test]
fn the_corpus_is_stripped_exactly_right() {
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());

    let mut wrong = Vec::new();
    for (name, raw, expected) in &cases {
        let got = new_text_of(raw);
        if &got != expected {
            wrong.push((name.clone(), expected.clone(), got));
        }
    }
    let right = cases.len() - wrong.len();
    println!(
        "stripped exactly right: {right}/{} ({:.1}%)",
        cases.len(),
        100.0 * right as f64 / cases.len() as f64
    );
    for (name, expected, got) in &wrong {
        println!("  wrong: {name}\n    expected: {expected:?}\n    got:      {got:?}");
    }

    let unexpected: Vec<&str> = wrong
        .iter()
        .map(|(name, _, _)| name.as_str())
        .filter(|name| !KNOWN_MISSES.iter().any(|(known, _)| known == name))
        .collect();
    assert!(
        unexpected.is_empty(),
        "stripped wrong: {unexpected:?} (see the output above)"
    );
    let now_right: Vec<&str> = KNOWN_MISSES
        .iter()
        .map(|(known, _)| *known)
        .filter(|known| !wrong.iter().any(|(name, _, _)| name == known))
        .collect();
    assert!(
        now_right.is_empty(),
        "now stripped right, remove from KNOWN_MISSES: {now_right:?}"
    );
}

#[test]
fn every_known_miss_names_a_case_of_the_corpus() {
    let names: Vec<String> = corpus().into_iter().map(|(name, _, _)| name).collect();
    for (known, why) in KNOWN_MISSES {
        assert!(
            names.iter().any(|n| n == known),
            "{known} ({why}) is not in the corpus"
        );
    }
}

#[test]
fn every_case_has_an_expected_text_that_is_not_empty() {
    for (name, _, expected) in corpus() {
        assert!(!expected.trim().is_empty(), "{name} expects an empty text");
    }
}
