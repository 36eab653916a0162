//! The key table: one list binds keys to actions and generates the help screen, so the two
//! cannot drift apart. The defaults follow mutt and aerc; `[keys]` in `config.toml` rebinds any
//! action (`reply = "R"`), and only the actions it names change.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
/// Something the user can ask for in the mailbox.
pub enum Action {
    /// Move the selection down.
    Down,
    /// Move the selection up.
    Up,
    /// First item.
    Top,
    /// Last item.
    Bottom,
    /// A screen down.
    PageDown,
    /// A screen up.
    PageUp,
    /// Open the selected folder or thread.
    Open,
    /// Next pane.
    NextPane,
    /// Reply in the open thread.
    Reply,
    /// Write a new message.
    Compose,
    /// Archive (or unarchive) the thread.
    Archive,
    /// Delete the thread (asks first).
    Delete,
    /// Mark the thread unread, or read.
    ToggleUnread,
    /// Mute or unmute the thread.
    Mute,
    /// Reload from the server.
    Refresh,
    /// The operators' queue board.
    Ops,
    /// Search subjects and bodies.
    Search,
    /// Open a read-once message (its one read).
    OpenOnce,
    /// Show the keys.
    Help,
    /// Close what is open, or quit.
    Back,
}

/// One action in the table: its config name, what it does, and its default keys.
pub struct Binding {
    /// The action.
    pub action: Action,
    /// Its name in `[keys]`.
    pub name: &'static str,
    /// What it does, for the help screen.
    pub help: &'static str,
    /// The keys bound by default.
    pub keys: &'static [&'static str],
}

/// Every mailbox action, in help order.
pub const BINDINGS: &[Binding] = &[
    Binding {
        action: Action::Down,
        name: "down",
        help: "next item",
        keys: &["j", "down"],
    },
    Binding {
        action: Action::Up,
        name: "up",
        help: "previous item",
        keys: &["k", "up"],
    },
    Binding {
        action: Action::Top,
        name: "top",
        help: "first item (older messages)",
        keys: &["g", "home"],
    },
    Binding {
        action: Action::Bottom,
        name: "bottom",
        help: "last item",
        keys: &["G", "end"],
    },
    Binding {
        action: Action::PageDown,
        name: "page_down",
        help: "page down",
        keys: &["pagedown"],
    },
    Binding {
        action: Action::PageUp,
        name: "page_up",
        help: "page up",
        keys: &["pageup"],
    },
    Binding {
        action: Action::Open,
        name: "open",
        help: "open folder or thread",
        keys: &["enter"],
    },
    Binding {
        action: Action::NextPane,
        name: "next_pane",
        help: "next pane",
        keys: &["tab"],
    },
    Binding {
        action: Action::Reply,
        name: "reply",
        help: "reply in the thread",
        keys: &["r"],
    },
    Binding {
        action: Action::Compose,
        name: "compose",
        help: "compose a new message",
        keys: &["c"],
    },
    Binding {
        action: Action::Archive,
        name: "archive",
        help: "archive / unarchive thread",
        keys: &["a"],
    },
    Binding {
        action: Action::Delete,
        name: "delete",
        help: "delete thread (asks first)",
        keys: &["d"],
    },
    Binding {
        action: Action::ToggleUnread,
        name: "toggle_unread",
        help: "mark thread read / unread",
        keys: &["u"],
    },
    Binding {
        action: Action::Mute,
        name: "mute",
        help: "mute / unmute thread",
        keys: &["m"],
    },
    Binding {
        action: Action::Refresh,
        name: "refresh",
        help: "refresh",
        keys: &["R"],
    },
    Binding {
        action: Action::Search,
        name: "search",
        help: "search your convos",
        keys: &["/"],
    },
    Binding {
        action: Action::OpenOnce,
        name: "open_once",
        help: "open a read-once message (once!)",
        keys: &["o"],
    },
    Binding {
        action: Action::Ops,
        name: "ops",
        help: "queue board (operators)",
        keys: &["O"],
    },
    Binding {
        action: Action::Help,
        name: "help",
        help: "this help",
        keys: &["?"],
    },
    Binding {
        action: Action::Back,
        name: "back",
        help: "close, back, or quit",
        keys: &["q", "esc"],
    },
];

/// Parses a key name: a single character (`r`, `R`, `/`) or `enter`, `tab`, `esc`, `up`,
/// `down`, `left`, `right`, `home`, `end`, `pageup`, `pagedown`, `backspace`, `space`.
pub fn parse_key(name: &str) -> Option<KeyCode> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(KeyCode::Char(c));
    }
    Some(match name.to_ascii_lowercase().as_str() {
        "enter" => KeyCode::Enter,
        "tab" => KeyCode::Tab,
        "esc" => KeyCode::Esc,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "pageup" => KeyCode::PageUp,
        "pagedown" => KeyCode::PageDown,
        "backspace" => KeyCode::Backspace,
        "space" => KeyCode::Char(' '),
        _ => return None,
    })
}

fn show(code: KeyCode) -> String {
    match code {
        KeyCode::Char(' ') => "Space".into(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Backspace => "Backspace".into(),
        other => format!("{other:?}"),
    }
}

/// The keys in force: the defaults with the user's overrides.
#[derive(Clone, Debug)]
pub struct Keymap {
    keys: BTreeMap<Action, Vec<KeyCode>>,
}

impl Default for Keymap {
    fn default() -> Self {
        let keys = BINDINGS
            .iter()
            .map(|b| {
                (
                    b.action,
                    b.keys.iter().filter_map(|k| parse_key(k)).collect(),
                )
            })
            .collect();
        Self { keys }
    }
}

impl Keymap {
    /// The defaults with `overrides` (action name → key name) applied; an unknown action or
    /// key is an error naming it.
    pub fn with_overrides(overrides: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut map = Self::default();
        for (name, key) in overrides {
            let binding = BINDINGS
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| format!("[keys]: no action is called {name:?}"))?;
            let code =
                parse_key(key).ok_or_else(|| format!("[keys] {name}: {key:?} is not a key"))?;
            // The key leaves whatever action had it, so one key never means two things.
            for codes in map.keys.values_mut() {
                codes.retain(|c| *c != code);
            }
            map.keys.insert(binding.action, vec![code]);
        }
        Ok(map)
    }

    /// The action bound to a key press, if any.
    pub fn action(&self, key: KeyEvent) -> Option<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            return None;
        }
        self.keys
            .iter()
            .find(|(_, codes)| codes.contains(&key.code))
            .map(|(action, _)| *action)
    }

    /// The keys of an action as the help screen shows them.
    pub fn describe(&self, action: Action) -> String {
        self.keys.get(&action).map_or_else(String::new, |codes| {
            codes
                .iter()
                .map(|c| show(*c))
                .collect::<Vec<_>>()
                .join(" / ")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn every_action_has_a_default_key_that_reaches_it() {
        let map = Keymap::default();
        for binding in BINDINGS {
            for key in binding.keys {
                let code = parse_key(key).expect("a valid default key");
                assert_eq!(map.action(press(code)), Some(binding.action), "{key}");
            }
        }
    }

    #[test]
    fn arrows_and_escape_work_like_the_letters() {
        let defaults = Keymap::default();
        assert_eq!(defaults.action(press(KeyCode::Down)), Some(Action::Down));
        assert_eq!(defaults.action(press(KeyCode::Up)), Some(Action::Up));
        assert_eq!(defaults.action(press(KeyCode::Esc)), Some(Action::Back));
    }

    #[test]
    fn an_override_changes_only_the_actions_it_names() {
        let overrides = BTreeMap::from([("reply".to_owned(), "e".to_owned())]);
        let map = Keymap::with_overrides(&overrides).unwrap();
        assert_eq!(map.action(press(KeyCode::Char('e'))), Some(Action::Reply));
        assert_eq!(
            map.action(press(KeyCode::Char('r'))),
            None,
            "the old key is free"
        );
        assert_eq!(
            map.action(press(KeyCode::Char('c'))),
            Some(Action::Compose),
            "others unchanged"
        );
        assert_eq!(map.describe(Action::Reply), "e");
    }

    #[test]
    fn a_rebound_key_leaves_its_old_action() {
        let overrides = BTreeMap::from([("compose".to_owned(), "r".to_owned())]);
        let map = Keymap::with_overrides(&overrides).unwrap();
        assert_eq!(map.action(press(KeyCode::Char('r'))), Some(Action::Compose));
    }

    #[test]
    fn unknown_actions_and_keys_are_named_in_the_error() {
        let bad = BTreeMap::from([("fly".to_owned(), "f".to_owned())]);
        assert!(
            Keymap::with_overrides(&bad)
                .unwrap_err()
                .contains("\"fly\"")
        );
        let bad = BTreeMap::from([("reply".to_owned(), "ctrl+banana".to_owned())]);
        assert!(
            Keymap::with_overrides(&bad)
                .unwrap_err()
                .contains("ctrl+banana")
        );
    }
}
