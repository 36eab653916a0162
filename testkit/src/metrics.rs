//! Prometheus text exposition, parsed strictly enough that a malformed line fails the test.

use std::collections::BTreeMap;

/// Parses Prometheus text format into `name{labels}` → value, skipping comments and blank
/// lines; panics on a line without a value, a value that is not a number, or a bad metric
/// name.
#[track_caller]
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("malformed: {line}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            let name_ok = series.split('{').next().is_some_and(|n| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            assert!(name_ok, "bad metric name: {line}");
            (series.to_owned(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_metrics;

    #[test]
    fn series_keep_their_labels_and_comments_are_skipped() {
        let text = "# HELP convos_up Up.\n# TYPE convos_up gauge\nconvos_up 1\n\
                    convos_jobs{queue=\"deliver\",state=\"dead\"} 2.5\n";
        let metrics = parse_metrics(text);
        assert_eq!(metrics.len(), 2);
        assert_eq!(metrics["convos_up"], 1.0);
        assert_eq!(metrics[r#"convos_jobs{queue="deliver",state="dead"}"#], 2.5);
    }

    #[test]
    #[should_panic(expected = "not a number")]
    fn a_value_that_is_not_a_number_fails() {
        parse_metrics("convos_up one\n");
    }

    #[test]
    #[should_panic(expected = "bad metric name")]
    fn a_bad_metric_name_fails() {
        parse_metrics("convos-up 1\n");
    }
}
