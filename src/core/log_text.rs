//! Text from outside (identities, headers) made safe for a log line: control
//! characters (newlines, ANSI escapes, …) are written as escapes, so a value
//! can never start a forged line or recolour a terminal.

use std::borrow::Cow;

/// `text` with every control character escaped (`\n`, `\u{1b}`, …);
/// borrowed unchanged when there is none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Whether `text` holds a control character; identities holding one are refused.
pub fn has_controls(text: &str) -> bool {
    text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_untouched() {
        assert!(matches!(
            escape_controls("user-7@example"),
            Cow::Borrowed(_)
        ));
        let forged = "alice\n2026-01-01 INFO audit: token issued subject=admin\u{1b}[2K";
        let safe = escape_controls(forged);
        assert!(!safe.chars().any(char::is_control), "{safe}");
        assert!(safe.contains("\\n") && safe.contains("\\u{1b}"), "{safe}");
        assert!(has_controls(forged) && !has_controls("bob"));
        assert!(has_controls("tab\there") && has_controls("nel\u{85}"));
    }
}
