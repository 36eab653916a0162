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
pub fn item_at(area: Rect, row: u16, item_rows: u16, count: usize, selected: usize) -> Option<usize> {
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
        if !matches!(self.modal, Modal::None) {
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
