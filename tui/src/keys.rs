//! The key table: one list binds keys to actions and generates the help screen, so the two
//! cannot drift apart. The keys follow mutt and aerc.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Something the user can ask for in the mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One binding: the key as written in the help, what it does, and how it is described.
pub struct Binding {
    /// The key's name in the help screen.
    pub key: &'static str,
    /// The action.
    pub action: Action,
    /// What it does.
    pub help: &'static str,
}

/// Every mailbox key.
pub const BINDINGS: &[Binding] = &[
    Binding {
        key: "j / ↓",
        action: Action::Down,
        help: "next item",
    },
    Binding {
        key: "k / ↑",
        action: Action::Up,
        help: "previous item",
    },
    Binding {
        key: "g",
        action: Action::Top,
        help: "first item",
    },
    Binding {
        key: "G",
        action: Action::Bottom,
        help: "last item",
    },
    Binding {
        key: "PgDn",
        action: Action::PageDown,
        help: "page down",
    },
    Binding {
        key: "PgUp",
        action: Action::PageUp,
        help: "page up",
    },
    Binding {
        key: "Enter",
        action: Action::Open,
        help: "open folder or thread",
    },
    Binding {
        key: "Tab",
        action: Action::NextPane,
        help: "next pane",
    },
    Binding {
        key: "r",
        action: Action::Reply,
        help: "reply in the thread",
    },
    Binding {
        key: "c",
        action: Action::Compose,
        help: "compose a new message",
    },
    Binding {
        key: "a",
        action: Action::Archive,
        help: "archive / unarchive thread",
    },
    Binding {
        key: "d",
        action: Action::Delete,
        help: "delete thread (asks first)",
    },
    Binding {
        key: "u",
        action: Action::ToggleUnread,
        help: "mark thread read / unread",
    },
    Binding {
        key: "m",
        action: Action::Mute,
        help: "mute / unmute thread",
    },
    Binding {
        key: "R",
        action: Action::Refresh,
        help: "refresh",
    },
    Binding {
        key: "/",
        action: Action::Search,
        help: "search your convos",
    },
    Binding {
        key: "o",
        action: Action::OpenOnce,
        help: "open a read-once message (once!)",
    },
    Binding {
        key: "O",
        action: Action::Ops,
        help: "queue board (operators)",
    },
    Binding {
        key: "?",
        action: Action::Help,
        help: "this help",
    },
    Binding {
        key: "q / Esc",
        action: Action::Back,
        help: "close, back, or quit",
    },
];

/// The action bound to a key press in the mailbox, if any.
pub fn action(key: KeyEvent) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return None;
    }
    let action = match key.code {
        KeyCode::Char('j') | KeyCode::Down => Action::Down,
        KeyCode::Char('k') | KeyCode::Up => Action::Up,
        KeyCode::Char('g') | KeyCode::Home => Action::Top,
        KeyCode::Char('G') | KeyCode::End => Action::Bottom,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::Enter => Action::Open,
        KeyCode::Tab => Action::NextPane,
        KeyCode::Char('r') => Action::Reply,
        KeyCode::Char('c') => Action::Compose,
        KeyCode::Char('a') => Action::Archive,
        KeyCode::Char('d') => Action::Delete,
        KeyCode::Char('u') => Action::ToggleUnread,
        KeyCode::Char('m') => Action::Mute,
        KeyCode::Char('R') => Action::Refresh,
        KeyCode::Char('/') => Action::Search,
        KeyCode::Char('o') => Action::OpenOnce,
        KeyCode::Char('O') => Action::Ops,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Char('q') | KeyCode::Esc => Action::Back,
        _ => return None,
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn every_documented_action_is_bound_and_every_bound_action_documented() {
        let codes = [
            KeyCode::Char('j'),
            KeyCode::Char('k'),
            KeyCode::Char('g'),
            KeyCode::Char('G'),
            KeyCode::PageDown,
            KeyCode::PageUp,
            KeyCode::Enter,
            KeyCode::Tab,
            KeyCode::Char('r'),
            KeyCode::Char('c'),
            KeyCode::Char('a'),
            KeyCode::Char('d'),
            KeyCode::Char('u'),
            KeyCode::Char('m'),
            KeyCode::Char('R'),
            KeyCode::Char('/'),
            KeyCode::Char('o'),
            KeyCode::Char('O'),
            KeyCode::Char('?'),
            KeyCode::Char('q'),
        ];
        let bound: Vec<Action> = codes.iter().filter_map(|c| action(press(*c))).collect();
        let documented: Vec<Action> = BINDINGS.iter().map(|b| b.action).collect();
        assert_eq!(bound, documented);
    }

    #[test]
    fn arrows_and_escape_work_like_the_letters() {
        assert_eq!(action(press(KeyCode::Down)), Some(Action::Down));
        assert_eq!(action(press(KeyCode::Up)), Some(Action::Up));
        assert_eq!(action(press(KeyCode::Esc)), Some(Action::Back));
    }
}
