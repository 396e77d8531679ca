//! The sample event every test builds on.

use serde_json::{Value, json};

/// The body that creates an event (`POST /events`), the same shape for every test.
pub fn new_event(user_id: &str, description: &str) -> Value {
    json!({"user_id": user_id, "description": description})
}
