//! The one line a notification is "sent" as, shared by the embedded notifier and the
//! Notification Processor.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::shared::event::Event;

/// `Event {event_id} has been sent to {user_id}: {description}`, with control characters in
/// the fields escaped (`\n`, `\r`, `\t`, `\u{1b}`), so one notification is always one line,
/// and so are the line and paragraph separators (U+2028, U+2029) and the bidirectional
/// embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069), which could
/// break the line or reorder how it reads in a terminal or log viewer.
pub fn line(event: &Event) -> String {
    let mut out = String::with_capacity(64 + event.user_id.len() + event.description.len());
    let _ = write!(out, "Event {} has been sent to ", event.event_id);
    push_escaped(&mut out, &event.user_id);
    out.push_str(": ");
    push_escaped(&mut out, &event.description);
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_control() || needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
}

/// Format characters that are not `char::is_control` but still change how a line displays.
fn needs_escape(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes the line for `event` and flushes, so it is visible at once even through a pipe.
pub fn send(out: &mut dyn Write, event: &Event) -> io::Result<()> {
    send_all(out, std::slice::from_ref(event))
}

/// Writes the lines for `events` in one write and flushes: a burst costs one system call, not
/// one per event.
pub fn send_all(out: &mut dyn Write, events: &[Event]) -> io::Result<()> {
    let mut text = String::with_capacity(events.len() * 128);
    for event in events {
        text.push_str(&line(event));
        text.push('\n');
    }
    out.write_all(text.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::event::sample as event;

    #[test]
    fn plain_line_is_exact() {
        let e = event("u1", "hi there: ü");
        assert_eq!(
            line(&e),
            format!("Event {} has been sent to u1: hi there: ü", e.event_id)
        );
    }

    #[test]
    fn control_characters_are_escaped_so_the_line_stays_one_line() {
        let e = event("u\n2", "a\nb\r\tc\u{1b}[31m\\n");
        let text = line(&e);
        assert!(!text.contains('\n') && !text.contains('\r') && !text.contains('\u{1b}'));
        assert!(text.ends_with(r"u\n2: a\nb\r\tc\u{1b}[31m\n"), "{text}");
    }

    #[test]
    fn separators_and_bidi_controls_are_escaped() {
        let e = event(
            "u\u{2028}",
            "a\u{2029}b\u{202e}c\u{202a}\u{2066}d\u{2069}\u{2067}",
        );
        let text = line(&e);
        assert!(
            text.ends_with(r"u\u{2028}: a\u{2029}b\u{202e}c\u{202a}\u{2066}d\u{2069}\u{2067}"),
            "{text}"
        );
        // Neighbours are left alone.
        assert!(
            line(&event("u", "\u{2027}\u{202f}\u{2065}\u{206a}"))
                .ends_with("\u{2027}\u{202f}\u{2065}\u{206a}")
        );
    }
}
