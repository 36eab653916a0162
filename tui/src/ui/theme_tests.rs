//! The theme reaches the screen: the cells of the drawn buffer carry the configured styles, and
//! with NO_COLOR no colour at all (the snapshots compare text only, so colours are checked here).

use super::render;
use crate::app::tests::thread;
use crate::app::{App, Connection};
use crate::theme::Theme;
use chrono::TimeZone;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::{Buffer, Cell};
use ratatui::style::{Color, Modifier};
use std::collections::BTreeMap;

fn app(theme: Theme) -> App {
    let mut app = App::new();
    app.connection = Connection::Live;
    app.theme = theme;
    app.mailbox.threads = vec![thread("Lunch on Friday?", 2), thread("Quarterly report", 0)];
    app
}

fn draw(app: &App) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(100, 20)).unwrap();
    let now = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 9, 5, 0).unwrap();
    terminal.draw(|f| render(f, app, now)).unwrap();
    terminal.backend().buffer().clone()
}

/// The first cell of `text` on screen.
fn cell<'a>(buffer: &'a Buffer, text: &str) -> &'a Cell {
    let area = buffer.area;
    for y in 0..area.height {
        let row: String = (0..area.width)
            .map(|x| buffer[(x, y)].symbol().to_owned())
            .collect();
        if let Some(at) = row.find(text) {
            let x = row[..at].chars().count() as u16;
            return &buffer[(x, y)];
        }
    }
    panic!("{text:?} is not on screen");
}

fn theme(pairs: &[(&str, &str)], no_color: bool) -> Theme {
    let entries: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Theme::from_config(&entries, no_color).unwrap()
}

#[test]
fn the_default_theme_draws_as_before_with_a_reversed_selection() {
    let screen = draw(&app(Theme::default()));
    // The thread list has the keys: its border is cyan; the folders' is grey.
    assert_eq!(cell(&screen, "┏").fg, Color::Cyan);
    assert_eq!(cell(&screen, "┌").fg, Color::DarkGray);
    // The selected (first) thread is reversed, and bold as it is unread.
    let lunch = cell(&screen, "Lunch on Friday?");
    assert!(lunch.modifier.contains(Modifier::REVERSED), "{lunch:?}");
    assert!(lunch.modifier.contains(Modifier::BOLD), "{lunch:?}");
    let report = cell(&screen, "Quarterly report");
    assert!(!report.modifier.contains(Modifier::REVERSED), "{report:?}");
    assert!(!report.modifier.contains(Modifier::BOLD), "{report:?}");
    assert_eq!(cell(&screen, "● live").fg, Color::Green);
    assert_eq!(cell(&screen, "? help").fg, Color::DarkGray);
}

#[test]
fn a_configured_theme_styles_each_element() {
    let screen = draw(&app(theme(
        &[
            ("focused_border", "magenta"),
            ("border", "blue"),
            ("selection", "black on yellow"),
            ("unread", "italic red"),
            ("ok", "lightgreen"),
            ("hint", "underline"),
            ("title", "white on blue"),
        ],
        false,
    )));
    assert_eq!(cell(&screen, "┏").fg, Color::Magenta);
    assert_eq!(cell(&screen, "┌").fg, Color::Blue);
    let folders = cell(&screen, "Folders");
    assert_eq!((folders.fg, folders.bg), (Color::White, Color::Blue));
    // The selection over an unread thread: the selection's colours, the unread's italics.
    let lunch = cell(&screen, "Lunch on Friday?");
    assert_eq!((lunch.fg, lunch.bg), (Color::Black, Color::Yellow));
    assert!(lunch.modifier.contains(Modifier::ITALIC), "{lunch:?}");
    let report = cell(&screen, "Quarterly report");
    assert_eq!(report.bg, Color::Reset);
    assert_eq!(cell(&screen, "● live").fg, Color::LightGreen);
    assert!(
        cell(&screen, "? help")
            .modifier
            .contains(Modifier::UNDERLINED)
    );
}

#[test]
fn no_color_leaves_no_colour_on_screen_and_keeps_the_modifiers() {
    // Even colours configured on purpose go.
    let screen = draw(&app(theme(&[("unread", "bold red on white")], true)));
    for cell in &screen.content {
        assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{cell:?}");
    }
    let lunch = cell(&screen, "Lunch on Friday?");
    assert!(lunch.modifier.contains(Modifier::REVERSED), "{lunch:?}");
    assert!(lunch.modifier.contains(Modifier::BOLD), "{lunch:?}");
    // The focused pane is still told apart: its border is thick.
    assert!(cell(&screen, "┏").modifier.is_empty());
}
