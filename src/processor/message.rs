//! What the processor takes from a message: the `event_id`, and nothing else.
//!
//! Whatever else a message holds (a whole Event as the logger publishes it, the FastAPI
//! original's four fields, a forged `user_id` or a 5 MB `description`) is ignored, and so is its
//! content type: the text that is notified is the one the logger stores, read through the API.
//! Anything that can publish to the queue can therefore only make the processor look at an
//! event, never make it say something.

use serde::Deserialize;
use uuid::Uuid;

/// A notification message: which event to notify about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) event_id: Uuid,
}

/// The one field read; serde skips every other one without keeping it.
#[derive(Deserialize)]
struct Wire {
    event_id: Uuid,
}

/// Why a message body names no event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageError(String);

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not a notification message ({}): expected a JSON object with a string \"event_id\" \
             holding a UUID",
            self.0
        )
    }
}

impl std::error::Error for MessageError {}

impl Message {
    /// Reads the `event_id` of a JSON object (a UTF-8 byte order mark before it is allowed, as
    /// the API allows one).
    pub(crate) fn parse(body: &[u8]) -> Result<Message, MessageError> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        // serde would also read a struct from a JSON array (`["<uuid>"]`); a message is an object.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(MessageError("not a JSON object".into()));
        }
        serde_json::from_slice::<Wire>(body)
            .map(|wire| Message {
                event_id: wire.event_id,
            })
            .map_err(|e| MessageError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f";

    fn id() -> Uuid {
        Uuid::parse_str(ID).unwrap()
    }

    #[test]
    fn any_object_with_a_string_event_id_is_a_message() {
        let original = format!(
            r#"{{"event_id": "{ID}", "status": "NotProcessed", "user_id": "u", "description": "d"}}"#
        );
        let ours = format!(
            r#"{{"event_id":"{ID}","user_id":"u","description":"d","status":"NotProcessed",
                "created_at":"2026-11-28T14:00:00.123456Z","updated_at":"2026-11-28T14:00:00.123456Z"}}"#
        );
        let odd = format!(
            r#"  {{"user_id": 42, "extra": {{"nested": [1, null]}}, "event_id": "{ID}"}} "#
        );
        let with_bom = format!("\u{feff}{{\"event_id\": \"{ID}\"}}");
        for body in [original, ours, odd, with_bom] {
            assert_eq!(
                Message::parse(body.as_bytes()),
                Ok(Message { event_id: id() }),
                "{body}"
            );
        }
        let huge = format!(
            r#"{{"event_id": "{ID}", "description": "{}"}}"#,
            "x".repeat(5 << 20)
        );
        assert_eq!(Message::parse(huge.as_bytes()).unwrap().event_id, id());
    }

    #[test]
    fn anything_else_is_not_a_message() {
        let duplicate = format!(r#"{{"event_id": "{ID}", "event_id": "{ID}"}}"#);
        let array = format!(r#"["{ID}"]"#);
        for body in [
            &b""[..],
            b"not json",
            b"{}",
            b"null",
            br#"{"event_id": null}"#,
            br#"{"event_id": 42}"#,
            br#"{"event_id": "not-a-uuid"}"#,
            br#"{"id": "0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f"}"#,
            duplicate.as_bytes(),
            array.as_bytes(),
            b"{\"event_id\": \"0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f\"",
        ] {
            let err = Message::parse(body).expect_err(&String::from_utf8_lossy(body));
            assert!(err.to_string().contains("event_id"), "{err}");
        }
    }
}
