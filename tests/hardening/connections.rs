//! Connection-level abuse of the real server (port 0, in-process): idle, half-sent and slow
//! clients, oversized bodies and headers, thousands of keep-alive connections, handler panics
//! and random bytes. The HTTP here is hand-written on raw sockets, because the point is to
//! send what well-behaved clients never send.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_notification::logger::http::{HttpServer, Request, Response, ServerConfig};
use event_notification::logger::limits::raise_fd_limit;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::app::{TestApp, spawn_app_with};
use crate::common::event::new_event;
use crate::common::http::{client, send};
use crate::common::wait::wait_until;
use crate::{heavy, light, threads};

/// A server whose connections time out after `secs` seconds.
fn app_with_timeout(secs: u64) -> TestApp {
    spawn_app_with(|s| s.idle_timeout = Duration::from_secs(secs))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// One response read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Reads one response (status line, headers, `Content-Length` body). `Ok(None)`: the server
/// closed the connection before sending anything.
fn read_response(reader: &mut impl BufRead) -> io::Result<Option<RawResponse>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("status {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(RawResponse {
        status,
        headers,
        body,
    }))
}

/// Whether the server closed `stream` (EOF or reset), possibly after a last answer such as
/// `408`; `false` if it is still open after the read timeout.
fn closed_by_server(stream: &TcpStream) -> bool {
    let mut reader = BufReader::new(stream);
    loop {
        match read_response(&mut reader) {
            Ok(None) => return true,
            Ok(Some(_)) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                );
            }
        }
    }
}

fn ping_request() -> &'static [u8] {
    b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n"
}

/// The thread count once tiny_http pool threads of earlier tests have ended (an idle one
/// lingers for 5 s).
fn settled_threads() -> usize {
    let mut last = threads();
    for _ in 0..12 {
        std::thread::sleep(Duration::from_secs(1));
        let now = threads();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Writes `head` then `body_len` bytes of `x` in a thread; returns how many body bytes got out
/// before the connection failed (the server closed it) or all were written.
fn send_in_background(stream: &TcpStream, head: Vec<u8>, body_len: usize) -> JoinHandle<usize> {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        if writer.write_all(&head).is_err() {
            return 0;
        }
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < body_len {
            let n = chunk.len().min(body_len - sent);
            match writer.write(&chunk[..n]) {
                Ok(written) => sent += written,
                Err(_) => break,
            }
        }
        sent
    })
}

#[test]
fn idle_connections_are_closed_after_the_timeout_and_their_threads_end() {
    let _guard = heavy();
    let app = app_with_timeout(1);
    let baseline = settled_threads();
    let streams: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = connect(app.addr);
            stream.write_all(ping_request()).unwrap();
            let response = read_response(&mut BufReader::new(&stream)).unwrap();
            assert_eq!(response.expect("answer").status, 200);
            stream
        })
        .collect();
    // One tiny_http thread per open connection (its pool had 4 idle ones).
    assert!(
        threads() >= baseline + 196,
        "{} threads, baseline {baseline}",
        threads()
    );
    let started = Instant::now();
    for stream in &streams {
        assert!(
            closed_by_server(stream),
            "an idle connection was not closed"
        );
    }
    let closed_after = started.elapsed();
    // tiny_http keeps an idle pool thread for 5 s before it ends.
    assert!(
        wait_until(Duration::from_secs(15), || threads() <= baseline + 8),
        "{} threads remain, baseline {baseline}",
        threads()
    );
    println!(
        "200 idle connections closed {:.1} s after the last answer; threads back to {} (baseline {baseline})",
        closed_after.as_secs_f64(),
        threads()
    );
    assert_eq!(app.get("/ping").status, 200);
}

#[test]
fn half_sent_requests_do_not_block_other_clients_and_are_dropped() {
    let _guard = light();
    let app = app_with_timeout(2);
    let mut half_head = connect(app.addr);
    half_head
        .write_all(b"GET /ping HTTP/1.1\r\nHost: test\r\n")
        .unwrap();
    // Every body, small or large, is read on its connection's thread with the body deadline,
    // holding no handler permit: eight of them do not stop the four permits' clients.
    let half_bodies: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut stream = connect(app.addr);
            let length = if i % 2 == 0 { 100 } else { 5000 };
            let head = format!(
                "POST /events HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n\r\n{{\"user_id\""
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    // Time for the server to take them up: a fixed sleep, since nothing it exposes tells when
    // it has (no count of connections in progress).
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..20 {
        assert_eq!(app.get("/ping").status, 200);
        app.create("u", &format!("while half-sent requests wait {i}"));
    }
    let answer = read_response(&mut BufReader::new(&half_head)).expect("answer or close");
    assert!(
        answer.as_ref().is_none_or(|r| r.status == 408),
        "{answer:?}"
    );
    for stream in &half_bodies {
        let answer = read_response(&mut BufReader::new(stream)).expect("answer or close");
        let answer = answer.expect("the incomplete body is answered");
        assert_eq!(
            answer.status,
            400,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(closed_by_server(stream));
    }
    assert_eq!(app.get("/ping").status, 200);
}

#[test]
fn a_ten_megabyte_body_gets_413_without_being_read() {
    let _guard = light();
    let app = app_with_timeout(5);
    let stream = connect(app.addr);
    let total = 10 * 1024 * 1024;
    let head = format!("POST /events HTTP/1.1\r\nHost: test\r\nContent-Length: {total}\r\n\r\n");
    let writer = send_in_background(&stream, head.into_bytes(), total);
    let mut reader = BufReader::new(&stream);
    let response = read_response(&mut reader).unwrap().expect("an answer");
    assert_eq!(response.status, 413);
    assert_eq!(response.json(), json!({"detail": "Request body too large"}));
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    assert!(closed_by_server(&stream), "connection stays open");
    let sent = writer.join().unwrap();
    assert!(
        sent < total,
        "the client could send the whole body ({sent} bytes)"
    );
    println!("10 MB body: 413 after the client got {sent} bytes out");
    assert_eq!(app.get("/ping").status, 200);
}

#[test]
fn a_huge_declared_content_length_gets_413_and_the_connection_closes() {
    let _guard = light();
    let app = app_with_timeout(5);
    let mut stream = connect(app.addr);
    stream
        .write_all(
            b"POST /events HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000000000000\r\n\r\n{}",
        )
        .unwrap();
    let response = read_response(&mut BufReader::new(&stream))
        .unwrap()
        .expect("an answer");
    assert_eq!(response.status, 413);
    assert!(closed_by_server(&stream));
    assert_eq!(app.get("/ping").status, 200);
}

#[test]
fn a_chunked_body_over_the_limit_gets_413() {
    let _guard = light();
    let app = spawn_app_with(|s| s.max_body_bytes = 1024);
    let stream = connect(app.addr);
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || -> io::Result<()> {
        writer.write_all(
            b"POST /events HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n",
        )?;
        for _ in 0..64 {
            writer.write_all(b"100\r\n")?;
            writer.write_all(&[b'a'; 0x100])?;
            writer.write_all(b"\r\n")?;
        }
        writer.write_all(b"0\r\n\r\n")
    });
    let response = read_response(&mut BufReader::new(&stream))
        .unwrap()
        .expect("an answer");
    assert_eq!(response.status, 413);
    assert_eq!(response.json(), json!({"detail": "Request body too large"}));
    let _ = sender.join().unwrap();
    // Just under the limit, chunked, is read and validated.
    let ok = app.request(
        "POST",
        "/events",
        &[("Transfer-Encoding", "chunked")],
        Some(new_event("u", "chunked").to_string().as_bytes()),
    );
    assert_eq!(ok.status, 200);
}

#[test]
fn a_ten_megabyte_header_line_is_refused_and_others_are_still_served() {
    let _guard = light();
    let app = app_with_timeout(5);
    let stream = connect(app.addr);
    let total = 10 * 1024 * 1024;
    let writer = send_in_background(
        &stream,
        b"GET /ping HTTP/1.1\r\nHost: test\r\nX-Bomb: ".to_vec(),
        total,
    );
    let answer = read_response(&mut BufReader::new(&stream));
    match answer {
        Ok(Some(response)) => assert_eq!(response.status, 431),
        Ok(None) => {}
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    }
    let sent = writer.join().unwrap();
    assert!(sent < total, "the server read the whole 10 MB header");
    for _ in 0..5 {
        assert_eq!(app.get("/ping").status, 200);
    }
}

#[test]
fn two_thousand_keep_alive_connections_are_served_without_errors() {
    let _guard = heavy();
    let limit = raise_fd_limit().expect("rlimit");
    assert!(
        limit.soft >= 4_200,
        "this test needs 4,200 file descriptors (client and server side); the hard limit is {}",
        limit.hard
    );
    let app = app_with_timeout(30);
    let mut errors = Vec::new();
    let mut streams = Vec::with_capacity(2000);
    for i in 0..2000 {
        match TcpStream::connect(app.addr) {
            Ok(stream) => {
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                streams.push(BufReader::new(stream));
            }
            Err(e) => errors.push(format!("connect {i}: {e}")),
        }
    }
    for round in 0..2 {
        for (i, stream) in streams.iter_mut().enumerate() {
            if let Err(e) = stream.get_mut().write_all(ping_request()) {
                errors.push(format!("round {round} write {i}: {e}"));
            }
        }
        for (i, stream) in streams.iter_mut().enumerate() {
            match read_response(stream) {
                Ok(Some(r)) if r.status == 200 => {}
                other => errors.push(format!("round {round} answer {i}: {other:?}")),
            }
        }
        // All 2,000 are open and idle: a new client still gets in.
        let fresh = app.get("/ping");
        assert_eq!(fresh.status, 200);
        assert!(fresh.json()["now"].is_string());
    }
    println!(
        "{} connections held, 2 requests each, {} errors",
        streams.len(),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
}

#[test]
fn five_hundred_slow_clients_do_not_stop_others_and_are_dropped() {
    let _guard = heavy();
    let app = app_with_timeout(2);
    let head = b"GET /ping HTTP/1.1\r\nHost: test\r\nX-Slow: ";
    let mut slow: Vec<Option<TcpStream>> = (0..500)
        .map(|_| {
            let stream = connect(app.addr);
            stream.set_nonblocking(true).unwrap();
            Some(stream)
        })
        .collect();
    let started = Instant::now();
    let mut dropped_after = Vec::new();
    let mut answered_408 = 0;
    let mut others_served = 0;
    for second in 0..head.len() {
        for entry in slow.iter_mut() {
            let Some(stream) = entry else { continue };
            let mut buf = [0u8; 64];
            let closed = match stream.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    answered_408 += usize::from(buf[..n].starts_with(b"HTTP/1.1 408"));
                    true
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stream.write_all(&head[second..=second]).is_err()
                }
                Err(_) => true,
            };
            if closed {
                dropped_after.push(started.elapsed());
                *entry = None;
            }
        }
        assert_eq!(app.get("/ping").status, 200);
        others_served += 1;
        if slow.iter().all(Option::is_none) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let left = slow.iter().filter(|s| s.is_some()).count();
    assert_eq!(
        left,
        0,
        "{left} slow clients still connected after {} s",
        head.len()
    );
    let last = dropped_after.iter().max().copied().unwrap_or_default();
    println!(
        "500 slow clients dropped by {:.1} s (timeout 2 s), {answered_408} with a 408; {others_served} other requests served meanwhile",
        last.as_secs_f64()
    );
}

#[test]
fn a_handler_panic_gives_500_and_the_worker_goes_on() {
    let _guard = light();
    let config = ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        threads: 1,
        max_body_bytes: 1024,
        io_timeout: Duration::from_secs(5),
        // What the server says on its own when a handler panics.
        error_body: |_, reason| {
            (
                json!({ "detail": reason }).to_string().into_bytes(),
                "application/json",
            )
        },
        max_connections: 100,
    };
    let server = HttpServer::start(
        &config,
        Arc::new(|request: &mut Request<'_>| {
            if request.path == "/panic" {
                panic!("a handler bug");
            }
            Response::json(200, &json!({"detail": "fine"}))
        }),
    )
    .expect("server starts");
    let agent = client();
    let url = |path: &str| format!("http://{}{path}", server.local_addr());
    for _ in 0..3 {
        let r = send(&agent, "GET", &url("/panic"), &[], None);
        assert_eq!(r.status, 500);
        assert_eq!(r.json(), json!({"detail": "Internal Server Error"}));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        // The only worker answered the panic; it must be the one answering this.
        let r = send(&agent, "GET", &url("/fine"), &[], None);
        assert_eq!((r.status, r.json()), (200, json!({"detail": "fine"})));
    }
    server.stop();
}

/// Sends `bytes`, half-closes, and reads every answer until the server closes. Errors on a
/// `5xx` or if nothing happens for 5 s.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u16>, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The server may close early (a bad request line); what it answered still counts.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut reader = BufReader::new(&stream);
    let mut statuses = Vec::new();
    loop {
        match read_response(&mut reader) {
            Ok(None) => return Ok(statuses),
            // `505 HTTP Version Not Supported` is tiny_http's correct answer to `HTTP/2.0`.
            Ok(Some(r)) if r.status >= 500 && r.status != 505 => {
                return Err(format!("{} {}", r.status, String::from_utf8_lossy(&r.body)));
            }
            Ok(Some(r)) => statuses.push(r.status),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Err(format!("no answer and no close within 5 s: {e}"));
            }
            // Reset after an answer to a request the server gave up on.
            Err(_) => return Ok(statuses),
        }
    }
}

fn raw_request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("PUT".to_owned()),
        Just("PATCH".to_owned()),
        "[A-Z]{1,8}"
    ];
    let path = prop_oneof![
        Just("/events".to_owned()),
        Just("/events/".to_owned()),
        Just("/ping".to_owned()),
        Just("/health".to_owned()),
        "/events/[ -~]{0,40}",
        "/[^ \r\n]{0,60}",
    ];
    let version = prop_oneof![
        Just("HTTP/1.1".to_owned()),
        Just("HTTP/1.0".to_owned()),
        "[ -~]{0,10}"
    ];
    let header = prop_oneof![
        "Content-Length: [0-9]{0,6}",
        Just("Transfer-Encoding: chunked".to_owned()),
        Just("Connection: close".to_owned()),
        Just("Expect: 100-continue".to_owned()),
        "[!-9;-~]{1,20}: [ -~]{0,40}",
        "[ -~]{0,40}",
    ];
    let structured = (
        method,
        path,
        version,
        proptest::collection::vec(header, 0..5),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(m, p, v, headers, body)| {
            let mut bytes = format!("{m} {p} {v}\r\n").into_bytes();
            for h in headers {
                bytes.extend_from_slice(h.as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&body);
            bytes
        });
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..600), structured]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::from),
        "[a-z]{0,300}".prop_map(Value::from),
    ];
    let field = prop_oneof![
        Just("user_id".to_owned()),
        Just("description".to_owned()),
        Just("status".to_owned()),
        ".{0,8}"
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(field.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn check_json_bodies(app: &TestApp, id: &str, body: &Value) -> Result<(), TestCaseError> {
    let bytes = body.to_string();
    for (method, path) in [
        ("POST", "/events".to_owned()),
        ("PUT", format!("/events/{id}")),
    ] {
        let r = app.request(method, &path, &[], Some(bytes.as_bytes()));
        prop_assert!(
            r.status == 200 || r.status == 422,
            "{method} {path} {bytes} -> {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        let _ = r.json();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_as_requests_never_get_5xx_or_hang(bytes in raw_request()) {
        let _guard = light();
        let app = shared_app();
        let result = exchange(app.addr, &bytes);
        prop_assert!(result.is_ok(), "{:?} for {:?}", result, String::from_utf8_lossy(&bytes));
        prop_assert_eq!(app.get("/ping").status, 200);
    }

    #[test]
    fn random_json_bodies_never_get_5xx(body in json_value()) {
        let _guard = light();
        let app = shared_app();
        let id = shared_event_id();
        check_json_bodies(app, id, &body)?;
        // The same values as a string or array of fields, which the parser treats differently.
        check_json_bodies(app, id, &json!({"user_id": body.clone(), "description": body, "status": "x"}))?;
    }
}

/// One server for all property cases (starting one per case would dominate the run time).
fn shared_app() -> &'static TestApp {
    static APP: std::sync::OnceLock<TestApp> = std::sync::OnceLock::new();
    APP.get_or_init(|| app_with_timeout(5))
}

fn shared_event_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        shared_app().create("u", "target of random updates")["event_id"]
            .as_str()
            .expect("id")
            .to_owned()
    })
}
