//! Reporting a message to the operators (decision 89): the question that asks why, and what
//! the status line says once the server answered.

use super::{Choice, Effect, Out};
use convos_core::api::{Message, ReportReason, UserSummary};
use convos_core::text::shown_line;

/// Asks why to report `person`'s `message`: one key per reason (`s`, `h`, `o`), any other
/// for no. The message is named by its first words, shown as every other person's text is.
pub fn question(person: &UserSummary, message: &Message) -> Choice {
    let name = &person.username;
    let words = message.body.as_deref().unwrap_or(&message.subject);
    let what = shown_line(&convos_core::excerpt(words, 40));
    let answers = ReportReason::ALL
        .into_iter()
        .map(|reason| {
            let called = reason.as_str();
            let key = called.chars().next().unwrap_or('?');
            let outs = vec![
                Out::Status("Reporting…".into()),
                Out::Run(Effect::Report(message.id, reason)),
            ];
            (key, called.to_owned(), outs)
        })
        .collect();
    Choice {
        title: "Report".into(),
        question: format!(
            "Report {name}'s message \u{201c}{what}\u{201d} to the operators? They get a copy; \
             {name} is not told. Why?"
        ),
        answers,
        no: vec![Out::Status("Not reported".into())],
    }
}

/// The status once the server answered a report for `asked`: it keeps the first report of a
/// message, whose reason `kept` may be another.
pub fn reported(asked: ReportReason, kept: ReportReason) -> String {
    if asked == kept {
        format!("Reported to the operators as {}", kept.as_str())
    } else {
        format!("Already reported to the operators, as {}", kept.as_str())
    }
}
