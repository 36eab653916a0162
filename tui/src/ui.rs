//! Drawing the screen: the layout that places the components (each draws itself, next to its
//! state in `app/`), the status bar, and the small pieces they share (borders, times, centring).
//! Pure functions of the app state and the time, so they are tested by rendering into a test
//! backend.

use crate::app::{App, Connection, Modal, Pane, folder_label};
use crate::keys::{Action, Mode};
use chrono::{DateTime, Utc};
#[cfg(test)]
use convos_core::api::Message;
use convos_core::api::UserSummary;
use convos_core::text;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// The colour of focus and keys.
#[deprecated(note = "use the app's `Theme` (its `accent` style), so `[theme]` and NO_COLOR apply")]
pub const ACCENT: Color = Color::Cyan;

/// A titled border, thick and coloured when its pane has the keys.
#[deprecated(note = "use `Theme::block`, so `[theme]` and NO_COLOR apply")]
#[allow(deprecated)]
pub fn block(title: String, focused: bool) -> Block<'static> {
    let style = if focused {
        Style::default().fg(ACCENT)
    } else {
        Style::default().fg(Color::DarkGray)
    };
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(style)
        .title(Span::styled(
            title,
            Style::default().add_modifier(Modifier::BOLD),
        ))
}

/// `text` cut to `width` columns, the cut marked with `…`. Measured by grapheme, as the
/// terminal draws it (`❤️` is two columns, though its heart alone is one).
pub fn fit(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for grapheme in text.graphemes(true) {
        let w = grapheme.width();
        if used + w + 1 > width {
            break;
        }
        out.push_str(grapheme);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// How a person is named on screen in `width` columns: their display name, and their username
/// beside it where the two differ (`Alice Liddell` and ` <mallory>`), since anyone may take
/// any display name. A long display name gives way, never the username: where the two do not
/// fit, the username alone.
pub fn person(user: &UserSummary, width: usize) -> (String, String) {
    let name = text::shown_line(&user.display_name);
    let username = text::shown_line(&user.username);
    if name.trim().is_empty() {
        return (fit(&username, width), String::new());
    }
    if name.eq_ignore_ascii_case(&username) {
        return (fit(&name, width), String::new());
    }
    let tag = format!(" <{username}>");
    if tag.width() + 2 > width {
        return (fit(&username, width), String::new());
    }
    (fit(&name, width - tag.width()), tag)
}

/// "now", "5m", "3h", "2d", or the date.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds().max(0);
    match secs {
        0..60 => "now".into(),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        86_400..604_800 => format!("{}d", secs / 86_400),
        _ => at.format("%b %d").to_string(),
    }
}

/// When something was cached, as the stale marks say it: "12:03" today, "Nov 21 12:03"
/// before.
pub fn clock(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if at.date_naive() == now.date_naive() {
        at.format("%H:%M").to_string()
    } else {
        at.format("%b %d %H:%M").to_string()
    }
}

/// The time left until `until`: "45s", "30m", "2h", "3d" (whole seconds, rounded up, so the
/// last second shows as "1s" and the number changes at whole seconds before `until`).
pub fn countdown(until: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = crate::app::seconds_left(until, now);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A `width`×`height` rectangle in the middle of `area` (clipped to it).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Where the panes go on `screen`: the folders, the thread list, the thread and the status
/// bar (also where a mouse click lands).
pub fn panes(screen: Rect) -> [Rect; 4] {
    let [main, status] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(screen);
    let [folders, list, view] = Layout::horizontal([
        Constraint::Length(14),
        Constraint::Percentage(40),
        Constraint::Min(20),
    ])
    .areas(main);
    [folders, list, view, status]
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App, now: DateTime<Utc>) {
    if let Some(login) = &app.login {
        login.render(frame, &app.keymap, &app.theme);
        return;
    }
    let [folders, list, view, status] = panes(frame.area());
    let me = app.me.as_ref();
    let theme = &app.theme;
    app.mailbox
        .render_folders(frame, folders, me, app.pane == Pane::Folders, theme);
    let list_focused = app.pane == Pane::Threads;
    match &app.search {
        Some(search) if search.shows_results() => {
            search.render_results(frame, list, list_focused, now, theme);
        }
        _ => {
            app.mailbox
                .render_threads(frame, list, me, list_focused, app.in_flight > 0, now, theme)
        }
    }
    app.thread.render(
        frame,
        view,
        app.pane == Pane::Thread,
        &app.keymap,
        now,
        me.map(|m| m.user.id),
        theme,
    );
    match app.search.as_ref().filter(|s| s.editing) {
        Some(search) => search.render_prompt(frame, status, &app.keymap, theme),
        None => render_status(frame, app, status, now),
    }
    match &app.modal {
        Modal::None => {}
        Modal::Help(help) => help.render(frame, &app.keymap, theme),
        Modal::Confirm(confirm) => confirm.render(frame, &app.keymap, theme),
        Modal::Choice(choice) => choice.render(frame, theme),
        Modal::Compose(composer) => composer.render(frame, &app.keymap, theme),
        Modal::Ops(ops) => ops.render(frame, &app.keymap, now, theme),
        Modal::Settings(settings) => settings.render(frame, me, &app.keymap, now, theme),
        Modal::Drafts(list) => list.render(frame, &app.keymap, now, theme),
    }
}

fn render_status(frame: &mut Frame, app: &App, area: Rect, now: DateTime<Utc>) {
    let theme = &app.theme;
    let (conn, style) = match app.connection {
        Connection::Live => ("● live".to_owned(), theme.ok),
        Connection::Connecting => ("… connecting".to_owned(), theme.warning),
        Connection::Reconnecting(secs) => (format!("↻ reconnecting in {secs}s"), theme.warning),
    };
    let unread = app.me.as_ref().map_or(0, |m| m.unread_count);
    let mut spans = vec![Span::styled(conn, style)];
    // What is on screen comes from the cache: say from when, and that it is all there is while
    // the server cannot be reached.
    if let Some(at) = app.stale() {
        let offline = if app.is_offline() { "offline · " } else { "" };
        spans.push(Span::raw(" │ "));
        spans.push(Span::styled(
            format!("{offline}cached {}", clock(at, now)),
            theme.warning,
        ));
    }
    spans.push(Span::raw(format!(
        " │ {} │ {unread} unread",
        folder_label(app.mailbox.folder)
    )));
    if !app.outbox.is_empty() {
        spans.push(Span::styled(
            format!(" │ ✉ {} queued", app.outbox.len()),
            theme.warning,
        ));
    }
    if app.in_flight > 0 {
        spans.push(Span::styled(" │ ⟳", theme.accent));
    }
    if !app.status.is_empty() {
        spans.push(Span::raw(format!(" │ {}", text::shown_line(&app.status))));
    }
    let left = Line::from(spans);
    let hint = format!("{} help", app.keymap.key(Mode::Mailbox, Action::Help));
    let pad = (area.width as usize).saturating_sub(left.width() + hint.width());
    let mut all = left.spans;
    all.push(Span::raw(" ".repeat(pad)));
    all.push(Span::styled(hint, theme.hint));
    frame.render_widget(
        Paragraph::new(Line::from(all)).style(theme.status_bar),
        area,
    );
}

#[cfg(test)]
mod account_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod theme_tests;

/// `value` in at most `room` columns: whole if it fits, else `…` and its end (`tail`) or its
/// start and `…`.
pub fn fitted(value: &str, room: usize, tail: bool) -> String {
    if value.width() <= room {
        return value.to_owned();
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut used = 1;
    let graphemes: Vec<&str> = value.graphemes(true).collect();
    let ordered: Box<dyn Iterator<Item = &&str>> = if tail {
        Box::new(graphemes.iter().rev())
    } else {
        Box::new(graphemes.iter())
    };
    for g in ordered {
        if used + g.width() > room {
            break;
        }
        used += g.width();
        kept.push(g);
    }
    if tail {
        kept.reverse();
        format!("…{}", kept.concat())
    } else {
        format!("{}…", kept.concat())
    }
}
