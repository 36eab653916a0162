//! The root's part in the terminal around the panes: mouse events (with `mouse = true`) placed
//! on the pane under the pointer, as aerc does (a click selects, a click on the selected thread
//! opens it, the wheel scrolls the list or thread under the pointer), and the desktop
//! notification for a new message.

use super::{App, Effect, Modal, Pane};
use crate::desktop::{self, Notify};
use crate::keys::Action;
use convos_core::ThreadId;
use convos_core::api::Folder;
use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

/// Rows a thread (or a search result) takes in the list.
const ITEM_ROWS: u16 = 2;

/// The list item under row `row` of a bordered `area` holding `count` items of `item_rows`
/// rows each, `selected` among them: the list shows the selected item, scrolled as little as
/// possible (as ratatui's `List` does from offset 0).
pub fn item_at(
    area: Rect,
    row: u16,
    item_rows: u16,
    count: usize,
    selected: usize,
) -> Option<usize> {
    let inner_top = area.y + 1;
    let inner_rows = area.height.saturating_sub(2);
    if row < inner_top || row >= inner_top + inner_rows || item_rows == 0 {
        return None;
    }
    let visible = usize::from(inner_rows / item_rows).max(1);
    let offset = if selected >= visible {
        selected + 1 - visible
    } else {
        0
    };
    let index = offset + usize::from((row - inner_top) / item_rows);
    (index < count).then_some(index)
}

impl App {
    /// A mouse event on a `screen` of that size. Windows over the mailbox (composer, help,
    /// questions, the queue board) keep to the keyboard.
    pub(super) fn mouse(&mut self, event: MouseEvent, screen: Rect) -> Vec<Effect> {
        if !matches!(self.modal, Modal::None) || self.login.is_some() {
            return vec![];
        }
        let [folders, list, view, _] = crate::ui::panes(screen);
        let at = Position::new(event.column, event.row);
        let pane = if folders.contains(at) {
            Pane::Folders
        } else if list.contains(at) {
            Pane::Threads
        } else if view.contains(at) {
            Pane::Thread
        } else {
            return vec![];
        };
        match event.kind {
            MouseEventKind::Down(MouseButton::Left) => self.click(pane, event.row, folders, list),
            MouseEventKind::ScrollDown => self.wheel(pane, Action::Down),
            MouseEventKind::ScrollUp => self.wheel(pane, Action::Up),
            _ => vec![],
        }
    }

    fn click(&mut self, pane: Pane, row: u16, folders: Rect, list: Rect) -> Vec<Effect> {
        match pane {
            Pane::Folders => {
                let Some(index) = item_at(folders, row, 1, Folder::ALL.len(), 0) else {
                    return vec![];
                };
                // A click opens the folder, as Enter on it does.
                self.pane = Pane::Folders;
                self.mailbox.folder_cursor = index;
                self.act(Action::Open)
            }
            Pane::Threads => {
                self.pane = Pane::Threads;
                if let Some(search) = self.search.as_mut().filter(|s| s.shows_results()) {
                    let count = search.hits.as_ref().map_or(0, Vec::len);
                    let Some(index) = item_at(list, row, ITEM_ROWS, count, search.selected) else {
                        return vec![];
                    };
                    if index == search.selected {
                        return self.act(Action::Open);
                    }
                    search.selected = index;
                    return vec![];
                }
                let count = self.mailbox.threads.len();
                let selected = self.mailbox.selected;
                let Some(index) = item_at(list, row, ITEM_ROWS, count, selected) else {
                    return vec![];
                };
                // A click selects; a click on the selected thread opens it.
                if index == selected {
                    return self.act(Action::Open);
                }
                let outs = self.mailbox.select_thread(index);
                self.apply(outs, |_| {})
            }
            Pane::Thread => {
                if self.thread.open.is_some() {
                    self.pane = Pane::Thread;
                }
                vec![]
            }
        }
    }

    /// The wheel moves the list under the pointer, or scrolls the thread, without moving the
    /// keys elsewhere.
    fn wheel(&mut self, pane: Pane, action: Action) -> Vec<Effect> {
        match pane {
            Pane::Folders => {
                self.mailbox.move_folder(action);
                vec![]
            }
            Pane::Threads => {
                if let Some(search) = self.search.as_mut().filter(|s| s.shows_results()) {
                    let count = search.hits.as_ref().map_or(0, Vec::len);
                    search.selected = match action {
                        Action::Up => search.selected.saturating_sub(1),
                        _ => (search.selected + 1).min(count.saturating_sub(1)),
                    };
                    return vec![];
                }
                let outs = self.mailbox.move_thread(action);
                self.apply(outs, |_| {})
            }
            Pane::Thread => {
                let outs = self.thread.scroll(action);
                self.apply(outs, |_| {})
            }
        }
    }

    /// The desktop notification for a new message in `thread`, if the config asks for one.
    pub(super) fn notification(&self, thread: ThreadId) -> Option<Effect> {
        if self.notify == Notify::Off {
            return None;
        }
        let me = self.me.as_ref().map(|m| m.user.username.as_str());
        Some(Effect::Notify(desktop::new_message(
            self.mailbox.thread(thread),
            me,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::thread;
    use crate::app::{Help, Msg};
    use crossterm::event::KeyModifiers;

    const SCREEN: Rect = Rect::new(0, 0, 100, 20);

    fn panes() -> [Rect; 4] {
        crate::ui::panes(SCREEN)
    }

    fn mouse(kind: MouseEventKind, column: u16, row: u16) -> Msg {
        Msg::Mouse {
            event: MouseEvent {
                kind,
                column,
                row,
                modifiers: KeyModifiers::NONE,
            },
            screen: SCREEN,
        }
    }

    fn click(column: u16, row: u16) -> Msg {
        mouse(MouseEventKind::Down(MouseButton::Left), column, row)
    }

    fn inbox() -> App {
        let mut app = App::new();
        app.mailbox.threads = vec![thread("First", 1), thread("Second", 0), thread("Third", 0)];
        app
    }

    #[test]
    fn a_click_selects_a_thread_and_a_second_click_opens_it() {
        let mut app = inbox();
        let [_, list, _, _] = panes();
        // The second thread's two rows start below the border and the first thread.
        let effects = app.update(click(list.x + 3, list.y + 3));
        assert_eq!(app.mailbox.selected, 1);
        assert!(effects.is_empty(), "{effects:?}");
        assert!(app.thread.open.is_none());

        let effects = app.update(click(list.x + 3, list.y + 4));

        assert_eq!(app.pane, Pane::Thread);
        let open = app.thread.thread().map(|t| t.subject.clone());
        assert_eq!(open.as_deref(), Some("Second"));
        assert!(
            effects.iter().any(|e| matches!(e, Effect::LoadMessages(_))),
            "{effects:?}"
        );
    }

    #[test]
    fn a_click_on_a_folder_opens_it() {
        let mut app = inbox();
        let [folders, _, _, _] = panes();
        // Inbox, Sent, Archive, All: the third row inside the border.
        let effects = app.update(click(folders.x + 2, folders.y + 3));
        assert_eq!(app.mailbox.folder, Folder::Archive);
        assert_eq!(app.pane, Pane::Threads);
        assert!(
            effects.contains(&Effect::LoadThreads {
                folder: Folder::Archive,
                cursor: None
            }),
            "{effects:?}"
        );
    }

    #[test]
    fn clicks_on_borders_and_empty_rows_do_nothing() {
        let mut app = inbox();
        let [folders, list, _, status] = panes();
        for (x, y) in [
            (list.x + 3, list.y),
            (list.x + 3, list.y + 10),
            (folders.x + 2, folders.y + 8),
            (status.x + 2, status.y),
        ] {
            assert!(app.update(click(x, y)).is_empty());
            assert_eq!(app.mailbox.selected, 0);
            assert_eq!(app.mailbox.folder, Folder::Inbox);
        }
    }

    #[test]
    fn the_wheel_moves_the_list_under_the_pointer() {
        let mut app = inbox();
        let [folders, list, _, _] = panes();
        app.update(mouse(MouseEventKind::ScrollDown, list.x + 2, list.y + 2));
        app.update(mouse(MouseEventKind::ScrollDown, list.x + 2, list.y + 2));
        assert_eq!(app.mailbox.selected, 2);
        app.update(mouse(MouseEventKind::ScrollUp, list.x + 2, list.y + 2));
        assert_eq!(app.mailbox.selected, 1);
        // Over the folders, the folder cursor moves; the keys stay where they were.
        app.update(mouse(
            MouseEventKind::ScrollDown,
            folders.x + 2,
            folders.y + 2,
        ));
        assert_eq!(app.mailbox.folder_cursor, 1);
        assert_eq!(app.pane, Pane::Threads);
    }

    #[test]
    fn the_wheel_scrolls_the_open_thread() {
        let mut app = inbox();
        app.update(Msg::Key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Enter,
        )));
        let [_, _, view, _] = panes();
        app.update(mouse(MouseEventKind::ScrollUp, view.x + 5, view.y + 5));
        app.update(mouse(MouseEventKind::ScrollUp, view.x + 5, view.y + 5));
        assert_eq!(app.thread.open.as_ref().map(|o| o.scroll), Some(2));
        app.update(mouse(MouseEventKind::ScrollDown, view.x + 5, view.y + 5));
        assert_eq!(app.thread.open.as_ref().map(|o| o.scroll), Some(1));
    }

    #[test]
    fn a_window_over_the_mailbox_keeps_to_the_keyboard() {
        let mut app = inbox();
        app.modal = Modal::Help(Help::default());
        let [_, list, _, _] = panes();
        assert!(app.update(click(list.x + 3, list.y + 3)).is_empty());
        app.update(mouse(MouseEventKind::ScrollDown, list.x + 2, list.y + 2));
        assert_eq!(app.mailbox.selected, 0);
        assert!(matches!(app.modal, Modal::Help(_)));
    }

    fn ctrl_z() -> Msg {
        Msg::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('z'),
            KeyModifiers::CONTROL,
        ))
    }

    #[test]
    fn ctrl_z_suspends_from_the_mailbox_and_from_the_composer() {
        let mut app = inbox();
        assert_eq!(app.update(ctrl_z()), vec![Effect::Suspend]);
        app.modal = Modal::Compose(Box::new(crate::app::Composer::new(None)));
        assert_eq!(app.update(ctrl_z()), vec![Effect::Suspend]);
        assert!(
            matches!(app.modal, Modal::Compose(_)),
            "the draft stays open"
        );
    }

    #[test]
    fn suspend_can_be_rebound() {
        let mut app = inbox();
        let overrides = [("suspend".to_owned(), "ctrl+b".to_owned())].into();
        app.keymap = crate::keys::Keymap::with_overrides(&overrides).unwrap();
        assert!(app.update(ctrl_z()).is_empty());
        let ctrl_b = Msg::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('b'),
            KeyModifiers::CONTROL,
        ));
        assert_eq!(app.update(ctrl_b), vec![Effect::Suspend]);
    }

    /// A new message in the thread "First" arrives live, and its row is answered: the effects
    /// of both.
    fn new_message(app: &mut App) -> Vec<Effect> {
        let first = app.mailbox.threads.iter().find(|t| t.subject == "First");
        let thread = first.cloned().unwrap();
        let mut effects = app.update(Msg::Live(convos_core::events::Event::MessageCreated {
            message_id: convos_core::MessageId::generate(),
            thread_id: thread.id,
        }));
        effects.extend(app.update(Msg::ThreadRow {
            thread: thread.id,
            result: Ok(thread),
        }));
        effects
    }

    #[test]
    fn new_mail_raises_a_notification_only_when_configured() {
        let mut app = inbox();
        let effects = new_message(&mut app);
        assert!(
            !effects.iter().any(|e| matches!(e, Effect::Notify(_))),
            "off by default: {effects:?}"
        );

        app.notify = Notify::Osc9;
        let effects = new_message(&mut app);
        let note = effects.iter().find_map(|e| match e {
            Effect::Notify(note) => Some(note.clone()),
            _ => None,
        });
        assert_eq!(note.map(|n| n.body), Some("ALICE: First".to_owned()));
    }

    #[test]
    fn a_click_in_a_scrolled_list_lands_on_the_item_shown_there() {
        let area = Rect::new(0, 0, 40, 12); // 10 rows inside: five two-row items
        assert_eq!(item_at(area, 1, 2, 50, 0), Some(0));
        assert_eq!(item_at(area, 10, 2, 50, 0), Some(4));
        // Item 20 selected: the list shows 16..=20.
        assert_eq!(item_at(area, 1, 2, 50, 20), Some(16));
        assert_eq!(item_at(area, 10, 2, 50, 20), Some(20));
        assert_eq!(item_at(area, 0, 2, 50, 20), None);
        assert_eq!(item_at(area, 11, 2, 50, 20), None);
        assert_eq!(item_at(area, 5, 2, 2, 0), None);
    }
}
