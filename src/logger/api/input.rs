//! Parsing of untrusted input into domain values, with FastAPI/pydantic v2 style errors.
//!
//! Every function here either returns a valid value or *every* problem found, each as an
//! [`ErrorDetail`] shaped exactly as FastAPI's `422` entries (`type`, `loc`, `msg`, `input`,
//! sometimes `ctx`), so existing clients of the replaced service keep working.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::errors::{ErrorDetail, LocItem, ValidationErrors, detail, with_ctx};
use crate::logger::store::ListQuery;
use crate::shared::event::{DESCRIPTION_MAX, EventUpdate, NewEvent, STATUS_MAX, USER_ID_MAX};

/// Parses a request body as a JSON object, the first step of every body parser.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ValidationErrors> {
    // A leading UTF-8 byte order mark is skipped, as FastAPI's JSON decoding does.
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    if body.is_empty() {
        return Err(ValidationErrors::one(detail(
            "missing",
            vec!["body".into()],
            "Field required".into(),
            Value::Null,
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ValidationErrors::one(detail(
            "dict_type",
            vec!["body".into()],
            "Input should be a valid dictionary".into(),
            other,
        ))),
        Err(err) => {
            let offset = error_offset(body, &err);
            // serde_json appends " at line L column C"; the position is already in `loc`.
            let text = err.to_string();
            let reason = text.split(" at line ").next().unwrap_or(&text).to_owned();
            Err(ValidationErrors::one(with_ctx(
                detail(
                    "json_invalid",
                    vec!["body".into(), LocItem::Index(offset)],
                    "JSON decode error".into(),
                    json!({}),
                ),
                json!({ "error": reason }),
            )))
        }
    }
}

/// The byte offset of a JSON syntax error (serde_json reports line and column).
fn error_offset(body: &[u8], err: &serde_json::Error) -> usize {
    if err.is_eof() {
        return body.len();
    }
    let line_start: usize = body
        .split(|&b| b == b'\n')
        .take(err.line().saturating_sub(1))
        .map(|line| line.len() + 1)
        .sum();
    (line_start + err.column().saturating_sub(1)).min(body.len())
}

/// Rules for one string field of a body.
struct StringRule {
    name: &'static str,
    max: usize,
}

const USER_ID: StringRule = StringRule {
    name: "user_id",
    max: USER_ID_MAX,
};
const DESCRIPTION: StringRule = StringRule {
    name: "description",
    max: DESCRIPTION_MAX,
};
const STATUS: StringRule = StringRule {
    name: "status",
    max: STATUS_MAX,
};

impl StringRule {
    /// Checks the field if present; `Ok(None)` when absent.
    fn check(&self, map: &Map<String, Value>) -> Result<Option<String>, ErrorDetail> {
        let loc = || vec!["body".into(), self.name.into()];
        let value = match map.get(self.name) {
            None => return Ok(None),
            Some(value) => value,
        };
        let Value::String(text) = value else {
            return Err(detail(
                "string_type",
                loc(),
                "Input should be a valid string".into(),
                value.clone(),
            ));
        };
        let chars = text.chars().count();
        if chars < 1 {
            return Err(with_ctx(
                detail(
                    "string_too_short",
                    loc(),
                    "String should have at least 1 character".into(),
                    value.clone(),
                ),
                json!({"min_length": 1}),
            ));
        }
        if chars > self.max {
            return Err(with_ctx(
                detail(
                    "string_too_long",
                    loc(),
                    format!("String should have at most {} characters", self.max),
                    value.clone(),
                ),
                json!({"max_length": self.max}),
            ));
        }
        Ok(Some(text.clone()))
    }

    fn required(&self, map: &Map<String, Value>, errors: &mut Vec<ErrorDetail>) -> Option<String> {
        match self.check(map) {
            Ok(Some(text)) => Some(text),
            Ok(None) => {
                errors.push(detail(
                    "missing",
                    vec!["body".into(), self.name.into()],
                    "Field required".into(),
                    Value::Object(map.clone()),
                ));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        }
    }

    fn optional(&self, map: &Map<String, Value>, errors: &mut Vec<ErrorDetail>) -> Option<String> {
        self.check(map).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    }
}

impl NewEvent {
    /// Parses a `POST /events` body. Unknown fields are ignored.
    pub fn parse(body: &[u8]) -> Result<NewEvent, ValidationErrors> {
        let map = parse_object(body)?;
        let mut errors = Vec::new();
        let user_id = USER_ID.required(&map, &mut errors);
        let description = DESCRIPTION.required(&map, &mut errors);
        match (user_id, description) {
            (Some(user_id), Some(description)) if errors.is_empty() => Ok(NewEvent {
                user_id,
                description,
            }),
            _ => Err(ValidationErrors { detail: errors }),
        }
    }
}

impl EventUpdate {
    /// Parses a `PUT`/`PATCH /events/{id}` body. Absent fields stay `None`; a present `null`
    /// is a `string_type` error rather than silently "no change".
    pub fn parse(body: &[u8]) -> Result<EventUpdate, ValidationErrors> {
        let map = parse_object(body)?;
        let mut errors = Vec::new();
        let update = EventUpdate {
            status: STATUS.optional(&map, &mut errors),
            description: DESCRIPTION.optional(&map, &mut errors),
            user_id: USER_ID.optional(&map, &mut errors),
        };
        if errors.is_empty() {
            Ok(update)
        } else {
            Err(ValidationErrors { detail: errors })
        }
    }
}

/// Parses the `{event_id}` path segment. Accepts what pydantic accepts (any case, braces,
/// `urn:uuid:` prefix, no hyphens) and reports the `uuid` crate's reason, as pydantic does.
pub(crate) fn parse_event_id(text: &str) -> Result<Uuid, ValidationErrors> {
    Uuid::parse_str(text).map_err(|err| {
        ValidationErrors::one(with_ctx(
            detail(
                "uuid_parsing",
                vec!["path".into(), "event_id".into()],
                format!("Input should be a valid UUID, {err}"),
                Value::String(text.to_owned()),
            ),
            json!({ "error": err.to_string() }),
        ))
    })
}

/// Parses the raw query string of `GET /events` (without `?`) into the store's query. Unknown
/// parameters are ignored; when a parameter is repeated the last one wins, as in FastAPI.
pub(crate) fn list_query(query: &str) -> Result<ListQuery, ValidationErrors> {
    let mut parsed = ListQuery::default();
    let mut offset_text = None;
    let mut limit_text = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "user_id" => parsed.user_id = Some(value.into_owned()),
            "status" => parsed.status = Some(value.into_owned()),
            "offset" => offset_text = Some(value.into_owned()),
            "limit" => limit_text = Some(value.into_owned()),
            _ => {}
        }
    }
    let mut errors = Vec::new();
    if let Some(text) = offset_text {
        match parse_non_negative("offset", &text) {
            Ok(n) => parsed.offset = n,
            Err(e) => errors.push(e),
        }
    }
    if let Some(text) = limit_text {
        match parse_non_negative("limit", &text) {
            Ok(n) => parsed.limit = Some(n),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(ValidationErrors { detail: errors })
    }
}

/// A non-negative integer query parameter. Values too large for `usize` saturate: they mean
/// "everything" for both `offset` and `limit`.
fn parse_non_negative(name: &str, text: &str) -> Result<usize, ErrorDetail> {
    let loc = vec!["query".into(), name.into()];
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(detail(
            "int_parsing",
            loc,
            "Input should be a valid integer, unable to parse string as an integer".into(),
            Value::String(text.to_owned()),
        ));
    }
    if negative && digits.bytes().any(|b| b != b'0') {
        return Err(with_ctx(
            detail(
                "greater_than_equal",
                loc,
                "Input should be greater than or equal to 0".into(),
                Value::String(text.to_owned()),
            ),
            json!({"ge": 0}),
        ));
    }
    Ok(digits.parse::<usize>().unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(err: &ValidationErrors) -> Vec<(&str, Vec<LocItem>)> {
        err.detail
            .iter()
            .map(|d| (d.kind.as_str(), d.loc.clone()))
            .collect()
    }

    fn body_loc(field: &str) -> Vec<LocItem> {
        vec!["body".into(), field.into()]
    }

    #[test]
    fn valid_new_event_parses_and_ignores_unknown_fields() {
        let e = NewEvent::parse(br#"{"user_id":"u","description":"d","event_id":"x"}"#).unwrap();
        assert_eq!((e.user_id(), e.description()), ("u", "d"));
    }

    #[test]
    fn a_utf8_bom_before_the_json_is_accepted() {
        let body = b"\xef\xbb\xbf{\"user_id\": \"u\", \"description\": \"d\"}";
        assert!(NewEvent::parse(body).is_ok());
        assert!(EventUpdate::parse(b"\xef\xbb\xbf{\"status\": \"s\"}").is_ok());
    }

    #[test]
    fn empty_body_is_missing_body() {
        let err = NewEvent::parse(b"").unwrap_err();
        assert_eq!(kinds(&err), vec![("missing", vec!["body".into()])]);
        assert_eq!(err.detail[0].input, Value::Null);
    }

    #[test]
    fn both_fields_missing_are_both_reported_with_the_whole_body_as_input() {
        let err = NewEvent::parse(br#"{"x":1}"#).unwrap_err();
        assert_eq!(
            kinds(&err),
            vec![
                ("missing", body_loc("user_id")),
                ("missing", body_loc("description"))
            ]
        );
        assert_eq!(err.detail[0].input, json!({"x": 1}));
        assert_eq!(err.detail[0].msg, "Field required");
    }

    #[test]
    fn wrong_types_are_string_type() {
        let err = NewEvent::parse(br#"{"user_id":5,"description":null}"#).unwrap_err();
        assert_eq!(
            kinds(&err),
            vec![
                ("string_type", body_loc("user_id")),
                ("string_type", body_loc("description"))
            ]
        );
        assert_eq!(err.detail[0].input, json!(5));
        assert_eq!(err.detail[0].msg, "Input should be a valid string");
    }

    #[test]
    fn length_limits_count_characters_not_bytes() {
        let at_limit = "é".repeat(255);
        let body = json!({"user_id": at_limit, "description": "d"}).to_string();
        assert!(NewEvent::parse(body.as_bytes()).is_ok());

        let body = json!({"user_id": "", "description": "x".repeat(4097)}).to_string();
        let err = NewEvent::parse(body.as_bytes()).unwrap_err();
        assert_eq!(
            kinds(&err),
            vec![
                ("string_too_short", body_loc("user_id")),
                ("string_too_long", body_loc("description"))
            ]
        );
        assert_eq!(err.detail[0].msg, "String should have at least 1 character");
        assert_eq!(
            err.detail[1].msg,
            "String should have at most 4096 characters"
        );
        assert_eq!(
            err.detail[1].ctx.as_deref(),
            Some(&json!({"max_length": 4096}))
        );
    }

    #[test]
    fn invalid_json_reports_byte_offset_and_parser_message() {
        let err = NewEvent::parse(b"{\"user_id\": x}").unwrap_err();
        assert_eq!(
            kinds(&err),
            vec![("json_invalid", vec!["body".into(), LocItem::Index(12)])]
        );
        assert_eq!(err.detail[0].input, json!({}));
        assert_eq!(err.detail[0].msg, "JSON decode error");
        let reason = err.detail[0].ctx.as_ref().unwrap()["error"]
            .as_str()
            .unwrap();
        assert!(reason.starts_with("expected value"), "{reason}");

        let err = NewEvent::parse(b"{\n\"a\": 1,\n}").unwrap_err();
        assert_eq!(err.detail[0].loc[1], LocItem::Index(10));
        let err = NewEvent::parse(b"{\"a\":").unwrap_err();
        assert_eq!(err.detail[0].loc[1], LocItem::Index(5));
    }

    #[test]
    fn non_object_json_is_dict_type_with_the_value_as_input() {
        for body in [&b"[1]"[..], b"\"s\"", b"3", b"null"] {
            let err = NewEvent::parse(body).unwrap_err();
            assert_eq!(kinds(&err), vec![("dict_type", vec!["body".into()])]);
            assert_eq!(
                err.detail[0].input,
                serde_json::from_slice::<Value>(body).unwrap()
            );
        }
    }

    #[test]
    fn update_fields_are_optional_and_checked_when_present() {
        assert_eq!(EventUpdate::parse(b"{}").unwrap(), EventUpdate::default());
        assert!(EventUpdate::parse(b"{}").unwrap().is_empty());
        let u = EventUpdate::parse(br#"{"status":"Done","other":1}"#).unwrap();
        assert_eq!(u.status.as_deref(), Some("Done"));
        let body = json!({"status": "s".repeat(65), "user_id": "", "description": null});
        let err = EventUpdate::parse(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            kinds(&err),
            vec![
                ("string_too_long", body_loc("status")),
                ("string_type", body_loc("description")),
                ("string_too_short", body_loc("user_id")),
            ]
        );
        assert_eq!(
            err.detail[0].msg,
            "String should have at most 64 characters"
        );
        assert_eq!(
            kinds(&EventUpdate::parse(b"").unwrap_err()),
            vec![("missing", vec!["body".into()])]
        );
    }

    #[test]
    fn event_id_accepts_pydantic_forms_and_explains_rejections() {
        let id = "0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f";
        for form in [
            id.to_owned(),
            id.to_uppercase(),
            id.replace('-', ""),
            format!("{{{id}}}"),
        ] {
            assert_eq!(parse_event_id(&form).unwrap().to_string(), id);
        }
        let err = parse_event_id("nope").unwrap_err();
        let d = &err.detail[0];
        assert_eq!(d.kind, "uuid_parsing");
        assert_eq!(d.loc, vec![LocItem::from("path"), "event_id".into()]);
        assert!(
            d.msg.starts_with("Input should be a valid UUID, "),
            "{}",
            d.msg
        );
        let reason = d.ctx.as_ref().unwrap()["error"].as_str().unwrap();
        assert!(d.msg.ends_with(reason));
        assert_eq!(d.input, json!("nope"));
    }

    #[test]
    fn list_query_parses_filters_and_paging() {
        let q = list_query("user_id=u%201&status=Processed&offset=2&limit=3&x=y").unwrap();
        assert_eq!(
            q,
            ListQuery {
                user_id: Some("u 1".into()),
                status: Some("Processed".into()),
                offset: 2,
                limit: Some(3)
            }
        );
        assert_eq!(list_query("").unwrap(), ListQuery::default());
        assert_eq!(
            list_query("limit=99999999999999999999999").unwrap().limit,
            Some(usize::MAX)
        );
        assert_eq!(list_query("offset=-0").unwrap().offset, 0);
    }

    #[test]
    fn list_query_reports_every_bad_integer() {
        let err = list_query("offset=-1&limit=abc").unwrap_err();
        assert_eq!(
            kinds(&err),
            vec![
                ("greater_than_equal", vec!["query".into(), "offset".into()]),
                ("int_parsing", vec!["query".into(), "limit".into()]),
            ]
        );
        assert_eq!(err.detail[0].input, json!("-1"));
        assert_eq!(err.detail[0].ctx.as_deref(), Some(&json!({"ge": 0})));
        assert_eq!(
            err.detail[1].msg,
            "Input should be a valid integer, unable to parse string as an integer"
        );
        for bad in ["", "1.5", "1e3", "0x10", "--1"] {
            let err = list_query(&format!("limit={bad}")).unwrap_err();
            assert_eq!(err.detail[0].kind, "int_parsing", "limit={bad}");
        }
    }
}
