//! Word wrapping of styled lines into rows of a given width, done here rather than by
//! ratatui's `Paragraph` so that the thread pane knows exactly how many rows it has: it counted
//! them as if text broke every `width` columns, while words wrap earlier, and the end of a long
//! message could not be scrolled to.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// A grapheme of a line with its style and width in columns.
struct Cell<'a> {
    text: &'a str,
    style: Style,
    width: usize,
}

/// `line` in rows of at most `width` columns: broken at spaces where a word fits on the next row,
/// inside a word longer than a row, never losing a character. A space that ends a row is
/// dropped (the row break stands for it); a grapheme wider than the row has a row of its own.
pub fn wrap(line: &Line<'_>, width: usize) -> Vec<Line<'static>> {
    let cells: Vec<Cell> = line
        .spans
        .iter()
        .flat_map(|span| {
            let style = line.style.patch(span.style);
            span.content.graphemes(true).map(move |g| Cell {
                text: g,
                style,
                width: g.width(),
            })
        })
        .collect();
    let mut rows = Rows {
        width: width.max(1),
        done: Vec::new(),
        row: Vec::new(),
        used: 0,
    };
    let mut word: Vec<&Cell> = Vec::new();
    for cell in &cells {
        if cell.text.chars().all(char::is_whitespace) {
            rows.word(&mut word);
            rows.space(cell);
        } else {
            word.push(cell);
        }
    }
    rows.word(&mut word);
    rows.done.push(rows.row);
    rows.done.into_iter().map(|cells| joined(&cells)).collect()
}

/// Rows being filled.
struct Rows<'c, 'a> {
    width: usize,
    done: Vec<Vec<&'c Cell<'a>>>,
    row: Vec<&'c Cell<'a>>,
    used: usize,
}

impl<'c, 'a> Rows<'c, 'a> {
    fn break_row(&mut self) {
        self.done.push(std::mem::take(&mut self.row));
        self.used = 0;
    }

    /// Places `word` (emptied): on a row of its own if it fits one and not the rest of this,
    /// else from here on, broken wherever a row is full.
    fn word(&mut self, word: &mut Vec<&'c Cell<'a>>) {
        let width: usize = word.iter().map(|c| c.width).sum();
        if self.used + width > self.width && width <= self.width && !self.row.is_empty() {
            self.break_row();
        }
        for cell in word.drain(..) {
            if self.used + cell.width > self.width && !self.row.is_empty() {
                self.break_row();
            }
            self.row.push(cell);
            self.used += cell.width;
        }
    }

    /// Places a space: where the row is full, the row break stands for it.
    fn space(&mut self, cell: &'c Cell<'a>) {
        if self.used + cell.width > self.width {
            self.break_row();
        } else {
            self.row.push(cell);
            self.used += cell.width;
        }
    }
}

/// The cells of a row as a line, one span per run of a style.
fn joined(cells: &[&Cell]) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    for cell in cells {
        match spans.last_mut() {
            Some(last) if last.style == cell.style => last.content.to_mut().push_str(cell.text),
            _ => spans.push(Span::styled(cell.text.to_owned(), cell.style)),
        }
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Stylize;

    fn rows(text: &str, width: usize) -> Vec<String> {
        wrap(&Line::from(text.to_owned()), width)
            .iter()
            .map(|l| l.to_string())
            .collect()
    }

    #[test]
    fn words_move_whole_to_the_next_row_and_long_ones_break() {
        assert_eq!(rows("abc def ghi", 7), ["abc def", "ghi"]);
        assert_eq!(rows("abcdefghij kl", 4), ["abcd", "efgh", "ij ", "kl"]);
        assert_eq!(rows("", 5), [""]);
        assert_eq!(rows("  indented", 20), ["  indented"]);
    }

    #[test]
    fn every_character_is_kept_and_no_row_is_wider_than_asked() {
        let text = "The quick brown fox 拉麺 jumps over the lazy dog, then 🍜 again and again.";
        for width in 1..40 {
            let wrapped = rows(text, width);
            let kept: String = wrapped.concat().split_whitespace().collect();
            let all: String = text.split_whitespace().collect();
            assert_eq!(kept, all, "width {width}");
            for row in &wrapped {
                assert!(row.width() <= width.max(2), "width {width}: {row:?}");
            }
        }
    }

    #[test]
    fn styles_stay_with_their_text() {
        let line = Line::from(vec![
            "alice".bold(),
            " <alice>".dim(),
            "  2026-11-22".into(),
        ]);
        let wrapped = wrap(&line, 13);
        assert_eq!(wrapped.len(), 2);
        assert_eq!(wrapped[0].spans[0].content, "alice");
        assert_eq!(wrapped[0].spans[1].content, " <alice>");
        assert_eq!(wrapped[0].spans[1].style, Style::new().dim());
    }
}
