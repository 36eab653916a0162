//! Drawing: the folder pane, the thread list, the open thread, the status bar, and the compose,
//! help and confirmation windows over them. Pure functions of the app state and the time, so
//! they are tested by rendering into a test backend.

use crate::app::{App, Compose, Connection, Field, Modal, Ops, OpsFocus, Pane};
use crate::keys::BINDINGS;
use crate::sanitize;
use chrono::{DateTime, Utc};
use convos_core::api::{EmailStopped, Folder, Message, Thread};
use convos_core::ops::{BoardColumn, board_header, board_row};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, BorderType, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap,
};
use unicode_width::UnicodeWidthStr;

const ACCENT: Color = Color::Cyan;

fn block(title: String, focused: bool) -> Block<'static> {
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

fn countdown(until: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (until - now).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App, now: DateTime<Utc>) {
    let [main, status] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    let [folders, list, view] = Layout::horizontal([
        Constraint::Length(14),
        Constraint::Percentage(40),
        Constraint::Min(20),
    ])
    .areas(main);
    render_folders(frame, app, folders);
    match &app.search {
        Some(search) if !search.editing || search.hits.is_some() => {
            render_search(frame, app, search, list, now);
        }
        _ => render_threads(frame, app, list, now),
    }
    render_view(frame, app, view, now);
    render_status(frame, app, status);
    match &app.modal {
        Modal::None => {}
        Modal::Help => render_help(frame, &app.keymap),
        Modal::ConfirmDelete(_) => render_confirm(frame),
        Modal::Compose(compose) => render_compose(frame, compose),
        Modal::Ops(ops) => render_ops(frame, ops, now),
    }
}

/// The name a folder is shown by.
fn folder_label(folder: Folder) -> &'static str {
    match folder {
        Folder::Inbox => "Inbox",
        Folder::Sent => "Sent",
        Folder::Archive => "Archive",
        Folder::All => "All",
    }
}

/// Below the folders, why Convos stopped emailing the user, if it did.
fn email_stopped(app: &App) -> Vec<ListItem<'static>> {
    let why = match app.me.as_ref().and_then(|m| m.user.email_stopped) {
        Some(EmailStopped::Bounced) => "bounced",
        Some(EmailStopped::Complaint) => "complaint",
        None => return Vec::new(),
    };
    let warn = Style::default().add_modifier(Modifier::DIM);
    vec![
        ListItem::new(""),
        ListItem::new(Span::styled("No email:", warn)),
        ListItem::new(Span::styled(why, warn)),
    ]
}

fn render_folders(frame: &mut Frame, app: &App, area: Rect) {
    let counts = app
        .me
        .as_ref()
        .map(|m| m.unread_by_folder.clone())
        .unwrap_or_default();
    let items: Vec<ListItem> = Folder::ALL
        .into_iter()
        .map(|f| {
            let unread = counts.get(f);
            let mut text = folder_label(f).to_owned();
            if unread > 0 {
                text.push_str(&format!(" ({unread})"));
            }
            let style = if f == app.folder {
                Style::default().add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            ListItem::new(Span::styled(text, style))
        })
        .chain(email_stopped(app))
        .collect();
    let focused = app.pane == Pane::Folders;
    let list = List::new(items)
        .block(block("Folders".into(), focused))
        .highlight_symbol("> ")
        .highlight_style(Style::default().fg(ACCENT));
    let mut state = ListState::default().with_selected(Some(app.folder_cursor));
    frame.render_stateful_widget(list, area, &mut state);
}

fn peer_name(thread: &Thread, me: Option<&str>) -> String {
    thread
        .participants
        .iter()
        .find(|p| Some(p.username.as_str()) != me)
        .or(thread.participants.first())
        .map_or_else(String::new, |p| sanitize::line(&p.display_name))
}

fn render_threads(frame: &mut Frame, app: &App, area: Rect, now: DateTime<Utc>) {
    let me = app.me.as_ref().map(|m| m.user.username.as_str());
    let width = area.width.saturating_sub(4) as usize;
    let items: Vec<ListItem> = app
        .threads
        .iter()
        .map(|t| {
            let unread = t.unread_count > 0;
            let marker = if unread { "● " } else { "  " };
            let when = ago(t.last_message_at, now);
            let count = if t.message_count > 1 {
                format!(" ({})", t.message_count)
            } else {
                String::new()
            };
            let name = format!("{marker}{}{count}", peer_name(t, me));
            let pad = width.saturating_sub(name.width() + when.width());
            let bold = if unread {
                Style::default().add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            let first = Line::from(vec![
                Span::styled(name, bold),
                Span::raw(" ".repeat(pad)),
                Span::raw(when),
            ]);
            let excerpt = t
                .last_message
                .as_ref()
                .and_then(|m| m.body_excerpt.as_deref())
                .map(sanitize::line)
                .unwrap_or_else(|| "(read-once)".into());
            let second = Line::from(vec![
                Span::raw("  "),
                Span::styled(sanitize::line(&t.subject), bold),
                Span::styled(
                    format!(" — {excerpt}"),
                    Style::default().fg(Color::DarkGray),
                ),
            ]);
            ListItem::new(vec![first, second])
        })
        .collect();
    let title = format!("{} ({})", folder_label(app.folder), app.threads.len());
    let empty = items.is_empty();
    let list = List::new(items)
        .block(block(title, app.pane == Pane::Threads))
        .highlight_style(Style::default().bg(Color::DarkGray));
    let mut state = ListState::default().with_selected((!empty).then_some(app.selected));
    frame.render_stateful_widget(list, area, &mut state);
    if empty {
        let inner = area.inner(ratatui::layout::Margin {
            horizontal: 2,
            vertical: 1,
        });
        let text = if app.pending > 0 {
            "Loading…"
        } else {
            "No conversations here."
        };
        frame.render_widget(
            Paragraph::new(text).style(Style::default().fg(Color::DarkGray)),
            inner,
        );
    }
}

fn message_lines(m: &Message, now: DateTime<Utc>) -> Vec<Line<'static>> {
    let mut header = vec![
        Span::styled(
            sanitize::line(&m.sender.display_name),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            format!(" <{}>", sanitize::line(&m.sender.username)),
            Style::default().fg(Color::DarkGray),
        ),
        Span::raw(format!("  {}", m.created_at.format("%Y-%m-%d %H:%M"))),
    ];
    if m.read_once {
        header.push(Span::styled(
            "  [read once]",
            Style::default().fg(Color::Yellow),
        ));
    }
    if let Some(until) = m.expires_at {
        header.push(Span::styled(
            format!("  [expires in {}]", countdown(until, now)),
            Style::default().fg(Color::Yellow),
        ));
    }
    let mut lines = vec![Line::from(header)];
    let body = match &m.body {
        Some(body) => sanitize::body(body),
        None if m.read_once => {
            "(read-once message: press o to open it; it can be read only once)".into()
        }
        None => "(no longer available)".into(),
    };
    lines.extend(body.lines().map(|l| Line::from(format!("  {l}"))));
    lines.push(Line::from(""));
    lines
}

fn render_view(frame: &mut Frame, app: &App, area: Rect, now: DateTime<Utc>) {
    let focused = app.pane == Pane::Thread;
    let Some(open) = &app.open else {
        let hint = Paragraph::new("Select a thread and press Enter to read it.")
            .style(Style::default().fg(Color::DarkGray))
            .block(block("Thread".into(), focused));
        frame.render_widget(hint, area);
        return;
    };
    let title = sanitize::line(&open.thread.subject);
    let lines: Vec<Line> = match &open.messages {
        None => vec![Line::from("Loading…")],
        Some(messages) => messages
            .iter()
            .flat_map(|m| message_lines(m, now))
            .collect(),
    };
    // Newest at the bottom: scroll so the end shows, minus what the user scrolled back.
    let inner_width = area.width.saturating_sub(2).max(1) as usize;
    let total: usize = lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(inner_width))
        .sum();
    let height = area.height.saturating_sub(2) as usize;
    let bottom = total.saturating_sub(height);
    let offset = bottom.saturating_sub(open.scroll as usize);
    let view = Paragraph::new(lines)
        .block(block(title, focused))
        .wrap(Wrap { trim: false })
        .scroll((u16::try_from(offset).unwrap_or(u16::MAX), 0));
    frame.render_widget(view, area);
}

/// A search excerpt with the matches (between « and ») in bold.
fn highlighted(excerpt: &str) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for (i, part) in sanitize::line(excerpt).split(['«', '»']).enumerate() {
        let style = if i % 2 == 1 {
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(Color::DarkGray)
        };
        spans.push(Span::styled(part.to_owned(), style));
    }
    spans
}

fn render_search(
    frame: &mut Frame,
    app: &App,
    search: &crate::app::Search,
    area: Rect,
    now: DateTime<Utc>,
) {
    let title = format!("Search: {}", sanitize::line(&search.query));
    let Some(hits) = &search.hits else {
        let text = Paragraph::new("Searching…").block(block(title, app.pane == Pane::Threads));
        frame.render_widget(text, area);
        return;
    };
    let width = area.width.saturating_sub(4) as usize;
    let items: Vec<ListItem> = hits
        .iter()
        .map(|h| {
            let when = ago(h.created_at, now);
            let name = sanitize::line(&h.sender.display_name);
            let pad = width.saturating_sub(name.width() + when.width() + 2);
            let first = Line::from(vec![
                Span::raw("  "),
                Span::styled(name, Style::default().add_modifier(Modifier::BOLD)),
                Span::raw(" ".repeat(pad)),
                Span::raw(when),
            ]);
            let mut second = vec![
                Span::raw("  "),
                Span::raw(sanitize::line(&h.subject)),
                Span::raw(" — "),
            ];
            match &h.excerpt {
                Some(excerpt) => second.extend(highlighted(excerpt)),
                None => second.push(Span::styled(
                    "(read-once)",
                    Style::default().fg(Color::DarkGray),
                )),
            }
            ListItem::new(vec![first, Line::from(second)])
        })
        .collect();
    let empty = items.is_empty();
    let list = List::new(items)
        .block(block(
            format!("{title} ({})", hits.len()),
            app.pane == Pane::Threads,
        ))
        .highlight_style(Style::default().bg(Color::DarkGray));
    let mut state = ListState::default().with_selected((!empty).then_some(search.selected));
    frame.render_stateful_widget(list, area, &mut state);
    if empty {
        let inner = area.inner(ratatui::layout::Margin {
            horizontal: 2,
            vertical: 1,
        });
        frame.render_widget(
            Paragraph::new("Nothing found.").style(Style::default().fg(Color::DarkGray)),
            inner,
        );
    }
}

fn render_status(frame: &mut Frame, app: &App, area: Rect) {
    if let Some(search) = app.search.as_ref().filter(|s| s.editing) {
        let prompt = Line::from(vec![
            Span::styled(
                "Search: ",
                Style::default().fg(ACCENT).add_modifier(Modifier::BOLD),
            ),
            Span::raw(sanitize::line(&search.query)),
            Span::styled("▏", Style::default().fg(ACCENT)),
            Span::styled(
                "   Enter search · Esc cancel",
                Style::default().fg(Color::DarkGray),
            ),
        ]);
        frame.render_widget(Paragraph::new(prompt), area);
        return;
    }
    let (conn, color) = match app.connection {
        Connection::Live => ("● live".to_owned(), Color::Green),
        Connection::Connecting => ("… connecting".to_owned(), Color::Yellow),
        Connection::Reconnecting(secs) => (format!("↻ reconnecting in {secs}s"), Color::Yellow),
    };
    let unread = app.me.as_ref().map_or(0, |m| m.unread_count);
    let mut spans = vec![
        Span::styled(conn, Style::default().fg(color)),
        Span::raw(format!(" │ {} │ {unread} unread", folder_label(app.folder))),
    ];
    if !app.outbox.is_empty() {
        spans.push(Span::styled(
            format!(" │ ✉ {} queued", app.outbox.len()),
            Style::default().fg(Color::Yellow),
        ));
    }
    if app.pending > 0 {
        spans.push(Span::styled(" │ ⟳", Style::default().fg(ACCENT)));
    }
    if !app.status.is_empty() {
        spans.push(Span::raw(format!(" │ {}", sanitize::line(&app.status))));
    }
    let left = Line::from(spans);
    let hint = "? help";
    let pad = (area.width as usize).saturating_sub(left.width() + hint.len());
    let mut all = left.spans;
    all.push(Span::raw(" ".repeat(pad)));
    all.push(Span::styled(hint, Style::default().fg(Color::DarkGray)));
    frame.render_widget(Paragraph::new(Line::from(all)), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn render_help(frame: &mut Frame, keymap: &crate::keys::Keymap) {
    let mut lines: Vec<Line> = BINDINGS
        .iter()
        .map(|b| {
            Line::from(vec![
                Span::styled(
                    format!("{:>9}  ", keymap.describe(b.action)),
                    Style::default().fg(ACCENT),
                ),
                Span::raw(b.help),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "  Writing: Tab next field · Ctrl-s send · Ctrl-e $EDITOR · Esc Esc discard",
        Style::default().fg(Color::DarkGray),
    )));
    lines.push(Line::from(Span::styled(
        "  Any key closes this help.",
        Style::default().fg(Color::DarkGray),
    )));
    let area = centered(frame.area(), 74, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(block("Keys".into(), true)),
        area,
    );
}

fn render_confirm(frame: &mut Frame) {
    let area = centered(frame.area(), 44, 3);
    frame.render_widget(Clear, area);
    let text =
        Paragraph::new("Delete this thread for you? (y/n)").block(block("Delete".into(), true));
    frame.render_widget(text, area);
}

fn field_line(label: &str, value: &str, focused: bool, counter: Option<String>) -> Line<'static> {
    let style = if focused {
        Style::default().fg(ACCENT).add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    let mut spans = vec![
        Span::styled(format!("{label:>9}: "), style),
        Span::raw(sanitize::line(value)),
    ];
    if focused {
        spans.push(Span::styled("▏", Style::default().fg(ACCENT)));
    }
    if let Some(counter) = counter {
        spans.push(Span::styled(
            format!("  {counter}"),
            Style::default().fg(Color::DarkGray),
        ));
    }
    Line::from(spans)
}

fn error_line(compose: &Compose, field: &str) -> Option<Line<'static>> {
    compose.errors.get(field).map(|e| {
        Line::from(Span::styled(
            format!("           ⚠ {}", sanitize::line(e)),
            Style::default().fg(Color::Red),
        ))
    })
}

fn render_compose(frame: &mut Frame, compose: &Compose) {
    let area = centered(
        frame.area(),
        frame.area().width.saturating_sub(6),
        frame.area().height.saturating_sub(4),
    );
    frame.render_widget(Clear, area);
    let title = if compose.reply_to.is_some() {
        "Reply"
    } else {
        "New message"
    };
    let outer = block(title.into(), true);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let mut header: Vec<Line> = Vec::new();
    match &compose.reply_to {
        Some((_, subject)) => header.push(field_line("Subject", subject, false, None)),
        None => {
            header.push(field_line(
                "To",
                &compose.recipient,
                compose.field == Field::Recipient,
                None,
            ));
            header.extend(error_line(compose, "recipient"));
            if compose.field == Field::Recipient && compose.suggestions.len() > 1 {
                header.push(Line::from(Span::styled(
                    format!("           {}", compose.suggestions.join("  ")),
                    Style::default().fg(Color::DarkGray),
                )));
            }
            let count = format!("{}/140", compose.subject.chars().count());
            header.push(field_line(
                "Subject",
                &compose.subject,
                compose.field == Field::Subject,
                Some(count),
            ));
            header.extend(error_line(compose, "subject"));
        }
    }
    let body_count = format!("{}/64000", compose.body_text().chars().count());
    header.push(field_line(
        "Body",
        "",
        compose.field == Field::Body,
        Some(body_count),
    ));
    header.extend(error_line(compose, "body"));
    let footer = "Ctrl-s send · Ctrl-e $EDITOR · Tab next field · Esc discard";
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(header.len() as u16),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(header), head);
    frame.render_widget(&compose.body, body);
    frame.render_widget(
        Paragraph::new(Span::styled(footer, Style::default().fg(Color::DarkGray))),
        foot,
    );
}

fn render_ops(frame: &mut Frame, ops: &Ops, now: DateTime<Utc>) {
    let area = frame.area();
    let area = Rect {
        height: area.height.saturating_sub(1),
        ..area
    };
    frame.render_widget(Clear, area);
    let outer = block("Ops — job queues (refreshes every 3 s)".into(), true);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let queue_rows = ops.board.as_ref().map_or(1, |b| b.queues.len() + 2) as u16;
    let [queues_area, dead_area, detail_area, keys_area] = Layout::vertical([
        Constraint::Length(queue_rows + 2),
        Constraint::Min(4),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(inner);

    let mut lines = vec![Line::from(Span::styled(
        format!("  {}", board_header(&BoardColumn::COMPACT)),
        Style::default().add_modifier(Modifier::BOLD),
    ))];
    match &ops.board {
        None => lines.push(Line::from("  Loading…")),
        Some(board) => {
            for (i, q) in board.queues.iter().enumerate() {
                let selected = ops.focus == OpsFocus::Queues && i == ops.queue;
                let mut style = Style::default();
                if q.dead > 0 {
                    style = style.fg(Color::Red);
                }
                if selected {
                    style = style.bg(Color::DarkGray);
                }
                lines.push(Line::from(Span::styled(
                    format!(
                        "{}{}",
                        if selected { "> " } else { "  " },
                        board_row(&BoardColumn::COMPACT, q)
                    ),
                    style,
                )));
            }
            lines.push(Line::from(Span::styled(
                format!(
                    "  {} worker(s) seen in the last minute",
                    board.workers.len()
                ),
                Style::default().fg(Color::DarkGray),
            )));
        }
    }
    frame.render_widget(
        Paragraph::new(lines).block(block("Queues".into(), ops.focus == OpsFocus::Queues)),
        queues_area,
    );

    let items: Vec<ListItem> = ops
        .dead
        .iter()
        .map(|j| {
            let error = sanitize::line(j.last_error.as_deref().unwrap_or("-"));
            ListItem::new(format!(
                "{:<13} {:>2}/{:<2} {:>5}  {}",
                j.kind,
                j.attempts,
                j.max_attempts,
                ago(j.updated_at, now),
                error
            ))
        })
        .collect();
    let empty = items.is_empty();
    let list = List::new(items)
        .block(block(
            format!("Dead jobs ({})", ops.dead.len()),
            ops.focus == OpsFocus::Dead,
        ))
        .highlight_style(Style::default().bg(Color::DarkGray));
    let mut state = ListState::default()
        .with_selected((!empty && ops.focus == OpsFocus::Dead).then_some(ops.job));
    frame.render_stateful_widget(list, dead_area, &mut state);

    let detail = match (&ops.confirm, ops.dead.get(ops.job)) {
        (Some(command), _) => Line::from(Span::styled(
            format!("{}  (y/n)", command.question()),
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )),
        (None, Some(job)) if ops.focus == OpsFocus::Dead => Line::from(format!(
            "{}  {}",
            job.id,
            sanitize::line(job.last_error.as_deref().unwrap_or(""))
        )),
        _ if empty => Line::from(Span::styled(
            "No dead jobs: delivery is healthy.",
            Style::default().fg(Color::Green),
        )),
        _ => Line::from(Span::styled(
            "Tab to the dead jobs to see their errors, retry or discard them.",
            Style::default().fg(Color::DarkGray),
        )),
    };
    frame.render_widget(
        Paragraph::new(detail)
            .wrap(Wrap { trim: true })
            .block(block("Detail".into(), false)),
        detail_area,
    );
    frame.render_widget(
        Paragraph::new(Span::styled(
            "Tab queues/dead · j/k move · p pause/resume queue · r retry · x discard · R refresh · q close",
            Style::default().fg(Color::DarkGray),
        )),
        keys_area,
    );
}

#[cfg(test)]
mod tests;
