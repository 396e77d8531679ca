//! Pipelined requests on one connection run in the order sent (RFC 9112 §9.3.2): a property
//! test over random sequences of `POST /events` and `PUT /events/{id}` written back to back
//! on one raw connection before any answer is read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::app::{TestApp, spawn_app};
use crate::light;

#[derive(Debug, Clone)]
enum Op {
    Create,
    Update,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(prop_oneof![Just(Op::Create), Just(Op::Update)], 1..40)
}

/// The raw requests for `ops`, each numbered by its position, then a closing `GET /ping`.
fn pipeline(ops: &[Op], user: &str, target: &str) -> Vec<u8> {
    let mut raw = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let (method, path, body) = match op {
            Op::Create => (
                "POST",
                "/events".to_owned(),
                json!({"user_id": user, "description": format!("op {i}")}),
            ),
            Op::Update => (
                "PUT",
                format!("/events/{target}"),
                json!({"status": format!("S{i}")}),
            ),
        };
        let body = body.to_string();
        raw.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    raw.extend_from_slice(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    raw
}

fn check(app: &TestApp, ops: &[Op], case: usize) -> Result<(), TestCaseError> {
    let user = format!("pipeliner{case}");
    let target = app.create("target", "updated in order")["event_id"]
        .as_str()
        .expect("event_id")
        .to_owned();
    let mut stream = TcpStream::connect(app.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(&pipeline(ops, &user, &target)).unwrap();
    let mut answers = String::new();
    stream.read_to_string(&mut answers).expect("all answers");
    let statuses: Vec<&str> = answers
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|a| &a[..3])
        .collect();
    prop_assert_eq!(statuses.len(), ops.len() + 1, "{}", answers);
    prop_assert!(
        statuses.iter().all(|s| s.starts_with('2')),
        "{:?}",
        statuses
    );

    let created: Vec<String> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, Op::Create))
        .map(|(i, _)| format!("op {i}"))
        .collect();
    let listed = app.get(&format!("/events?user_id={user}")).json();
    let listed: Vec<String> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["description"].as_str().unwrap_or_default().to_owned())
        .collect();
    prop_assert_eq!(listed, created, "creation order follows send order");

    let last_update = ops
        .iter()
        .enumerate()
        .rfind(|(_, op)| matches!(op, Op::Update))
        .map(|(i, _)| format!("S{i}"));
    if let Some(expected) = last_update {
        let event: Value = app.get(&format!("/events/{target}")).json();
        prop_assert_eq!(event["status"].as_str(), Some(expected.as_str()));
    }
    Ok(())
}

#[test]
fn pipelined_puts_and_posts_run_in_send_order() {
    let _guard = light();
    let app = spawn_app();
    let case = std::sync::atomic::AtomicUsize::new(0);
    proptest!(ProptestConfig::with_cases(24), |(ops in ops())| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        check(&app, &ops, n)?;
    });
}
