//! Bounce and complaint fixtures, written from the structures of RFC 3464 and RFC 5965 and of
//! what Postfix, Exim, qmail, Gmail, Microsoft 365, Amazon SES and the feedback loops send, each
//! read into the report the worker acts on; and mail that is not a report read as none.

use convos_mail::autoreply::{Automatic, automatic};
use convos_mail::parsed::parse;
use convos_mail::reports::{Report, read};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/reports/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("could not read fixture {path}: {e}"))
}

/// The fixture as stored (LF line ends) and as it arrives over SMTP (CRLF): both must read alike.
fn read_both_ways(name: &str) -> Option<Report> {
    let lf = fixture(name);
    let text = String::from_utf8(lf.clone()).expect("fixtures are UTF-8");
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let report = read(&lf);
    assert_eq!(
        read(crlf.as_bytes()),
        report,
        "{name} reads differently with CRLF"
    );
    report
}

fn bounce(
    recipient: &str,
    status: &str,
    permanent: bool,
    delayed: bool,
    diagnostic: &str,
    original: &str,
) -> Option<Report> {
    Some(Report::Bounce {
        recipient: Some(recipient.into()),
        status: Some(status.into()),
        permanent,
        delayed,
        diagnostic: Some(diagnostic.into()),
        original_message_id: Some(original.into()),
    })
}

#[test]
fn a_postfix_user_unknown_is_a_hard_bounce() {
    assert_eq!(
        read_both_ways("postfix_user_unknown.eml"),
        bounce(
            "nobody@example.net",
            "5.1.1",
            true,
            false,
            "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in virtual mailbox table",
            "0191f0c2-7a7e-7d43-9f1e-5b3c8e2a4d10@convos.example",
        )
    );
}

#[test]
fn a_postfix_delay_warning_is_delayed_not_failed() {
    assert_eq!(
        read_both_ways("postfix_delayed_mailbox_full.eml"),
        bounce(
            "full@example.org",
            "4.2.2",
            false,
            true,
            "452 4.2.2 <full@example.org>: Mailbox full",
            "0191f0d5-1c2b-7e0a-8a41-2f6d9b7c3e55@convos.example",
        )
    );
}

#[test]
fn a_failure_with_a_transient_status_is_a_soft_bounce() {
    assert_eq!(
        read_both_ways("postfix_gave_up_mailbox_full.eml"),
        bounce(
            "full@example.org",
            "4.2.2",
            false,
            false,
            "452 4.2.2 <full@example.org>: Mailbox full",
            "0191f0d5-1c2b-7e0a-8a41-2f6d9b7c3e55@convos.example",
        )
    );
}

#[test]
fn an_exim_report_of_two_failures_names_the_first() {
    assert_eq!(
        read_both_ways("exim_two_failed.eml"),
        bounce(
            "gone@example.com",
            "5.0.0",
            true,
            false,
            "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
            "0191f4a0-33aa-7b1c-9d02-6e5f4c3b2a19@convos.example",
        )
    );
}

#[test]
fn the_first_failed_recipient_wins_over_an_earlier_delayed_one() {
    let raw = String::from_utf8(fixture("exim_two_failed.eml")).unwrap();
    let first = "Action: failed\nFinal-Recipient: rfc822;gone@example.com\nStatus: 5.0.0";
    assert!(raw.contains(first));
    let raw = raw.replace(
        first,
        "Action: delayed\nFinal-Recipient: rfc822;gone@example.com\nStatus: 4.4.7",
    );
    let Some(Report::Bounce {
        recipient,
        permanent,
        delayed,
        ..
    }) = read(raw.as_bytes())
    else {
        panic!("not a bounce")
    };
    assert_eq!(recipient.as_deref(), Some("left@example.com"));
    assert!(permanent);
    assert!(!delayed);
}

#[test]
fn a_success_notice_is_not_a_report() {
    let raw = String::from_utf8(fixture("postfix_user_unknown.eml")).unwrap();
    let raw = raw.replace("Action: failed", "Action: delivered");
    assert_eq!(read(raw.as_bytes()), None);
}

#[test]
fn a_plain_text_exim_bounce_is_read_best_effort() {
    assert_eq!(
        read_both_ways("exim_plain_text.eml"),
        bounce(
            "olduser@example.org",
            "5.2.1",
            true,
            false,
            "host mailstore.example.org [192.0.2.44]: 550 5.2.1 <olduser@example.org>:",
            "0191f4cb-9e10-7c55-b7a3-0d4e2f1a6c88@convos.example",
        )
    );
}

#[test]
fn a_qmail_bounce_is_read_best_effort() {
    assert_eq!(
        read_both_ways("qmail_plain_text.eml"),
        bounce(
            "nosuchuser@example.info",
            "5.1.1",
            true,
            false,
            "Sorry, no mailbox here by that name. (#5.1.1)",
            "0191f53a-0b7d-7f21-a4c9-8e3d1b2c5f66@convos.example",
        )
    );
}

#[test]
fn a_gmail_address_not_found_is_a_hard_bounce() {
    let Some(Report::Bounce {
        recipient,
        status,
        permanent,
        delayed,
        diagnostic,
        original_message_id,
    }) = read_both_ways("gmail_address_not_found.eml")
    else {
        panic!("not a bounce")
    };
    assert_eq!(recipient.as_deref(), Some("nobody.here@example.com"));
    assert_eq!(status.as_deref(), Some("5.1.1"));
    assert!(permanent && !delayed);
    let diagnostic = diagnostic.unwrap();
    assert!(
        diagnostic.starts_with(
            "550-5.1.1 The email account that you tried to reach does not exist. Please try"
        ),
        "{diagnostic}"
    );
    assert!(!diagnostic.contains('\n'), "{diagnostic}");
    assert_eq!(
        original_message_id.as_deref(),
        Some("0191f5e7-4d3c-7a19-b2e8-1f0a9c8d7e66@convos.example")
    );
}

#[test]
fn gmails_original_message_id_field_stands_in_for_returned_headers() {
    let raw = String::from_utf8(fixture("gmail_address_not_found.eml")).unwrap();
    let (report, _) = raw
        .split_once("--0000000000009f1c2a061a22d3e1\nContent-Type: text/rfc822-headers")
        .unwrap();
    let raw = format!("{report}--0000000000009f1c2a061a22d3e1--\n");
    let Some(Report::Bounce {
        original_message_id,
        ..
    }) = read(raw.as_bytes())
    else {
        panic!("not a bounce")
    };
    assert_eq!(
        original_message_id.as_deref(),
        Some("0191f5e7-4d3c-7a19-b2e8-1f0a9c8d7e66@convos.example")
    );
}

#[test]
fn a_microsoft_365_ndr_is_a_hard_bounce() {
    assert_eq!(
        read_both_ways("microsoft365_ndr.eml"),
        bounce(
            "nobody@fabrikam.example",
            "5.1.10",
            true,
            false,
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
            "0191f615-8a2b-7c3d-9e4f-5a6b7c8d9e0f@convos.example",
        )
    );
}

#[test]
fn an_amazon_ses_bounce_is_a_hard_bounce() {
    assert_eq!(
        read_both_ways("amazon_ses.eml"),
        bounce(
            "bouncer@example.com",
            "5.1.1",
            true,
            false,
            "550 5.1.1 user unknown",
            "0191f636-2e1f-7d40-b5a6-c7d8e9f0a1b2@convos.example",
        )
    );
}

fn complaint(feedback_type: &str, recipient: &str, original: &str) -> Option<Report> {
    Some(Report::Complaint {
        feedback_type: feedback_type.into(),
        original_recipient: Some(recipient.into()),
        original_message_id: Some(original.into()),
    })
}

#[test]
fn an_rfc_5965_abuse_report_is_a_complaint() {
    let report = read_both_ways("arf_rfc5965_abuse.eml");
    assert_eq!(
        report,
        complaint(
            "abuse",
            "complainer@isp.example",
            "0191fa6c-3b2a-7e19-8d07-6c5b4a392817@convos.example",
        )
    );
    assert!(report.unwrap().is_unwanted());
}

#[test]
fn a_complaint_without_original_rcpt_to_names_the_returned_messages_recipient() {
    assert_eq!(
        read_both_ways("arf_yahoo_aol_style.eml"),
        complaint(
            "abuse",
            "someone@yahoo.example",
            "0191fab1-5e4d-7c3b-a291-0f8e7d6c5b4a@convos.example",
        )
    );
}

#[test]
fn a_microsoft_jmrp_complaint_names_the_hotmail_original_recipient() {
    assert_eq!(
        read_both_ways("arf_microsoft_jmrp.eml"),
        complaint(
            "abuse",
            "reader@hotmail.example",
            "0191fb02-7c6d-7e5f-b4a3-2d1c0b9a8f7e@convos.example",
        )
    );
}

#[test]
fn a_not_spam_report_is_feedback_but_not_unwanted() {
    let raw = String::from_utf8(fixture("arf_rfc5965_abuse.eml")).unwrap();
    let raw = raw.replace("Feedback-Type: abuse", "Feedback-Type: Not-Spam");
    let report = read(raw.as_bytes()).unwrap();
    assert!(
        matches!(&report, Report::Complaint { feedback_type, .. } if feedback_type == "not-spam")
    );
    assert!(!report.is_unwanted());
}

#[test]
fn a_persons_reply_is_not_a_report() {
    let raw = fixture("human_reply_gmail.eml");
    assert_eq!(read_both_ways("human_reply_gmail.eml"), None);
    assert_eq!(automatic(&parse(&raw).unwrap(), "convos.example"), None);
}

#[test]
fn an_out_of_office_reply_is_automatic_but_not_a_report() {
    let raw = fixture("out_of_office_outlook.eml");
    assert_eq!(read_both_ways("out_of_office_outlook.eml"), None);
    assert_eq!(
        automatic(&parse(&raw).unwrap(), "convos.example"),
        Some(Automatic::AutoSubmitted)
    );
}

#[test]
fn every_bounce_and_complaint_fixture_is_automatic_mail() {
    for name in [
        "postfix_user_unknown.eml",
        "postfix_delayed_mailbox_full.eml",
        "exim_two_failed.eml",
        "exim_plain_text.eml",
        "qmail_plain_text.eml",
        "gmail_address_not_found.eml",
        "microsoft365_ndr.eml",
        "amazon_ses.eml",
    ] {
        let parsed = parse(&fixture(name)).unwrap();
        assert!(automatic(&parsed, "convos.example").is_some(), "{name}");
    }
}

#[test]
fn a_read_receipt_is_not_a_report() {
    let raw = b"From: Bob Example <bob.example@gmail.example>\r\n\
To: reply+dG9rZW4@reply.convos.example\r\n\
Subject: Read: Carol Danvers in \"Launch plan\"\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=disposition-notification; boundary=mdn\r\n\
\r\n\
--mdn\r\n\
Content-Type: text/plain\r\n\
\r\n\
Your message was displayed. Delivery failed? No: 550 people read it.\r\n\
--mdn\r\n\
Content-Type: message/disposition-notification\r\n\
\r\n\
Reporting-UA: mail.gmail.example\r\n\
Final-Recipient: rfc822; bob.example@gmail.example\r\n\
Original-Message-ID: <0191fb10-1a2b-7c3d-8e4f-5a6b7c8d9e0f@convos.example>\r\n\
Disposition: manual-action/MDN-sent-manually; displayed\r\n\
--mdn--\r\n";
    assert_eq!(read(raw), None);
}
