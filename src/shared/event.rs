//! The domain: an [`Event`] and the two request bodies that create and change one.
//!
//! [`NewEvent`] and [`EventUpdate`] can only be obtained through their `parse` functions (see
//! the API's input parser, `logger::api::input`), so a value of either type always satisfies the contract's rules.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Status of a freshly created event.
pub const STATUS_NOT_PROCESSED: &str = "NotProcessed";
/// Status set by the notification processor once the notification was sent.
pub const STATUS_PROCESSED: &str = "Processed";

/// Length bounds, in characters (Unicode scalar values, as pydantic counts them).
pub const USER_ID_MAX: usize = 255;
pub const DESCRIPTION_MAX: usize = 4096;
pub const STATUS_MAX: usize = 64;

/// A logged event, exactly as the API returns it and as the notification message carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(example = example_event())]
pub struct Event {
    /// Server-generated identifier (a UUID, lowercase and hyphenated).
    pub event_id: Uuid,
    /// Who is notified about the event.
    #[schemars(length(min = 1, max = USER_ID_MAX))]
    pub user_id: String,
    /// What the notification says.
    #[schemars(length(min = 1, max = DESCRIPTION_MAX))]
    pub description: String,
    /// `NotProcessed` on creation; `Processed` once the notification was sent; any non-empty
    /// string set through `PUT`.
    #[schemars(length(min = 1, max = STATUS_MAX))]
    pub status: String,
    /// Creation time, RFC 3339 in UTC with microseconds.
    pub created_at: Timestamp,
    /// Time of the last successful update, RFC 3339 in UTC with microseconds.
    pub updated_at: Timestamp,
}

fn example_event() -> Event {
    Event {
        event_id: Uuid::from_u128(0x0193a3c4_5b7e_7c1d_9e2f_3a4b5c6d7e8f),
        user_id: "u-42".into(),
        description: "Your order has shipped".into(),
        status: STATUS_NOT_PROCESSED.into(),
        created_at: Timestamp(time::macros::datetime!(2026-11-28 14:00:00.123456 UTC)),
        updated_at: Timestamp(time::macros::datetime!(2026-11-28 14:00:00.123456 UTC)),
    }
}

impl Event {
    /// A new event for `new`, with a fresh time-ordered UUID (v7) and the current time.
    pub fn create(new: NewEvent) -> Event {
        let now = Timestamp::now();
        Event {
            event_id: Uuid::now_v7(),
            user_id: new.user_id,
            description: new.description,
            status: STATUS_NOT_PROCESSED.to_owned(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Applies `update`; returns whether anything was given (and so whether `updated_at` moved).
    pub fn apply(&mut self, update: EventUpdate) -> bool {
        if update.is_empty() {
            return false;
        }
        let EventUpdate {
            status,
            description,
            user_id,
        } = update;
        if let Some(status) = status {
            self.status = status;
        }
        if let Some(description) = description {
            self.description = description;
        }
        if let Some(user_id) = user_id {
            self.user_id = user_id;
        }
        // Strictly later than before, even within one microsecond, so clients can rely on
        // `updated_at` to order the versions they saw.
        self.updated_at = Timestamp::now().max(self.updated_at.next_tick());
        true
    }
}

/// The body of `POST /events`. Only the API's input parser
/// (`logger::api::input`) makes one, so it is always valid.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
// The rustdoc above is about the Rust type; API users get what they may send.
#[schemars(description = "The body of `POST /events`. Unknown fields are ignored.")]
#[schemars(example = serde_json::json!({"user_id": "u-42", "description": "Your order has shipped"}))]
pub struct NewEvent {
    /// Who is notified: 1 to 255 characters.
    #[schemars(length(min = 1, max = USER_ID_MAX))]
    pub(crate) user_id: String,
    /// What the notification says: 1 to 4096 characters.
    #[schemars(length(min = 1, max = DESCRIPTION_MAX))]
    pub(crate) description: String,
}

impl NewEvent {
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// The body of `PUT`/`PATCH /events/{event_id}`: every field optional, absent ones unchanged.
///
/// `{}` changes nothing; unknown fields are ignored; a field given as `null` is a `422`
/// (`string_type`), not "unchanged".
#[derive(Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[schemars(example = serde_json::json!({"status": "Processed"}))]
pub struct EventUpdate {
    // `type` is overridden because schemars would make an `Option` nullable, while
    // `EventUpdate::parse` refuses a present `null`: a field may be absent, never `null`.
    /// New status: 1 to 64 characters.
    #[schemars(length(min = 1, max = STATUS_MAX), extend("type" = "string"))]
    pub(crate) status: Option<String>,
    /// New description: 1 to 4096 characters.
    #[schemars(length(min = 1, max = DESCRIPTION_MAX), extend("type" = "string"))]
    pub(crate) description: Option<String>,
    /// New user id: 1 to 255 characters.
    #[schemars(length(min = 1, max = USER_ID_MAX), extend("type" = "string"))]
    pub(crate) user_id: Option<String>,
}

impl EventUpdate {
    /// The update the notification processor sends: `{"status": "Processed"}`.
    pub fn processed() -> EventUpdate {
        EventUpdate {
            status: Some(STATUS_PROCESSED.to_owned()),
            ..EventUpdate::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.description.is_none() && self.user_id.is_none()
    }
}

/// A UTC instant with microsecond precision, written as RFC 3339 (`2026-11-28T14:00:00.123456Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub OffsetDateTime);

const RFC3339_MICROS: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

impl Timestamp {
    /// Now, truncated to the microsecond so that what is stored is exactly what is printed.
    pub fn now() -> Timestamp {
        let now = OffsetDateTime::now_utc();
        let micros = now.nanosecond() / 1_000 * 1_000;
        Timestamp(now.replace_nanosecond(micros).unwrap_or(now))
    }

    fn next_tick(self) -> Timestamp {
        Timestamp(self.0 + time::Duration::microseconds(1))
    }

    /// Microseconds since the Unix epoch (used by benchmarks to compute latencies).
    pub fn unix_micros(self) -> i128 {
        self.0.unix_timestamp_nanos() / 1_000
    }
}

/// `2026-11-28T14:00:00.123456Z`: the fixed shape of every timestamp the service writes.
const TEXT_TEMPLATE: [u8; 27] = *b"0000-00-00T00:00:00.000000Z";

/// Writes `value` as decimal digits filling `out` exactly, with leading zeros.
fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl Timestamp {
    /// The RFC 3339 text, written into a fixed buffer. `time`'s general formatter (an
    /// allocation and a walk over the format description per call) was about 45% of the time
    /// of a `GET /events` of 100,000 events, which writes two timestamps per event. `None` for
    /// years outside 0000-9999, which RFC 3339 cannot write with four digits.
    fn text(&self) -> Option<[u8; 27]> {
        let t = self.0;
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let mut text = TEXT_TEMPLATE;
        put_digits(&mut text[0..4], year);
        put_digits(&mut text[5..7], u8::from(t.month()).into());
        put_digits(&mut text[8..10], t.day().into());
        put_digits(&mut text[11..13], t.hour().into());
        put_digits(&mut text[14..16], t.minute().into());
        put_digits(&mut text[17..19], t.second().into());
        put_digits(&mut text[20..26], t.microsecond());
        Some(text)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.text() {
            // Only ASCII digits and separators were written.
            Some(text) => f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?),
            None => {
                let text = self.0.format(RFC3339_MICROS).map_err(|_| std::fmt::Error)?;
                f.write_str(&text)
            }
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.text() {
            Some(text) => match std::str::from_utf8(&text) {
                Ok(text) => serializer.serialize_str(text),
                Err(e) => Err(serde::ser::Error::custom(e)),
            },
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map(|t| Timestamp(t.to_offset(time::UtcOffset::UTC)))
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "examples": ["2026-11-28T14:00:00.123456Z"]
        })
    }
}

/// A stored-looking event with these fields, for the unit tests of every wing: the one
/// sample-event builder (the texts are taken as given, unchecked).
#[cfg(test)]
pub(crate) fn sample(user_id: &str, description: &str) -> Event {
    Event::create(NewEvent {
        user_id: user_id.into(),
        description: description.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_event() -> NewEvent {
        NewEvent {
            user_id: "u1".into(),
            description: "hi".into(),
        }
    }

    #[test]
    fn create_sets_status_and_equal_timestamps() {
        let event = Event::create(new_event());
        assert_eq!(event.status, STATUS_NOT_PROCESSED);
        assert_eq!(event.created_at, event.updated_at);
        assert_eq!(event.event_id.get_version_num(), 7);
    }

    #[test]
    fn timestamp_is_rfc3339_with_microseconds_and_round_trips() {
        let event = Event::create(new_event());
        let text = event.created_at.to_string();
        assert_eq!(text.len(), "2026-11-28T14:00:00.123456Z".len(), "{text}");
        assert!(text.ends_with('Z'));
        let json = serde_json::to_string(&event).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    fn time_crate_text(t: OffsetDateTime) -> String {
        t.format(RFC3339_MICROS).unwrap()
    }

    #[test]
    fn hand_written_timestamp_text_matches_the_time_crate_at_the_edges() {
        for t in [
            time::macros::datetime!(2026-11-28 14:00:00.123456 UTC),
            time::macros::datetime!(2000-02-29 23:59:59.999999 UTC),
            time::macros::datetime!(1970-01-01 00:00:00 UTC),
            time::macros::datetime!(0001-01-01 00:00:00.000001 UTC),
            time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC),
            Timestamp::now().0,
        ] {
            let expected = time_crate_text(t);
            assert_eq!(Timestamp(t).to_string(), expected);
            assert_eq!(
                serde_json::to_string(&Timestamp(t)).unwrap(),
                format!("\"{expected}\"")
            );
        }
        // A year RFC 3339 cannot write in four digits still prints (through `time`).
        let early = time::macros::datetime!(-0001-01-01 00:00:00 UTC);
        assert_eq!(Timestamp(early).to_string(), time_crate_text(early));
    }

    proptest::proptest! {
        #[test]
        fn hand_written_timestamp_text_matches_the_time_crate(
            seconds in 0i64..253_402_300_800,
            nanos in 0u32..1_000_000_000,
        ) {
            let t = OffsetDateTime::from_unix_timestamp(seconds)
                .unwrap()
                .replace_nanosecond(nanos)
                .unwrap();
            let expected = time_crate_text(t);
            proptest::prop_assert_eq!(Timestamp(t).to_string(), expected.clone());
            proptest::prop_assert_eq!(
                serde_json::to_string(&Timestamp(t)).unwrap(),
                format!("\"{expected}\"")
            );
        }
    }

    #[test]
    fn empty_update_changes_nothing_and_any_update_moves_updated_at() {
        let mut event = Event::create(new_event());
        let before = event.clone();
        assert!(!event.apply(EventUpdate::default()));
        assert_eq!(event, before);
        assert!(event.apply(EventUpdate::processed()));
        assert_eq!(event.status, STATUS_PROCESSED);
        assert!(event.updated_at > before.updated_at);
        let second = event.updated_at;
        event.apply(EventUpdate::processed());
        assert!(
            event.updated_at > second,
            "updated_at must move on every update"
        );
    }

    #[test]
    fn update_sets_only_given_fields() {
        let mut event = Event::create(new_event());
        event.apply(EventUpdate {
            description: Some("new".into()),
            ..EventUpdate::default()
        });
        assert_eq!(event.description, "new");
        assert_eq!(event.user_id, "u1");
        assert_eq!(event.status, STATUS_NOT_PROCESSED);
    }
}
