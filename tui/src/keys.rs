//! The key table: one list binds every key of every mode (the mailbox, the composer, the search
//! prompt, the queue board, confirmations) to an action, and generates the help screen and every
//! on-screen hint, so none of them can drift from the keys in force. The defaults follow mutt
//! and aerc; `[keys]` in `config.toml` rebinds any action (`reply = "R"`, or per mode in
//! `[keys.composer]`: `send = "ctrl+x"`), and only the actions it names change.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

/// Where a key is read: each mode has its own keys, so `r` can reply in the mailbox and retry
/// on the queue board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Anywhere the mailbox has the keys; not listed in the help table (Ctrl-c).
    Global,
    /// The folders, the thread list, the open thread and search results.
    Mailbox,
    /// Writing a message.
    Compose,
    /// Typing a search.
    Search,
    /// The operators' queue board.
    Ops,
    /// A yes/no question.
    Confirm,
    /// The login and sign-up screen.
    Login,
    /// The settings and account screen.
    Settings,
    /// The list of drafts (postponed messages).
    Drafts,
    /// The help window (scrolling it; any other key closes it).
    Help,
}

impl Mode {
    /// The mode's table in `config.toml` (`[keys.composer]`); the mailbox's and the global keys
    /// sit in `[keys]` itself. The names differ from the mailbox actions that open the modes
    /// (`compose`, `search`, `ops`), which share `[keys]` with them.
    pub fn table(self) -> Option<&'static str> {
        match self {
            Mode::Global | Mode::Mailbox => None,
            Mode::Compose => Some("composer"),
            Mode::Search => Some("search_prompt"),
            Mode::Ops => Some("queue_board"),
            Mode::Confirm => Some("confirm"),
            Mode::Login => Some("login_screen"),
            Mode::Settings => Some("settings_screen"),
            Mode::Drafts => Some("drafts_list"),
            Mode::Help => Some("help_screen"),
        }
    }

    /// Modes whose keys are read together, so one key must not mean two things across them.
    fn group(self) -> Mode {
        match self {
            Mode::Global => Mode::Mailbox,
            other => other,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
/// Something the user can ask for; which mode reads it is in its [`Binding`].
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
    /// Next pane (on the queue board: the other list).
    NextPane,
    /// Reply in the open thread.
    Reply,
    /// Write a new message.
    Compose,
    /// Archive (or unarchive) the thread.
    Archive,
    /// Delete the thread (asks first).
    Delete,
    /// Block or unblock the other person of the selected thread (asks first).
    Block,
    /// Report the other person's newest message in the selected thread to the operators
    /// (asks why first).
    Report,
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
    /// Quit at once.
    Quit,
    /// Suspend the client to the shell (`fg` resumes it).
    Suspend,
    /// Draw the whole screen again (what another program or the terminal left on it goes).
    Redraw,
    /// Send the message being written.
    Send,
    /// Write the body in the external editor.
    Editor,
    /// The next field of the form.
    NextField,
    /// The previous field of the form.
    PreviousField,
    /// Throw away (a draft: asks by a second press; a dead job: asks first).
    Discard,
    /// Run the search typed.
    Submit,
    /// Leave without doing it.
    Cancel,
    /// Pause or resume the highlighted queue.
    Pause,
    /// Run the highlighted dead job again.
    Retry,
    /// Yes to the question asked.
    Yes,
    /// No to the question asked.
    No,
    /// The settings and account screen.
    Settings,
    /// Switch between logging in and creating an account.
    SwitchForm,
    /// The next value of the highlighted setting.
    NextValue,
    /// The previous value of the highlighted setting.
    PreviousValue,
    /// Step the message's expiry through the presets (and go to the expiry field to type one).
    Expiry,
    /// Make the message read-once, or not.
    ReadOnce,
    /// The drafts: messages being written, kept on disk.
    Drafts,
    /// Close the composer and keep the message as a draft.
    Postpone,
}

/// One action in the table: its mode, config name, what it does, and its default keys.
pub struct Binding {
    /// Where the key is read.
    pub mode: Mode,
    /// The action.
    pub action: Action,
    /// Its name in `[keys]` (or in its mode's table).
    pub name: &'static str,
    /// What it does, for the help screen.
    pub help: &'static str,
    /// The keys bound by default.
    pub keys: &'static [&'static str],
}

const fn bind(
    mode: Mode,
    action: Action,
    name: &'static str,
    help: &'static str,
    keys: &'static [&'static str],
) -> Binding {
    Binding {
        mode,
        action,
        name,
        help,
        keys,
    }
}

/// Every action of every mode, in help order.
pub const BINDINGS: &[Binding] = &[
    bind(
        Mode::Mailbox,
        Action::Down,
        "down",
        "next item",
        &["j", "down"],
    ),
    bind(
        Mode::Mailbox,
        Action::Up,
        "up",
        "previous item",
        &["k", "up"],
    ),
    bind(
        Mode::Mailbox,
        Action::Top,
        "top",
        "first item (older messages)",
        &["g", "home"],
    ),
    bind(
        Mode::Mailbox,
        Action::Bottom,
        "bottom",
        "last item",
        &["G", "end"],
    ),
    bind(
        Mode::Mailbox,
        Action::PageDown,
        "page_down",
        "page down",
        &["pagedown"],
    ),
    bind(
        Mode::Mailbox,
        Action::PageUp,
        "page_up",
        "page up",
        &["pageup"],
    ),
    bind(
        Mode::Mailbox,
        Action::Open,
        "open",
        "open folder or thread",
        &["enter"],
    ),
    bind(
        Mode::Mailbox,
        Action::NextPane,
        "next_pane",
        "next pane",
        &["tab"],
    ),
    bind(
        Mode::Mailbox,
        Action::Reply,
        "reply",
        "reply in the thread",
        &["r"],
    ),
    bind(
        Mode::Mailbox,
        Action::Compose,
        "compose",
        "compose a new message",
        &["c"],
    ),
    bind(
        Mode::Mailbox,
        Action::Archive,
        "archive",
        "archive / unarchive thread",
        &["a"],
    ),
    bind(
        Mode::Mailbox,
        Action::Delete,
        "delete",
        "delete thread (asks first)",
        &["d"],
    ),
    bind(
        Mode::Mailbox,
        Action::Block,
        "block",
        "block / unblock the other person (asks first)",
        &["B"],
    ),
    bind(
        Mode::Mailbox,
        Action::Report,
        "report",
        "report their last message to the operators (asks why)",
        &["!"],
    ),
    bind(
        Mode::Mailbox,
        Action::ToggleUnread,
        "toggle_unread",
        "mark thread read / unread",
        &["u"],
    ),
    bind(
        Mode::Mailbox,
        Action::Mute,
        "mute",
        "mute / unmute thread",
        &["m"],
    ),
    bind(Mode::Mailbox, Action::Refresh, "refresh", "refresh", &["R"]),
    bind(
        Mode::Mailbox,
        Action::Search,
        "search",
        "search your convos",
        &["/"],
    ),
    bind(
        Mode::Mailbox,
        Action::OpenOnce,
        "open_once",
        "open a read-once message (once!)",
        &["o"],
    ),
    bind(
        Mode::Mailbox,
        Action::Ops,
        "ops",
        "queue board (operators)",
        &["O"],
    ),
    bind(
        Mode::Mailbox,
        Action::Settings,
        "settings",
        "settings, sessions, password",
        &["S"],
    ),
    bind(Mode::Mailbox, Action::Help, "help", "this help", &["?"]),
    bind(
        Mode::Mailbox,
        Action::Drafts,
        "drafts",
        "drafts (messages not sent yet)",
        &["D"],
    ),
    bind(
        Mode::Mailbox,
        Action::Back,
        "back",
        "close, back, or quit",
        &["q", "esc"],
    ),
    bind(
        Mode::Global,
        Action::Quit,
        "quit",
        "quit at once",
        &["ctrl+c"],
    ),
    bind(
        Mode::Global,
        Action::Suspend,
        "suspend",
        "suspend to the shell (fg resumes)",
        &["ctrl+z"],
    ),
    bind(
        Mode::Global,
        Action::Redraw,
        "redraw",
        "draw the whole screen again",
        &["ctrl+l"],
    ),
    bind(
        Mode::Compose,
        Action::NextField,
        "next_field",
        "next field",
        &["tab"],
    ),
    bind(
        Mode::Compose,
        Action::PreviousField,
        "previous_field",
        "previous field",
        &["backtab"],
    ),
    bind(Mode::Compose, Action::Send, "send", "send", &["ctrl+s"]),
    bind(
        Mode::Compose,
        Action::Editor,
        "editor",
        "$EDITOR",
        &["ctrl+e"],
    ),
    bind(
        Mode::Compose,
        Action::Discard,
        "discard",
        "discard (press twice)",
        &["esc"],
    ),
    bind(
        Mode::Compose,
        Action::Expiry,
        "expiry",
        "expiry: 10m, 1h, 1d, 1w, never (or type one)",
        &["ctrl+t"],
    ),
    bind(
        Mode::Compose,
        Action::ReadOnce,
        "read_once",
        "read once on/off",
        &["ctrl+o"],
    ),
    bind(
        Mode::Compose,
        Action::Postpone,
        "postpone",
        "close and keep as a draft",
        &["ctrl+p"],
    ),
    bind(
        Mode::Drafts,
        Action::Down,
        "down",
        "next draft",
        &["j", "down"],
    ),
    bind(
        Mode::Drafts,
        Action::Up,
        "up",
        "previous draft",
        &["k", "up"],
    ),
    bind(Mode::Drafts, Action::Open, "resume", "resume", &["enter"]),
    bind(Mode::Drafts, Action::Discard, "discard", "discard", &["x"]),
    bind(Mode::Drafts, Action::Back, "close", "close", &["q", "esc"]),
    bind(Mode::Search, Action::Submit, "submit", "search", &["enter"]),
    bind(Mode::Search, Action::Cancel, "cancel", "cancel", &["esc"]),
    bind(
        Mode::Ops,
        Action::NextPane,
        "next_pane",
        "queues/dead",
        &["tab"],
    ),
    bind(Mode::Ops, Action::Down, "down", "move down", &["j", "down"]),
    bind(Mode::Ops, Action::Up, "up", "move up", &["k", "up"]),
    bind(
        Mode::Ops,
        Action::Pause,
        "pause",
        "pause/resume queue",
        &["p"],
    ),
    bind(
        Mode::Ops,
        Action::PageDown,
        "page_down",
        "older dead jobs",
        &["pagedown"],
    ),
    bind(
        Mode::Ops,
        Action::PageUp,
        "page_up",
        "newer dead jobs",
        &["pageup"],
    ),
    bind(Mode::Ops, Action::Retry, "retry", "retry", &["r"]),
    bind(Mode::Ops, Action::Discard, "discard", "discard", &["x"]),
    bind(Mode::Ops, Action::Refresh, "refresh", "refresh", &["R"]),
    bind(Mode::Ops, Action::Back, "close", "close", &["q", "esc"]),
    bind(Mode::Confirm, Action::Yes, "yes", "yes", &["y"]),
    bind(
        Mode::Confirm,
        Action::No,
        "no",
        "no (so does any other key)",
        &["n"],
    ),
    bind(
        Mode::Login,
        Action::Submit,
        "submit",
        "log in / create the account",
        &["enter"],
    ),
    bind(
        Mode::Login,
        Action::NextField,
        "next_field",
        "next field",
        &["tab", "down"],
    ),
    bind(
        Mode::Login,
        Action::PreviousField,
        "previous_field",
        "previous field",
        &["backtab", "up"],
    ),
    bind(
        Mode::Login,
        Action::SwitchForm,
        "switch_form",
        "create an account / log in",
        &["ctrl+n"],
    ),
    bind(Mode::Login, Action::Quit, "quit", "quit", &["esc"]),
    bind(
        Mode::Settings,
        Action::NextField,
        "next_field",
        "next row",
        &["down", "tab"],
    ),
    bind(
        Mode::Settings,
        Action::PreviousField,
        "previous_field",
        "previous row",
        &["up", "backtab"],
    ),
    bind(
        Mode::Settings,
        Action::NextValue,
        "next_value",
        "next value",
        &["right"],
    ),
    bind(
        Mode::Settings,
        Action::PreviousValue,
        "previous_value",
        "previous value",
        &["left"],
    ),
    bind(
        Mode::Settings,
        Action::Submit,
        "submit",
        "save / revoke / change",
        &["enter"],
    ),
    bind(Mode::Settings, Action::Back, "close", "close", &["esc"]),
    bind(
        Mode::Help,
        Action::Down,
        "down",
        "scroll down",
        &["j", "down"],
    ),
    bind(Mode::Help, Action::Up, "up", "scroll up", &["k", "up"]),
    bind(
        Mode::Help,
        Action::PageDown,
        "page_down",
        "a page down",
        &["pagedown", "space"],
    ),
    bind(
        Mode::Help,
        Action::PageUp,
        "page_up",
        "a page up",
        &["pageup"],
    ),
    bind(Mode::Help, Action::Top, "top", "to the top", &["g", "home"]),
    bind(
        Mode::Help,
        Action::Bottom,
        "bottom",
        "to the end",
        &["G", "end"],
    ),
];

/// A key with the modifiers that change its meaning (Ctrl, Alt); Shift is part of the
/// character (`G`, `BackTab`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl and/or Alt.
    pub modifiers: KeyModifiers,
}

impl Key {
    const CHORD: KeyModifiers = KeyModifiers::CONTROL.union(KeyModifiers::ALT);

    /// Whether a key press is this key.
    pub fn matches(self, press: KeyEvent) -> bool {
        let code = match press.code {
            // Terminals report Ctrl-letters in either case; the table spells them in lowercase.
            KeyCode::Char(c) if press.modifiers.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            code => code,
        };
        code == self.code && press.modifiers.intersection(Self::CHORD) == self.modifiers
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("Shift-Tab"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Backspace => f.write_str("Backspace"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Parses a key name: a single character (`r`, `R`, `/`) or `enter`, `tab`, `backtab`, `esc`,
/// `up`, `down`, `left`, `right`, `home`, `end`, `pageup`, `pagedown`, `backspace`, `space`,
/// optionally after `ctrl+` and/or `alt+` (`ctrl+s`).
pub fn parse_key(name: &str) -> Option<Key> {
    let mut modifiers = KeyModifiers::NONE;
    let mut rest = name;
    loop {
        let lower = rest.to_ascii_lowercase();
        if let Some(tail) = lower.strip_prefix("ctrl+").filter(|t| !t.is_empty()) {
            modifiers |= KeyModifiers::CONTROL;
            rest = &rest[rest.len() - tail.len()..];
        } else if let Some(tail) = lower.strip_prefix("alt+").filter(|t| !t.is_empty()) {
            modifiers |= KeyModifiers::ALT;
            rest = &rest[rest.len() - tail.len()..];
        } else {
            break;
        }
    }
    let mut chars = rest.chars();
    let code = if let (Some(c), None) = (chars.next(), chars.next()) {
        // Ctrl-S and Ctrl-s are one key to a terminal.
        if modifiers.contains(KeyModifiers::CONTROL) {
            KeyCode::Char(c.to_ascii_lowercase())
        } else {
            KeyCode::Char(c)
        }
    } else {
        match rest.to_ascii_lowercase().as_str() {
            "enter" => KeyCode::Enter,
            "tab" => KeyCode::Tab,
            "backtab" | "shift+tab" => KeyCode::BackTab,
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
        }
    };
    Some(Key { code, modifiers })
}

/// The keys in force: the defaults with the user's overrides.
#[derive(Clone, Debug)]
pub struct Keymap {
    keys: BTreeMap<(Mode, Action), Vec<Key>>,
}

impl Default for Keymap {
    fn default() -> Self {
        let keys = BINDINGS
            .iter()
            .map(|b| {
                (
                    (b.mode, b.action),
                    b.keys.iter().filter_map(|k| parse_key(k)).collect(),
                )
            })
            .collect();
        Self { keys }
    }
}

/// The binding an override names: `reply` (the mailbox or a global key) or `composer.send`.
fn binding(name: &str) -> Option<&'static Binding> {
    let (table, name) = match name.split_once('.') {
        Some((table, name)) => (Some(table), name),
        None => (None, name),
    };
    BINDINGS
        .iter()
        .find(|b| b.mode.table() == table && b.name == name)
}

impl Keymap {
    /// The defaults with `overrides` (action name → key name; `mode.name` for a mode's own
    /// table, as [`crate::config::Config::key_overrides`] flattens them) applied; an unknown
    /// action or key is an error naming it.
    pub fn with_overrides(overrides: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut map = Self::default();
        for (name, key) in overrides {
            let binding =
                binding(name).ok_or_else(|| format!("[keys]: no action is called {name:?}"))?;
            let key =
                parse_key(key).ok_or_else(|| format!("[keys] {name}: {key:?} is not a key"))?;
            // The key leaves whatever action of the same mode had it, so one key never means
            // two things.
            for ((mode, _), keys) in &mut map.keys {
                if mode.group() == binding.mode.group() {
                    keys.retain(|k| *k != key);
                }
            }
            map.keys.insert((binding.mode, binding.action), vec![key]);
        }
        Ok(map)
    }

    /// The action a key press asks for in `mode` (the mailbox also reads the global keys).
    pub fn action(&self, mode: Mode, press: KeyEvent) -> Option<Action> {
        self.keys
            .iter()
            .filter(|((m, _), _)| m.group() == mode.group())
            .find(|(_, keys)| keys.iter().any(|k| k.matches(press)))
            .map(|((_, action), _)| *action)
    }

    /// Whether a key press is `action` in `mode`.
    pub fn is(&self, mode: Mode, action: Action, press: KeyEvent) -> bool {
        self.keys
            .get(&(mode, action))
            .is_some_and(|keys| keys.iter().any(|k| k.matches(press)))
    }

    /// All keys of an action, as the help screen shows them (`j / ↓`).
    pub fn describe(&self, mode: Mode, action: Action) -> String {
        self.keys
            .get(&(mode, action))
            .map_or_else(String::new, |keys| {
                keys.iter()
                    .map(Key::to_string)
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
    }

    /// The first key of an action, as hints show it (`press o to open it`).
    pub fn key(&self, mode: Mode, action: Action) -> String {
        self.keys
            .get(&(mode, action))
            .and_then(|keys| keys.first())
            .map_or_else(String::new, Key::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    #[test]
    fn every_action_has_a_default_key_that_reaches_it() {
        let map = Keymap::default();
        for binding in BINDINGS {
            for key in binding.keys {
                let key = parse_key(key).expect("a valid default key");
                let event = KeyEvent::new(key.code, key.modifiers);
                assert_eq!(
                    map.action(binding.mode, event),
                    Some(binding.action),
                    "{key}"
                );
            }
        }
    }

    #[test]
    fn no_default_key_means_two_things_in_one_mode() {
        let map = Keymap::default();
        for a in BINDINGS {
            for b in BINDINGS.iter().filter(|b| b.mode.group() == a.mode.group()) {
                if (a.mode, a.action) != (b.mode, b.action) {
                    let shared = a.keys.iter().find(|k| b.keys.contains(k));
                    assert_eq!(shared, None, "{} and {}", a.name, b.name);
                }
            }
        }
        assert_eq!(
            map.action(Mode::Ops, press(KeyCode::Char('r'))),
            Some(Action::Retry)
        );
    }

    #[test]
    fn arrows_and_escape_work_like_the_letters() {
        let defaults = Keymap::default();
        assert_eq!(
            defaults.action(Mode::Mailbox, press(KeyCode::Down)),
            Some(Action::Down)
        );
        assert_eq!(
            defaults.action(Mode::Mailbox, press(KeyCode::Up)),
            Some(Action::Up)
        );
        assert_eq!(
            defaults.action(Mode::Mailbox, press(KeyCode::Esc)),
            Some(Action::Back)
        );
    }

    #[test]
    fn ctrl_chords_are_keys_of_their_own() {
        let defaults = Keymap::default();
        assert_eq!(
            defaults.action(Mode::Compose, ctrl('s')),
            Some(Action::Send)
        );
        assert_eq!(
            defaults.action(Mode::Compose, ctrl('S')),
            Some(Action::Send)
        );
        assert_eq!(
            defaults.action(Mode::Compose, press(KeyCode::Char('s'))),
            None,
            "a plain s is text"
        );
        assert_eq!(
            defaults.action(Mode::Mailbox, ctrl('c')),
            Some(Action::Quit)
        );
        assert_eq!(defaults.action(Mode::Mailbox, ctrl('j')), None);
        assert_eq!(defaults.key(Mode::Compose, Action::Send), "Ctrl-s");
    }

    #[test]
    fn an_override_changes_only_the_actions_it_names() {
        let overrides = BTreeMap::from([("reply".to_owned(), "e".to_owned())]);
        let map = Keymap::with_overrides(&overrides).unwrap();
        assert_eq!(
            map.action(Mode::Mailbox, press(KeyCode::Char('e'))),
            Some(Action::Reply)
        );
        assert_eq!(
            map.action(Mode::Mailbox, press(KeyCode::Char('r'))),
            None,
            "the old key is free"
        );
        assert_eq!(
            map.action(Mode::Mailbox, press(KeyCode::Char('c'))),
            Some(Action::Compose),
            "others unchanged"
        );
        assert_eq!(
            map.action(Mode::Ops, press(KeyCode::Char('r'))),
            Some(Action::Retry),
            "other modes unchanged"
        );
        assert_eq!(map.describe(Mode::Mailbox, Action::Reply), "e");
    }

    #[test]
    fn a_mode_table_rebinds_that_mode_only() {
        let overrides = BTreeMap::from([("composer.send".to_owned(), "ctrl+x".to_owned())]);
        let map = Keymap::with_overrides(&overrides).unwrap();
        assert_eq!(map.action(Mode::Compose, ctrl('x')), Some(Action::Send));
        assert_eq!(map.action(Mode::Compose, ctrl('s')), None);
        assert_eq!(map.key(Mode::Compose, Action::Send), "Ctrl-x");
    }

    #[test]
    fn a_rebound_key_leaves_its_old_action() {
        let overrides = BTreeMap::from([("compose".to_owned(), "r".to_owned())]);
        let map = Keymap::with_overrides(&overrides).unwrap();
        assert_eq!(
            map.action(Mode::Mailbox, press(KeyCode::Char('r'))),
            Some(Action::Compose)
        );
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
        let bad = BTreeMap::from([("composer.reply".to_owned(), "r".to_owned())]);
        assert!(
            Keymap::with_overrides(&bad).is_err(),
            "reply is a mailbox key"
        );
    }
}
