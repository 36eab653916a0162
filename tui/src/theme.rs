//! The colours and text styles of everything the client draws, one [`Style`] per element,
//! configured in `[theme]` of `config.toml` (`selection = "reverse"`, `unread = "bold yellow"`,
//! `error = "white on red"`).
//!
//! The defaults use the terminal's own foreground and background plus modifiers (bold,
//! reverse) and a few of the 16 basic colours, which the terminal's palette adapts to a dark or
//! a light background; no fixed RGB. With `NO_COLOR` set to anything non-empty
//! (<https://no-color.org>) every colour is dropped, the configured ones included, and only the
//! modifiers stay: the focused pane keeps its thick border, the selection stays reversed.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, Borders};
use std::collections::BTreeMap;

/// The style of each element the client draws.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Theme {
    /// Borders of panes and windows without the keys.
    pub border: Style,
    /// The border of the pane or window with the keys (it is also drawn thick).
    pub focused_border: Style,
    /// Pane and window titles.
    pub title: Style,
    /// The highlighted row of a list (threads, search results, dead jobs, queues).
    pub selection: Style,
    /// The folder under the folder cursor.
    pub cursor: Style,
    /// Keys in the help, the spinner, the caret where text is typed.
    pub accent: Style,
    /// The label of the field or prompt being typed in (`Subject:`, `Search:`).
    pub prompt: Style,
    /// Threads with unread messages.
    pub unread: Style,
    /// Names, headings and the folder shown.
    pub strong: Style,
    /// Secondary text: excerpts, usernames, counters, empty-list texts.
    pub dim: Style,
    /// Key hints (status bar, composer and board footers, search prompt).
    pub hint: Style,
    /// Errors (a field the server refused, a queue with dead jobs).
    pub error: Style,
    /// Warnings (connecting, queued messages, read-once, expiry).
    pub warning: Style,
    /// A question waiting for yes or no on the queue board.
    pub question: Style,
    /// Good news (the live connection, a healthy queue board).
    pub ok: Style,
    /// Search matches in excerpts.
    pub matched: Style,
    /// Quiet notices (why email stopped, below the folders).
    pub notice: Style,
    /// The status bar's base style (under its parts).
    pub status_bar: Style,
}

impl Default for Theme {
    /// Today's look, readable on dark and light backgrounds.
    fn default() -> Self {
        let bold = Style::default().add_modifier(Modifier::BOLD);
        let gray = Style::default().fg(Color::DarkGray);
        Self {
            border: gray,
            focused_border: Style::default().fg(Color::Cyan),
            title: bold,
            selection: Style::default().add_modifier(Modifier::REVERSED),
            cursor: Style::default().fg(Color::Cyan),
            accent: Style::default().fg(Color::Cyan),
            prompt: Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            unread: bold,
            strong: bold,
            dim: gray,
            hint: gray,
            error: Style::default().fg(Color::Red),
            warning: Style::default().fg(Color::Yellow),
            question: Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            ok: Style::default().fg(Color::Green),
            matched: Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            notice: Style::default().add_modifier(Modifier::DIM),
            status_bar: Style::default(),
        }
    }
}

/// The element names of `[theme]`, in the order of [`Theme`]'s fields.
pub const ELEMENTS: &[&str] = &[
    "border",
    "focused_border",
    "title",
    "selection",
    "cursor",
    "accent",
    "prompt",
    "unread",
    "strong",
    "dim",
    "hint",
    "error",
    "warning",
    "question",
    "ok",
    "matched",
    "notice",
    "status_bar",
];

impl Theme {
    /// The default theme with `[theme]`'s entries over it; `no_color` (from `NO_COLOR`) then
    /// drops every colour. An unknown element or a style that does not parse is an error that
    /// names it.
    pub fn from_config(entries: &BTreeMap<String, String>, no_color: bool) -> Result<Self, String> {
        let mut theme = Self::default();
        for (element, spec) in entries {
            let style = parse_style(spec).map_err(|e| format!("theme.{element}: {e}"))?;
            *theme.element(element).ok_or_else(|| {
                format!(
                    "theme.{element}: no such element (known: {})",
                    ELEMENTS.join(", ")
                )
            })? = style;
        }
        Ok(if no_color {
            theme.without_colors()
        } else {
            theme
        })
    }

    /// Whether the environment asks for no colour: `NO_COLOR` set to anything non-empty.
    pub fn no_color_from_env() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    }

    /// The same theme with every colour removed and the modifiers kept.
    pub fn without_colors(mut self) -> Self {
        for name in ELEMENTS {
            if let Some(style) = self.element(name) {
                let plain = Style::default()
                    .add_modifier(style.add_modifier)
                    .remove_modifier(style.sub_modifier);
                *style = plain;
            }
        }
        self
    }

    fn element(&mut self, name: &str) -> Option<&mut Style> {
        Some(match name {
            "border" => &mut self.border,
            "focused_border" => &mut self.focused_border,
            "title" => &mut self.title,
            "selection" => &mut self.selection,
            "cursor" => &mut self.cursor,
            "accent" => &mut self.accent,
            "prompt" => &mut self.prompt,
            "unread" => &mut self.unread,
            "strong" => &mut self.strong,
            "dim" => &mut self.dim,
            "hint" => &mut self.hint,
            "error" => &mut self.error,
            "warning" => &mut self.warning,
            "question" => &mut self.question,
            "ok" => &mut self.ok,
            "matched" => &mut self.matched,
            "notice" => &mut self.notice,
            "status_bar" => &mut self.status_bar,
            _ => return None,
        })
    }

    /// A titled border, thick and in `focused_border` when its pane has the keys.
    pub fn block(&self, title: String, focused: bool) -> Block<'static> {
        Block::default()
            .borders(Borders::ALL)
            .border_type(if focused {
                BorderType::Thick
            } else {
                BorderType::Plain
            })
            .border_style(if focused {
                self.focused_border
            } else {
                self.border
            })
            .title(Span::styled(title, self.title))
    }
}

/// Parses a style: words separated by spaces, each a modifier (`bold`, `dim`, `italic`,
/// `underline`, `reverse`, `blink`, `crossed_out`), a colour for the text, or `on` and a colour
/// for the background. Colours are the 16 basic names (`red`, `lightred`, `darkgray`, `gray`,
/// `white`, …), `default` (the terminal's own), an index `0`–`255`, or `#rrggbb`. `none` (or
/// an empty string) is the terminal's plain text.
pub fn parse_style(spec: &str) -> Result<Style, String> {
    let mut style = Style::default();
    let mut words = spec.split_whitespace();
    while let Some(word) = words.next() {
        let word = word.to_ascii_lowercase();
        let modifier = match word.as_str() {
            "none" | "plain" => continue,
            "bold" => Some(Modifier::BOLD),
            "dim" => Some(Modifier::DIM),
            "italic" => Some(Modifier::ITALIC),
            "underline" | "underlined" => Some(Modifier::UNDERLINED),
            "reverse" | "reversed" => Some(Modifier::REVERSED),
            "blink" => Some(Modifier::SLOW_BLINK),
            "crossed_out" | "strikethrough" => Some(Modifier::CROSSED_OUT),
            _ => None,
        };
        if let Some(modifier) = modifier {
            style = style.add_modifier(modifier);
        } else if word == "on" {
            let color = words
                .next()
                .ok_or_else(|| format!("`on` needs a colour in {spec:?}"))?;
            style = style.bg(parse_color(color)?);
        } else {
            style = style.fg(parse_color(&word)?);
        }
    }
    Ok(style)
}

fn parse_color(word: &str) -> Result<Color, String> {
    let word = word.to_ascii_lowercase().replace(['_', '-'], "");
    Ok(match word.as_str() {
        "default" | "reset" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" | "brightblack" => Color::DarkGray,
        "lightred" | "brightred" => Color::LightRed,
        "lightgreen" | "brightgreen" => Color::LightGreen,
        "lightyellow" | "brightyellow" => Color::LightYellow,
        "lightblue" | "brightblue" => Color::LightBlue,
        "lightmagenta" | "brightmagenta" => Color::LightMagenta,
        "lightcyan" | "brightcyan" => Color::LightCyan,
        "white" | "brightwhite" => Color::White,
        hex if hex.starts_with('#') && hex.len() == 7 => {
            let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16);
            match (channel(1), channel(3), channel(5)) {
                (Ok(r), Ok(g), Ok(b)) => Color::Rgb(r, g, b),
                _ => return Err(format!("{word:?} is not a #rrggbb colour")),
            }
        }
        index => match index.parse::<u8>() {
            Ok(i) => Color::Indexed(i),
            Err(_) => {
                return Err(format!(
                    "{word:?} is neither a colour nor a modifier (bold, dim, italic, underline, \
                     reverse, blink, crossed_out)"
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn styles_are_colours_modifiers_and_backgrounds() {
        assert_eq!(
            parse_style("bold yellow on blue").unwrap(),
            Style::default()
                .fg(Color::Yellow)
                .bg(Color::Blue)
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(
            parse_style("reverse").unwrap(),
            Style::default().add_modifier(Modifier::REVERSED)
        );
        assert_eq!(
            parse_style("#ff8000 on 236").unwrap(),
            Style::default()
                .fg(Color::Rgb(255, 128, 0))
                .bg(Color::Indexed(236))
        );
        assert_eq!(
            parse_style("light_red").unwrap(),
            Style::default().fg(Color::LightRed)
        );
        assert_eq!(parse_style("none").unwrap(), Style::default());
        assert_eq!(
            parse_style("default").unwrap(),
            Style::default().fg(Color::Reset)
        );
    }

    #[test]
    fn a_bad_style_is_an_error_naming_the_word() {
        let err = parse_style("bold purpel").unwrap_err();
        assert!(err.contains("purpel"), "{err}");
        assert!(parse_style("red on").is_err());
        assert!(parse_style("#12345").is_err());
    }

    #[test]
    fn the_config_changes_only_the_elements_it_names() {
        let theme = Theme::from_config(
            &entries(&[("unread", "bold yellow"), ("selection", "black on white")]),
            false,
        )
        .unwrap();
        assert_eq!(
            theme.unread,
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(
            theme.selection,
            Style::default().fg(Color::Black).bg(Color::White)
        );
        assert_eq!(theme.error, Theme::default().error);
        assert_eq!(theme.border, Theme::default().border);
    }

    #[test]
    fn an_unknown_element_is_named_with_the_known_ones() {
        let err = Theme::from_config(&entries(&[("borders", "red")]), false).unwrap_err();
        assert!(err.contains("theme.borders"), "{err}");
        assert!(err.contains("focused_border"), "{err}");
        let err = Theme::from_config(&entries(&[("error", "bright")]), false).unwrap_err();
        assert!(err.contains("theme.error"), "{err}");
    }

    #[test]
    fn every_element_can_be_set() {
        for name in ELEMENTS {
            let theme = Theme::from_config(&entries(&[(name, "magenta")]), false).unwrap();
            assert_ne!(theme, Theme::default(), "{name}");
        }
    }

    #[test]
    fn no_color_drops_every_colour_and_keeps_the_modifiers() {
        let theme = Theme::from_config(&entries(&[("error", "bold white on red")]), true).unwrap();
        assert_eq!(theme.error, Style::default().add_modifier(Modifier::BOLD));
        assert_eq!(theme.border, Style::default());
        assert_eq!(theme.focused_border, Style::default());
        assert_eq!(
            theme.selection,
            Style::default().add_modifier(Modifier::REVERSED)
        );
        assert_eq!(theme.unread, Style::default().add_modifier(Modifier::BOLD));
        assert_eq!(theme.matched, Style::default().add_modifier(Modifier::BOLD));
        for name in ELEMENTS {
            let mut theme = theme.clone();
            let style = *theme.element(name).unwrap();
            assert_eq!((style.fg, style.bg), (None, None), "{name}");
        }
    }

    #[test]
    fn the_shipped_example_config_has_a_theme_that_parses() {
        let dir = std::env::temp_dir().join(format!("convos-theme-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"),
            dir.join("config.toml"),
        )
        .unwrap();
        let config = crate::config::load(&dir).unwrap();
        assert!(config.theme.contains_key("selection"), "{config:?}");
        assert_eq!(
            Theme::from_config(&config.theme, false).unwrap(),
            Theme::default()
        );
        assert_eq!(config.notify, crate::desktop::Notify::Off);
        assert!(!config.mouse);
        // Every element is documented there (commented out or set).
        let text = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        for name in ELEMENTS {
            assert!(text.contains(&format!("{name} = ")), "{name}");
        }
    }

    #[test]
    fn the_default_theme_uses_no_fixed_rgb() {
        let mut theme = Theme::default();
        for name in ELEMENTS {
            let style = *theme.element(name).unwrap();
            for color in [style.fg, style.bg].into_iter().flatten() {
                assert!(
                    !matches!(color, Color::Rgb(..) | Color::Indexed(_)),
                    "{name}: {color:?}"
                );
            }
        }
    }
}
