//! Text a client controls (file names, object keys, EXIF strings), made safe to put where a line
//! break or an invisible character would change what a reader sees: a mail body, a log line, a
//! header. Such text is data: it may not add lines, headers or reorder what surrounds it.

use std::borrow::Cow;

/// Whether `c` would break a line, end a header or change how the text around it reads: every C0
/// control (CR, LF and tab among them) and DEL, every C1 control (NEL among them), the Unicode line
/// and paragraph separators, and the bidirectional controls (marks, embeddings, overrides,
/// isolates), which can make a name read as something else.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` on one line, every [`is_unsafe`] character escaped as Rust writes it (`\r`, `\n`,
/// `\t`, `\u{2028}`), everything else as it is; borrowed when there was nothing to escape.
/// Escaped rather than dropped, so two names that differ only there still read differently.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_and_invisible_controls_are_escaped_and_the_rest_kept() {
        assert!(matches!(
            one_line("ingest/red flower.jpg"),
            Cow::Borrowed(_)
        ));
        assert_eq!(one_line("ingest/été/ü.JPG"), "ingest/été/ü.JPG");
        assert_eq!(
            one_line("a\r\nX-Evil: 1\r\n\r\nbody\tz.jpg"),
            "a\\r\\nX-Evil: 1\\r\\n\\r\\nbody\\tz.jpg"
        );
        assert_eq!(
            one_line("a\u{0}\u{1b}[31m\u{7f}\u{85}b"),
            "a\\u{0}\\u{1b}[31m\\u{7f}\\u{85}b"
        );
        assert_eq!(
            one_line("x\u{2028}y\u{2029}z\u{202E}gpj.exe"),
            "x\\u{2028}y\\u{2029}z\\u{202e}gpj.exe"
        );
        for c in [
            '\n', '\r', '\t', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2066}',
        ] {
            let escaped = one_line(&format!("a{c}b")).into_owned();
            assert!(!escaped.contains(c), "{c:?}: {escaped:?}");
            assert!(!escaped.chars().any(is_unsafe), "{escaped:?}");
        }
    }
}
