//! HTML-only email as plain text: blocks and `<br>` become line breaks, `<blockquote>` becomes
//! `> ` prefixed lines (so [`crate::quotes`] strips it like a plain-text quote), entities are
//! decoded, and what a reader does not see (`<head>`, `<style>`, `<script>`, comments,
//! `display:none`) is dropped.
//!
//! A small forgiving tokenizer rather than a full HTML5 parser: mail HTML is shallow, and what
//! matters here is the text a person wrote and where the quote starts.

use crate::limits::{MAX_QUOTE_MARKS, MAX_TEXT_BYTES, truncate};

/// The text of an HTML body, one line per visual line, quotes as `> ` lines, no trailing
/// blank lines.
pub fn to_text(html: &str) -> String {
    let mut w = Writer::default();
    let mut stack: Vec<Open> = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            w.text(rest, &stack);
            break;
        };
        if lt > 0 {
            w.text(&rest[..lt], &stack);
            rest = &rest[lt..];
        }
        rest = if let Some(after) = rest.strip_prefix("<!--") {
            after.find("-->").map_or("", |end| &after[end + 3..])
        } else if rest.starts_with("<!") || rest.starts_with("<?") {
            rest.find('>').map_or("", |end| &rest[end + 1..])
        } else if let Some((tag, after)) = Tag::parse(rest) {
            handle(&mut w, &mut stack, &tag);
            if !tag.closing && RAW_TEXT.contains(&tag.name.as_str()) {
                // The content of `<style>` and `<script>` is not markup: skip to its end tag.
                let end = format!("</{}", tag.name);
                let skipped = find_ignoring_case(after, &end).unwrap_or(after.len());
                let after = &after[skipped..];
                stack.pop();
                after.find('>').map_or("", |i| &after[i + 1..])
            } else {
                after
            }
        } else {
            // A `<` that opens no tag is text.
            w.text("<", &stack);
            &rest[1..]
        };
    }
    w.finish()
}

/// Elements whose content is raw text, never shown.
const RAW_TEXT: &[&str] = &["style", "script", "title", "textarea", "xmp"];

/// Elements with no content and no end tag.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements that start and end a line.
const BLOCK: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "li",
    "main",
    "nav",
    "ol",
    "pre",
    "section",
    "table",
    "tr",
    "ul",
];

/// Elements separated from their neighbours by a blank line (as is `<blockquote>`).
const PARAGRAPH: &[&str] = &["p", "h1", "h2", "h3", "h4", "h5", "h6"];

/// The most open elements tracked, so unclosed tags cannot make the conversion quadratic.
const MAX_DEPTH: usize = 256;

/// An element still open, with what it means for the text inside it.
struct Open {
    name: String,
    hidden: bool,
    /// For `<ol>`: the number of the next item.
    next_item: Option<u32>,
}

/// One tag as written.
struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    attrs: Vec<(String, String)>,
}

impl Tag {
    /// Reads the tag at the start of `s` (which starts with `<`); `None` if it is not a tag.
    fn parse(s: &str) -> Option<(Tag, &str)> {
        let bytes = s.as_bytes();
        let mut i = 1;
        let closing = bytes.get(1) == Some(&b'/');
        if closing {
            i += 1;
        }
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b':' | b'-' | b'_'))
        {
            i += 1;
        }
        if i == start || !bytes[start].is_ascii_alphabetic() {
            return None;
        }
        let name = s[start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        let mut self_closing = false;
        loop {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            match bytes.get(i) {
                None => return Some((tag(name, closing, self_closing, attrs), "")),
                Some(b'>') => {
                    return Some((tag(name, closing, self_closing, attrs), &s[i + 1..]));
                }
                Some(b'/') => {
                    self_closing = true;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let key_start = i;
            while i < bytes.len()
                && !bytes[i].is_ascii_whitespace()
                && !matches!(bytes[i], b'=' | b'>' | b'/')
            {
                i += 1;
            }
            let key = s[key_start..i].to_ascii_lowercase();
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if bytes.get(i) == Some(&b'=') {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                match bytes.get(i) {
                    Some(&q @ (b'"' | b'\'')) => {
                        let end = s[i + 1..].find(q as char).map_or(s.len(), |e| i + 1 + e);
                        value = decode_entities(&s[i + 1..end]);
                        i = (end + 1).min(s.len());
                    }
                    _ => {
                        let v_start = i;
                        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>'
                        {
                            i += 1;
                        }
                        value = decode_entities(&s[v_start..i]);
                    }
                }
            }
            // A stray `=value` (no name) was read and is dropped.
            if !key.is_empty() {
                attrs.push((key, value));
            }
        }
    }

    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c.eq_ignore_ascii_case(class)))
    }

    fn is_hidden(&self) -> bool {
        self.attr("hidden").is_some()
            || self.attr("style").is_some_and(|s| {
                let s: String = s
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_ascii_lowercase();
                s.contains("display:none")
            })
    }
}

fn tag(name: String, closing: bool, self_closing: bool, attrs: Vec<(String, String)>) -> Tag {
    Tag {
        name,
        closing,
        self_closing,
        attrs,
    }
}

fn handle(w: &mut Writer, stack: &mut Vec<Open>, tag: &Tag) {
    let name = tag.name.as_str();
    let hidden = stack.iter().any(|o| o.hidden);
    if tag.closing {
        if let Some(pos) = stack.iter().rposition(|o| o.name == name) {
            stack.truncate(pos);
        } else {
            return;
        }
        if hidden && stack.iter().any(|o| o.hidden) {
            return;
        }
        match name {
            _ if name == "blockquote" || PARAGRAPH.contains(&name) => {
                w.blank_line(quote_depth(stack));
            }
            "td" | "th" => w.pending_space = true,
            _ if BLOCK.contains(&name) || name == "head" => w.end_block(),
            _ => {}
        }
        return;
    }
    // Past `MAX_DEPTH` open elements (unclosed tags in hostile mail), nesting is not tracked.
    if !VOID.contains(&name) && !tag.self_closing && stack.len() < MAX_DEPTH {
        let next_item = (name == "ol").then(|| {
            tag.attr("start")
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1)
        });
        // `<head>` holds no visible text (its `<title>` and `<style>` are skipped anyway).
        stack.push(Open {
            name: name.to_owned(),
            hidden: tag.is_hidden() || name == "head",
            next_item,
        });
    }
    if hidden || tag.is_hidden() {
        return;
    }
    match name {
        "br" => w.line_break(quote_depth(stack)),
        "hr" => {
            w.end_block();
            w.push_line("---", quote_depth(stack));
        }
        "img" => {
            if let Some(alt) = tag.attr("alt").filter(|a| a.chars().count() <= 8) {
                w.text(alt, stack);
            }
        }
        "blockquote" => w.blank_line(quote_depth(stack) - 1),
        "li" => {
            w.end_block();
            let marker = match stack
                .iter_mut()
                .rev()
                .skip(1)
                .find(|o| o.name == "ol" || o.name == "ul")
            {
                Some(Open {
                    next_item: Some(n), ..
                }) => {
                    *n += 1;
                    format!("{}. ", *n - 1)
                }
                _ => "- ".to_owned(),
            };
            w.text_raw(&marker, quote_depth(stack));
        }
        "td" | "th" => w.pending_space = true,
        _ if PARAGRAPH.contains(&name) => w.blank_line(quote_depth(stack)),
        _ if BLOCK.contains(&name) => w.end_block(),
        _ => {}
    }
    // Signatures that Gmail and Outlook on the web mark in HTML, as a `-- ` line like their
    // plain-text alternatives have.
    if tag.has_class("gmail_signature") || tag.attr("id").is_some_and(|id| id == "Signature") {
        w.end_block();
        if w.lines.last().is_none_or(|(_, l)| l.trim_end() != "--") {
            w.push_line("-- ", quote_depth(stack));
        }
    }
}

fn quote_depth(stack: &[Open]) -> usize {
    stack.iter().filter(|o| o.name == "blockquote").count()
}

/// Lines being written; each remembers how deeply quoted it is. Lines past
/// [`MAX_TEXT_BYTES`] of text are dropped: hostile mail cannot make the text, or the memory it
/// takes, larger than that (whatever the input, each line costs its bytes and its marks).
#[derive(Default)]
struct Writer {
    lines: Vec<(usize, String)>,
    /// The bytes the kept lines will take as text.
    bytes: usize,
    /// The line being written, if any text has started it.
    current: Option<(usize, String)>,
    pending_space: bool,
}

impl Writer {
    fn text(&mut self, raw: &str, stack: &[Open]) {
        if stack.iter().any(|o| o.hidden) {
            return;
        }
        let depth = quote_depth(stack);
        let decoded = decode_entities(raw);
        if stack.iter().any(|o| o.name == "pre") {
            for (i, part) in decoded.split('\n').enumerate() {
                if i > 0 {
                    self.line_break(depth);
                }
                self.text_raw(part, depth);
            }
            return;
        }
        for c in decoded.chars() {
            if c.is_ascii_whitespace() || c == '\u{200b}' || c == '\u{feff}' {
                self.pending_space = true;
            } else {
                if self.pending_space && self.current.as_ref().is_some_and(|(_, l)| !l.is_empty()) {
                    self.current.as_mut().expect("checked").1.push(' ');
                }
                self.pending_space = false;
                let c = if c == '\u{a0}' { ' ' } else { c };
                self.current.get_or_insert((depth, String::new())).1.push(c);
            }
        }
    }

    /// Text written as is (list markers, preformatted text).
    fn text_raw(&mut self, text: &str, depth: usize) {
        self.pending_space = false;
        self.current
            .get_or_insert((depth, String::new()))
            .1
            .push_str(text);
    }

    /// `<br>`: ends the line, or writes an empty one.
    fn line_break(&mut self, depth: usize) {
        let line = self.current.take().unwrap_or((depth, String::new()));
        self.keep(line);
        self.pending_space = false;
    }

    /// Adds a finished line, unless the text is full.
    fn keep(&mut self, (depth, line): (usize, String)) {
        if self.bytes < MAX_TEXT_BYTES {
            self.bytes += line.len() + 2 * depth.min(MAX_QUOTE_MARKS) + 1;
            self.lines.push((depth, line));
        }
    }

    /// Ends the line being written, if any.
    fn end_block(&mut self) {
        if let Some(line) = self.current.take() {
            self.keep(line);
        }
        self.pending_space = false;
    }

    fn push_line(&mut self, text: &str, depth: usize) {
        self.end_block();
        self.keep((depth, text.to_owned()));
    }

    /// A paragraph or quote edge: ends the line and writes a blank line (quoted `depth` deep)
    /// unless the last line is blank already.
    fn blank_line(&mut self, depth: usize) {
        self.end_block();
        if self.lines.last().is_some_and(|(_, l)| !l.trim().is_empty()) {
            self.keep((depth, String::new()));
        }
    }

    fn finish(mut self) -> String {
        self.end_block();
        while self.lines.last().is_some_and(|(_, l)| l.trim().is_empty()) {
            self.lines.pop();
        }
        let mut out = String::new();
        let mut blank_run = 0;
        for (depth, line) in &self.lines {
            let line = line.trim_end();
            // A signature separator keeps its space.
            let line = if line == "--" { "-- " } else { line };
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            if out.is_empty() && line.is_empty() && *depth == 0 {
                continue;
            }
            let prefix = vec![">"; (*depth).min(MAX_QUOTE_MARKS)].join(" ");
            out.push_str(&prefix);
            if !prefix.is_empty() && !line.is_empty() {
                out.push(' ');
            }
            out.push_str(line);
            out.push('\n');
            if out.len() >= MAX_TEXT_BYTES {
                break;
            }
        }
        truncate(&mut out, MAX_TEXT_BYTES);
        out
    }
}

/// Where `needle` (ASCII, lower case) first occurs in `haystack`, ignoring ASCII case, without
/// copying it (a lower-cased copy of the rest of the document per raw-text element made the
/// conversion quadratic).
fn find_ignoring_case(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Decodes character references: numeric ones and the named ones mail uses.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let body_len = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map_or(rest.len() - 1, |n| n);
        let body = &rest[1..1 + body_len];
        let has_semicolon = rest[1 + body_len..].starts_with(';');
        let decoded = if let Some(num) = body.strip_prefix('#') {
            let n = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => num.parse().ok(),
            };
            n.map(|n| match n {
                0 => '\u{fffd}',
                // Windows-1252 code points that HTML maps to their real characters.
                0x80 => '€',
                0x91 => '‘',
                0x92 => '’',
                0x93 => '“',
                0x94 => '”',
                0x96 => '–',
                0x97 => '—',
                0x85 => '…',
                n => char::from_u32(n).unwrap_or('\u{fffd}'),
            })
            .map(String::from)
        } else if has_semicolon || LEGACY.contains(&body) {
            named_entity(body).map(str::to_owned)
        } else {
            None
        };
        match decoded {
            Some(d) => {
                out.push_str(&d);
                rest = &rest[1 + body_len + usize::from(has_semicolon)..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Entities that old HTML allows without the `;`.
const LEGACY: &[&str] = &["amp", "lt", "gt", "quot", "nbsp", "AMP", "LT", "GT", "QUOT"];

fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" | "AMP" => "&",
        "lt" | "LT" => "<",
        "gt" | "GT" => ">",
        "quot" | "QUOT" => "\"",
        "apos" => "'",
        "nbsp" => "\u{a0}",
        "ensp" | "emsp" | "thinsp" => " ",
        "shy" | "zwnj" | "zwj" | "lrm" | "rlm" => "",
        "hellip" => "…",
        "mdash" => "—",
        "ndash" => "–",
        "lsquo" => "‘",
        "rsquo" => "’",
        "sbquo" => "‚",
        "ldquo" => "“",
        "rdquo" => "”",
        "bdquo" => "„",
        "laquo" => "«",
        "raquo" => "»",
        "bull" => "•",
        "middot" => "·",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "euro" => "€",
        "pound" => "£",
        "yen" => "¥",
        "cent" => "¢",
        "deg" => "°",
        "times" => "×",
        "divide" => "÷",
        "para" => "¶",
        "sect" => "§",
        "iexcl" => "¡",
        "iquest" => "¿",
        "agrave" => "à",
        "aacute" => "á",
        "acirc" => "â",
        "atilde" => "ã",
        "auml" => "ä",
        "aring" => "å",
        "aelig" => "æ",
        "ccedil" => "ç",
        "egrave" => "è",
        "eacute" => "é",
        "ecirc" => "ê",
        "euml" => "ë",
        "igrave" => "ì",
        "iacute" => "í",
        "icirc" => "î",
        "iuml" => "ï",
        "ntilde" => "ñ",
        "ograve" => "ò",
        "oacute" => "ó",
        "ocirc" => "ô",
        "otilde" => "õ",
        "ouml" => "ö",
        "oslash" => "ø",
        "oelig" => "œ",
        "ugrave" => "ù",
        "uacute" => "ú",
        "ucirc" => "û",
        "uuml" => "ü",
        "yacute" => "ý",
        "yuml" => "ÿ",
        "szlig" => "ß",
        "Agrave" => "À",
        "Aacute" => "Á",
        "Acirc" => "Â",
        "Auml" => "Ä",
        "Aring" => "Å",
        "AElig" => "Æ",
        "Ccedil" => "Ç",
        "Egrave" => "È",
        "Eacute" => "É",
        "Ecirc" => "Ê",
        "Iacute" => "Í",
        "Ntilde" => "Ñ",
        "Oacute" => "Ó",
        "Ocirc" => "Ô",
        "Ouml" => "Ö",
        "Oslash" => "Ø",
        "OElig" => "Œ",
        "Uacute" => "Ú",
        "Uuml" => "Ü",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_deeply_quoted_lines_becomes_bounded_text() {
        // 1 MB of HTML: 255 nested quotes around a `<pre>` of half a million one-letter lines.
        // Each line got a 511-byte quote prefix: 265 MB of text, 800 MB of worker memory.
        let html = format!(
            "{}<pre>{}",
            "<blockquote>".repeat(255),
            "x\n".repeat(520_000)
        );
        let text = to_text(&html);
        assert!(
            text.len() <= crate::limits::MAX_TEXT_BYTES,
            "{} bytes of text",
            text.len()
        );
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("> > > "), "still a quote: {first}");
        assert!(first.ends_with('x'), "{first}");
    }

    #[test]
    fn paragraphs_are_separated_by_a_blank_line_and_breaks_end_lines() {
        let html = "<p>Noon works.</p><p>See you<br>there</p>";
        assert_eq!(to_text(html), "Noon works.\n\nSee you\nthere\n");
    }

    #[test]
    fn gmail_divs_become_lines_and_an_empty_div_a_blank_line() {
        let html = "<div dir=\"ltr\">Yes!<div><br></div><div>Bob</div></div>";
        assert_eq!(to_text(html), "Yes!\n\nBob\n");
    }

    #[test]
    fn a_trailing_break_in_a_block_adds_no_blank_line() {
        assert_eq!(to_text("<div>one<br></div><div>two</div>"), "one\ntwo\n");
    }

    #[test]
    fn blockquotes_become_quoted_lines_nested_by_depth() {
        let html = "<div>Sure</div><blockquote><div>Lunch?</div>\
                    <blockquote>earlier<br><br>more</blockquote></blockquote>";
        assert_eq!(
            to_text(html),
            "Sure\n\n> Lunch?\n>\n> > earlier\n> >\n> > more\n"
        );
    }

    #[test]
    fn style_script_head_and_comments_are_not_text() {
        let html = "<html><head><title>Re: Lunch</title><style>p { color: red; }</style>\
                    <meta charset=utf-8></head><body><!-- a comment <p>not this</p> -->\
                    <script>if (a < b) { alert('x') }</script><p>Shown</p></body></html>";
        assert_eq!(to_text(html), "Shown\n");
    }

    #[test]
    fn entities_are_decoded_and_whitespace_collapsed() {
        let html = "<p>Caf&eacute;   &amp;\n  th&#233; &#x1F600; &lt;3 &nbsp;&copy; AT&T</p>";
        assert_eq!(to_text(html), "Café & thé 😀 <3  © AT&T\n");
    }

    #[test]
    fn hidden_elements_are_dropped() {
        let html = "<div style=\"display: none\">preheader <b>text</b></div><div>Visible</div>";
        assert_eq!(to_text(html), "Visible\n");
    }

    #[test]
    fn lists_get_markers_and_preformatted_text_keeps_its_lines() {
        let html = "<ul><li>bread</li><li>cheese</li></ul><ol><li>one<li>two</ol>\
                    <pre>a  b\nc</pre>";
        assert_eq!(
            to_text(html),
            "- bread\n- cheese\n1. one\n2. two\na  b\nc\n"
        );
    }

    #[test]
    fn a_gmail_signature_gets_a_signature_separator() {
        let html = "<div>Yes</div><br>-- <br><div class=\"gmail_signature\">Bob</div>";
        assert_eq!(to_text(html), "Yes\n\n-- \nBob\n");
        let outlook = "<div>Yes</div><div id=\"Signature\"><div>Bob</div></div>";
        assert_eq!(to_text(outlook), "Yes\n-- \nBob\n");
    }

    #[test]
    fn thousands_of_unclosed_tags_still_convert() {
        let html = format!(
            "{}deep{}",
            "<div><blockquote>".repeat(20_000),
            "<br>x".repeat(20_000)
        );
        let text = to_text(&html);
        assert!(text.contains("deep"));
    }

    #[test]
    fn a_lone_less_than_sign_is_text() {
        assert_eq!(to_text("1 < 2 and 3 > 2"), "1 < 2 and 3 > 2\n");
    }
}
