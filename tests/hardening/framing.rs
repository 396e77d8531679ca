//! Request framing on the real server, over raw sockets (RFC 9112; the fork's patches 11 to
//! 17, `vendor/tiny_http/PATCHES.md`): each case's exact status line and JSON body, whether
//! the answer says `Connection: close` and the connection then closes, and that the bytes a
//! smuggling request hides (a `POST /events`) never run as a second request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::app::{TestApp, spawn_app};
use crate::common::nginx::{Nginx, nginx_binary};
use crate::light;

/// A request that creates an event described `description`, as raw bytes.
fn post_event(description: &str, extra_headers: &str) -> Vec<u8> {
    let body = serde_json::json!({"user_id": "framing", "description": description}).to_string();
    format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What the server sent on one connection, until it closed it (`closed`) or 5 s passed.
struct Answer {
    text: String,
    closed: bool,
}

impl Answer {
    /// Every status line (`HTTP/1.x NNN ...`), wherever it starts: a second answer follows
    /// the first one's body directly.
    fn status_lines(&self) -> Vec<&str> {
        self.text
            .match_indices("HTTP/1.")
            .map(|(i, _)| self.text[i..].lines().next().unwrap_or_default())
            .filter(|line| {
                let code = line.get(8..13).unwrap_or_default().as_bytes();
                code.len() == 5 && code[0] == b' ' && code[1..4].iter().all(u8::is_ascii_digit)
            })
            .collect()
    }

    fn body_json(&self) -> serde_json::Value {
        let body = self.text.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

fn exchange(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(raw).expect("send");
    let (answer, end) = read_until_closed(&mut stream);
    let closed = match end {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    Answer {
        text: String::from_utf8_lossy(&answer).into_owned(),
        closed,
    }
}

/// What `stream` brings until the server closes it (`Ok`), or until a read fails.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (answer, Ok(())),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => return (answer, Err(e)),
        }
    }
}

/// How many stored events are described `description`.
fn stored(app: &TestApp, description: &str) -> usize {
    let events = app.get("/events?limit=1000").json();
    events
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|e| e["description"] == description)
                .count()
        })
        .unwrap_or_else(|| panic!("a list: {events}"))
}

/// Sends `raw` and asserts one answer, `status_line`, whose JSON `detail` contains `detail`,
/// with `Connection: close`, after which the server closed the connection.
fn assert_refused(app: &TestApp, raw: &[u8], status_line: &str, detail: &str) {
    let answer = exchange(app.addr, raw);
    assert_eq!(answer.status_lines(), [status_line], "{}", answer.text);
    assert!(
        answer.text.contains("\r\nConnection: close\r\n"),
        "{}",
        answer.text
    );
    assert!(answer.closed, "the server closes: {}", answer.text);
    let json = answer.body_json();
    assert!(
        json["detail"].as_str().is_some_and(|d| d.contains(detail)),
        "{json}"
    );
}

/// Smuggling cases: a request whose body length cannot be told, then a hidden request.
fn smuggling_cases() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let te = "Transfer-Encoding: chunked\r\n";
    vec![
        (
            "CL+TE",
            format!("Content-Length: 5\r\n{te}\r\n0\r\n\r\n"),
            "400 Bad Request",
            "Content-Length and Transfer-Encoding",
        ),
        (
            "TE+CL",
            format!("{te}Content-Length: 5\r\n\r\n0\r\n\r\n"),
            "400 Bad Request",
            "Content-Length and Transfer-Encoding",
        ),
        (
            "TE identity",
            "Transfer-Encoding: identity\r\n\r\n".into(),
            "400 Bad Request",
            "final transfer coding is not chunked",
        ),
        (
            "TE gzip, chunked",
            "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".into(),
            "501 Not Implemented",
            "only the chunked transfer coding",
        ),
        (
            "CL twice, differing",
            "Content-Length: 0\r\nContent-Length: 5\r\n\r\nxxxxx".into(),
            "400 Bad Request",
            "differing Content-Length",
        ),
        (
            "CL 5, 6",
            "Content-Length: 5, 6\r\n\r\nxxxxxx".into(),
            "400 Bad Request",
            "differing Content-Length",
        ),
        (
            "CL -1",
            "Content-Length: -1\r\n\r\n".into(),
            "400 Bad Request",
            "invalid Content-Length",
        ),
        (
            "CL abc",
            "Content-Length: abc\r\n\r\n".into(),
            "400 Bad Request",
            "invalid Content-Length",
        ),
        (
            "CL beyond u64",
            "Content-Length: 18446744073709551616\r\n\r\n".into(),
            "400 Bad Request",
            "invalid Content-Length",
        ),
    ]
}

#[test]
fn smuggling_requests_are_refused_and_their_hidden_request_never_runs() {
    let _guard = light();
    let app = spawn_app();
    for (name, headers, status, detail) in smuggling_cases() {
        let hidden = format!("SMUGGLED {name}");
        let mut raw = format!(
            "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
        )
        .into_bytes();
        raw.extend(post_event(&hidden, ""));
        assert_refused(&app, &raw, &format!("HTTP/1.1 {status}"), detail);
        assert_eq!(stored(&app, &hidden), 0, "{name}: the hidden request ran");
    }
}

#[test]
fn identical_content_lengths_frame_the_body_and_the_next_request_runs() {
    let _guard = light();
    let app = spawn_app();
    let body = serde_json::json!({"user_id": "framing", "description": "same length"}).to_string();
    let mut raw = format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {n}, {n}\r\nContent-Length: {n}\r\n\r\n{body}",
        n = body.len()
    )
    .into_bytes();
    raw.extend(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let answer = exchange(app.addr, &raw);
    assert_eq!(
        answer.status_lines(),
        ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"],
        "{}",
        answer.text
    );
    assert!(answer.closed);
    assert_eq!(stored(&app, "same length"), 1);
}

#[test]
fn a_chunked_body_with_a_trailer_creates_its_event() {
    let _guard = light();
    let app = spawn_app();
    let body = serde_json::json!({"user_id": "framing", "description": "trailer"}).to_string();
    let raw = format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\nX-Checksum: 1\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let answer = exchange(app.addr, raw.as_bytes());
    assert_eq!(
        answer.status_lines(),
        ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"],
        "{}",
        answer.text
    );
    assert_eq!(stored(&app, "trailer"), 1);
}

#[test]
fn a_too_large_body_gets_413_with_connection_close_and_nothing_after_it_runs() {
    let _guard = light();
    let app = spawn_app();
    let mut raw = b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n".to_vec();
    raw.extend(post_event("after 413", ""));
    assert_refused(&app, &raw, "HTTP/1.1 413 Payload Too Large", "too large");
    assert_eq!(stored(&app, "after 413"), 0);
}

/// A client that sends a refused request whole, and slowly: the head and a first part of
/// the body, a pause of 1.5 s (by then the server has answered and closed its side), then
/// 256 KiB more; only then does it read. It must get the whole answer and a clean end: the
/// server's close lingers (the fork's patch 25), reading what still comes, where a plain close
/// made the kernel reset the connection and the client lose the answer it had not read.
#[test]
fn a_refused_request_is_sent_whole_then_gets_its_answer_and_a_clean_close() {
    let _guard = light();
    let app = spawn_app();
    let cases = [
        (
            "413",
            "Content-Length: 10000000\r\n",
            "HTTP/1.1 413 Payload Too Large",
            "too large",
        ),
        (
            "CL+TE",
            "Content-Length: 300000\r\nTransfer-Encoding: chunked\r\n",
            "HTTP/1.1 400 Bad Request",
            "Content-Length and Transfer-Encoding",
        ),
    ];
    for (name, framing, status_line, detail) in cases {
        let mut stream = TcpStream::connect(app.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let head = format!(
            "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n"
        );
        stream.write_all(head.as_bytes()).expect("send the head");
        stream.write_all(&[b'a'; 1024]).expect("send a first part");
        std::thread::sleep(Duration::from_millis(1500));
        if let Err(e) = stream.write_all(&vec![b'a'; 256 * 1024]) {
            panic!("{name}: sending the rest of the body: {e} ({:?})", e.kind());
        }
        let (answer, end) = read_until_closed(&mut stream);
        if let Err(e) = end {
            panic!(
                "{name}: reading the answer: {e} ({:?}) after {:?}",
                e.kind(),
                String::from_utf8_lossy(&answer)
            );
        }
        let answer = Answer {
            text: String::from_utf8_lossy(&answer).into_owned(),
            closed: true,
        };
        assert_eq!(
            answer.status_lines(),
            [status_line],
            "{name}: {}",
            answer.text
        );
        assert!(
            answer.text.contains("\r\nConnection: close\r\n"),
            "{name}: {}",
            answer.text
        );
        let json = answer.body_json();
        assert!(
            json["detail"].as_str().is_some_and(|d| d.contains(detail)),
            "{name}: {json}"
        );
    }
}

#[test]
fn the_connections_own_errors_say_connection_close() {
    let _guard = light();
    let app = spawn_app();
    let mut long = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 40 * 1024));
    long.extend(b"\r\n\r\n");
    let cases: &[(&[u8], &str, &str)] = &[
        (
            b"GARBAGE\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
            "malformed request line",
        ),
        (
            &long,
            "HTTP/1.1 431 Request Header Fields Too Large",
            "too large",
        ),
        (
            b"GET /ping HTTP/2.0\r\nHost: x\r\n\r\n",
            "HTTP/1.1 505 HTTP Version Not Supported",
            "1.0 and 1.1",
        ),
        (
            b"GET /ping HTTP/1.1\r\nHost: x\r\nExpect: other\r\n\r\n",
            "HTTP/1.1 417 Expectation Failed",
            "Expectation",
        ),
    ];
    for (raw, status, detail) in cases {
        assert_refused(&app, raw, status, detail);
    }
}

#[test]
fn host_rules_are_enforced() {
    let _guard = light();
    let app = spawn_app();
    let hidden = post_event("after bad host", "");
    for (head, detail) in [
        ("GET /ping HTTP/1.1\r\n\r\n", "without Host"),
        (
            "GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "more than one Host",
        ),
        ("GET /ping HTTP/1.1\r\nHost: a b/c\r\n\r\n", "invalid Host"),
    ] {
        let mut raw = head.as_bytes().to_vec();
        raw.extend(&hidden);
        assert_refused(&app, &raw, "HTTP/1.1 400 Bad Request", detail);
    }
    assert_eq!(stored(&app, "after bad host"), 0);
    let answer = exchange(app.addr, b"GET /ping HTTP/1.0\r\n\r\n");
    assert_eq!(
        answer.status_lines(),
        ["HTTP/1.0 200 OK"],
        "{}",
        answer.text
    );
}

#[test]
fn an_absolute_form_target_is_routed_by_its_path() {
    let _guard = light();
    let app = spawn_app();
    let mut raw = post_event("absolute form", "Connection: close\r\n");
    raw.splice(5..12, b"http://x/events".iter().copied());
    let answer = exchange(app.addr, &raw);
    assert_eq!(
        answer.status_lines(),
        ["HTTP/1.1 200 OK"],
        "{}",
        answer.text
    );
    assert_eq!(stored(&app, "absolute form"), 1);
}

#[test]
fn an_upgrade_we_do_not_support_is_served_at_once_on_the_same_connection() {
    let _guard = light();
    let app = spawn_app();
    let upgrade = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    let mut stream = TcpStream::connect(app.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    // Eight in a row on one connection, each answered before the next is sent, well
    // within the idle timeout: none waits for the client to close.
    for i in 0..8 {
        stream
            .write_all(&post_event(&format!("h2c {i}"), upgrade))
            .expect("send");
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("an answer within 2 s");
        let text = String::from_utf8_lossy(&chunk[..n]);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(!text.contains("Upgrade"), "{text}");
    }
    assert_eq!(app.get("/ping").status, 200);
    for i in 0..8 {
        assert_eq!(stored(&app, &format!("h2c {i}")), 1);
    }
}

#[test]
fn bare_lf_and_obs_text_are_accepted() {
    let _guard = light();
    let app = spawn_app();
    let answer = exchange(
        app.addr,
        b"GET /ping HTTP/1.1\nHost: x\nConnection: close\n\n",
    );
    assert_eq!(
        answer.status_lines(),
        ["HTTP/1.1 200 OK"],
        "{}",
        answer.text
    );
    let answer = exchange(
        app.addr,
        b"GET /ping HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\xc3\xa9\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        answer.status_lines(),
        ["HTTP/1.1 200 OK"],
        "{}",
        answer.text
    );
}

#[test]
fn invalid_bytes_in_the_target_get_a_json_400() {
    let _guard = light();
    let app = spawn_app();
    let hidden = post_event("after bad target", "");
    for target in [
        &b"/pi\xffng"[..],
        b"/events?user_id=\xc3\x28",
        b"/pi\x01ng",
        b"/caf\xc3\xa9",
    ] {
        let mut raw = b"GET ".to_vec();
        raw.extend(target);
        raw.extend(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        raw.extend(&hidden);
        assert_refused(
            &app,
            &raw,
            "HTTP/1.1 400 Bad Request",
            "invalid byte in the request target",
        );
    }
    assert_eq!(stored(&app, "after bad target"), 0);
}

#[test]
fn smuggling_requests_through_nginx_never_run_their_hidden_request() {
    let _guard = light();
    let Some(binary) = nginx_binary() else {
        eprintln!("nginx is not installed: skipped (CI=true makes this a failure)");
        return;
    };
    let app = spawn_app();
    let nginx = Nginx::start(&binary, app.addr);
    for (name, headers, _, _) in smuggling_cases() {
        let hidden = format!("SMUGGLED via nginx {name}");
        let mut raw = format!(
            "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
        )
        .into_bytes();
        raw.extend(post_event(&hidden, ""));
        let answer = exchange(nginx.addr, &raw);
        // nginx refuses some itself (400), or frames them as we do and passes on the refusal;
        // either way at most one answer per request it saw, and never the hidden one's 200.
        let statuses = answer.status_lines();
        assert!(
            statuses.iter().all(|s| !s.contains(" 200 ")),
            "{name}: {}",
            answer.text
        );
        assert_eq!(stored(&app, &hidden), 0, "{name}: the hidden request ran");
    }
    // The proxy's keep-alive connections to the logger still serve.
    let through = crate::common::http::Client::new(nginx.addr);
    assert_eq!(
        through.create("framing", "after smuggling via nginx")["description"],
        "after smuggling via nginx"
    );
}

#[test]
fn curl_http2_over_plain_http_creates_its_event_at_once() {
    let _guard = light();
    let app = spawn_app();
    let body = serde_json::json!({"user_id": "framing", "description": "curl h2c"}).to_string();
    let output = match std::process::Command::new("curl")
        .args([
            "--http2",
            "-sS",
            "-m",
            "5",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(["-H", "content-type: application/json", "-d", &body])
        .arg(app.url("/events"))
        .output()
    {
        Ok(output) => output,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("curl (CI=true): {e}"),
        Err(e) => return eprintln!("curl cannot run ({e}): skipped"),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.ends_with("\n200 1.1"), "{text}");
    assert_eq!(stored(&app, "curl h2c"), 1);
}
