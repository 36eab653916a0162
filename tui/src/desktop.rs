//! What the client tells the desktop around the terminal: the window title (with the unread
//! count) and notifications of new mail (OSC 9, OSC 777, or `notify-send`). Pure functions
//! building the texts and sequences; the runtime writes or runs them.
//!
//! Everything shown comes from the server and is untrusted: it goes through
//! [`text::shown_line`], which turns every control character (ESC and BEL included) into a visible
//! symbol, so a subject can never end the sequence it is carried in and start one of its own.

use convos_core::api::Thread;
use convos_core::text;
use serde::{Deserialize, Serialize};

/// How a new message is announced outside the terminal's screen (`notify` in `config.toml`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Notify {
    /// Not at all (the default).
    #[default]
    Off,
    /// OSC 9, as iTerm2, kitty, WezTerm, foot, Ghostty and Windows Terminal read it.
    Osc9,
    /// OSC 777 (`notify`), as urxvt, foot, WezTerm, Ghostty and VTE terminals read it.
    Osc777,
    /// Runs `notify-send`, where it exists (freedesktop desktops).
    NotifySend,
}

/// A desktop notification: a title and one line of text, both sanitised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The headline.
    pub title: String,
    /// The text.
    pub body: String,
}

/// The longest notification text kept; the rest is cut with an ellipsis.
const MAX_CHARS: usize = 120;

/// The terminal's title: `Convos`, or `Convos (3)` with unread messages.
pub fn title(unread: i64) -> String {
    if unread > 0 {
        format!("Convos ({unread})")
    } else {
        "Convos".into()
    }
}

/// The notification for a new message in `thread` (if it is listed), read by `me`: who it
/// is from and its subject, or just "New message" when the thread is not known yet.
pub fn new_message(thread: Option<&Thread>, me: Option<&str>) -> Notification {
    let body = match thread {
        Some(thread) => {
            let from = thread
                .last_message
                .as_ref()
                .map(|m| &m.sender)
                .filter(|sender| Some(sender.username.as_str()) != me)
                .or_else(|| {
                    thread
                        .participants
                        .iter()
                        .find(|p| Some(p.username.as_str()) != me)
                })
                .map(|p| crate::ui::person(p, usize::MAX));
            match from {
                Some((name, tag)) => format!("{name}{tag}: {}", clean(&thread.subject)),
                None => clean(&thread.subject),
            }
        }
        None => "New message".into(),
    };
    Notification {
        title: "Convos".into(),
        body: cut(body),
    }
}

/// The escape sequence that raises `n` in the terminal, for the OSC kinds (`None` otherwise).
pub fn osc(kind: Notify, n: &Notification) -> Option<String> {
    let title = clean(&n.title);
    let body = clean(&n.body);
    match kind {
        // The text is prefixed with the title so it never starts with digits and a `;`, which
        // ConEmu and Windows Terminal read as an OSC 9 sub-command.
        Notify::Osc9 => Some(format!("\x1b]9;{title}: {body}\x07")),
        // The title is a `;`-separated field: a `;` in it would move text into the body.
        Notify::Osc777 => Some(format!(
            "\x1b]777;notify;{};{body}\x07",
            title.replace(';', ",")
        )),
        Notify::Off | Notify::NotifySend => None,
    }
}

/// The command line that raises `n` through `notify-send`; the texts follow `--`, so neither
/// can pass as an option. The body is markup to the notification daemons (GNOME Shell, KDE,
/// dunst and mako render `<a href>`, `<b>`, `<img>`), so its `& < >` are escaped: a subject
/// could plant a link, and the `<username>` beside a display name was read as a tag and lost.
pub fn notify_send(n: &Notification) -> Vec<String> {
    vec![
        "notify-send".into(),
        "--app-name=Convos".into(),
        "--".into(),
        clean(&n.title),
        markup_escaped(&clean(&n.body)),
    ]
}

/// `text` as literal text in the notification spec's markup.
fn markup_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One line of harmless text: no control characters (they show as symbols), no
/// bidirectional or invisible characters.
fn clean(text: &str) -> String {
    text::shown_line(text)
}

fn cut(text: String) -> String {
    if text.chars().count() <= MAX_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::thread;

    #[test]
    fn the_title_shows_the_unread_count() {
        assert_eq!(title(0), "Convos");
        assert_eq!(title(3), "Convos (3)");
    }

    #[test]
    fn a_new_message_names_its_sender_and_subject() {
        let t = thread("Lunch", 1);
        let n = new_message(Some(&t), Some("bob"));
        assert_eq!(n.title, "Convos");
        assert_eq!(n.body, "ALICE: Lunch");
        assert_eq!(new_message(None, Some("bob")).body, "New message");
    }

    #[test]
    fn a_borrowed_display_name_comes_with_the_senders_username() {
        let mut t = thread("Urgent invoice", 1);
        if let Some(m) = &mut t.last_message {
            m.sender.display_name = "Alice Liddell".into();
            m.sender.username = "mallory".into();
        }
        let n = new_message(Some(&t), Some("bob"));
        assert_eq!(n.body, "Alice Liddell <mallory>: Urgent invoice");
    }

    #[test]
    fn my_own_message_names_the_other_participant() {
        let t = thread("Lunch", 0);
        assert_eq!(new_message(Some(&t), Some("alice")).body, "BOB: Lunch");
    }

    #[test]
    fn osc_sequences_carry_the_text_between_their_own_delimiters() {
        let n = Notification {
            title: "Convos".into(),
            body: "Alice: Lunch".into(),
        };
        assert_eq!(
            osc(Notify::Osc9, &n).unwrap(),
            "\x1b]9;Convos: Alice: Lunch\x07"
        );
        assert_eq!(
            osc(Notify::Osc777, &n).unwrap(),
            "\x1b]777;notify;Convos;Alice: Lunch\x07"
        );
        assert_eq!(osc(Notify::NotifySend, &n), None);
        assert_eq!(osc(Notify::Off, &n), None);
    }

    #[test]
    fn a_hostile_subject_cannot_escape_the_notification() {
        let mut t = thread("Hi\x07\x1b]0;pwned\x1b\\\u{9c}\u{202e}gpj.exe", 1);
        t.participants[1].display_name = "Eve\x1b[2J;x".into();
        t.last_message.as_mut().unwrap().sender.display_name = "Eve\x1b[2J;x".into();
        let n = new_message(Some(&t), Some("bob"));
        for kind in [Notify::Osc9, Notify::Osc777] {
            let seq = osc(kind, &n).unwrap();
            // Exactly one ESC (the opening one) and one BEL (the closing one).
            assert_eq!(seq.matches('\x1b').count(), 1, "{seq:?}");
            assert_eq!(seq.matches('\x07').count(), 1, "{seq:?}");
            assert!(seq.starts_with("\x1b]") && seq.ends_with('\x07'), "{seq:?}");
            assert!(
                !seq.contains('\u{9c}') && !seq.contains('\u{202e}'),
                "{seq:?}"
            );
        }
        for arg in notify_send(&n) {
            assert!(!arg.chars().any(char::is_control), "{arg:?}");
        }
        let seq = osc(
            Notify::Osc777,
            &Notification {
                title: "a;b".into(),
                body: "c".into(),
            },
        )
        .unwrap();
        assert_eq!(seq, "\x1b]777;notify;a,b;c\x07");
    }

    #[test]
    fn notify_send_gets_the_texts_after_the_end_of_its_options() {
        let n = Notification {
            title: "Convos".into(),
            body: "--help".into(),
        };
        assert_eq!(
            notify_send(&n),
            ["notify-send", "--app-name=Convos", "--", "Convos", "--help"]
        );
    }

    #[test]
    fn notify_send_shows_markup_in_a_subject_as_text() {
        let n = Notification {
            title: "Convos".into(),
            body: "Bob <bob>: <a href=\"https://evil.example\">alert</a> &amp;".into(),
        };
        assert_eq!(
            notify_send(&n)[4],
            "Bob &lt;bob&gt;: &lt;a href=\"https://evil.example\"&gt;alert&lt;/a&gt; &amp;amp;"
        );
    }

    #[test]
    fn a_long_text_is_cut() {
        let t = thread(&"x".repeat(500), 1);
        let n = new_message(Some(&t), Some("bob"));
        assert_eq!(n.body.chars().count(), MAX_CHARS);
        assert!(n.body.ends_with('…'));
    }

    #[test]
    fn the_setting_reads_as_written_in_the_config() {
        #[derive(Deserialize)]
        struct C {
            notify: Notify,
        }
        let read = |s: &str| toml::from_str::<C>(&format!("notify = {s:?}")).map(|c| c.notify);
        assert_eq!(read("off").unwrap(), Notify::Off);
        assert_eq!(read("osc9").unwrap(), Notify::Osc9);
        assert_eq!(read("osc777").unwrap(), Notify::Osc777);
        assert_eq!(read("notify-send").unwrap(), Notify::NotifySend);
        assert!(read("dbus").is_err());
    }
}
