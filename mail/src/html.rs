//! HTML-only email as plain text.

/// The text of an HTML body (replaced by a real converter in the quotes work).
pub fn to_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&eacute;", "é").replace("&amp;", "&")
}
