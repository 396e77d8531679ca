// PATCHED (see PATCHES.md, fix 4): a new file.
//! The answers tiny_http gives by itself: upstream's until `Server::set_error_body` is called,
//! then with the hook's body and `Content-Type`.

extern crate tiny_http;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `raw` on a new connection to `server` and reads the answer until the server closes.
fn exchange(server: &tiny_http::Server, raw: &[u8]) -> String {
    let port = server.server_addr().to_ip().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(raw).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    answer
}

fn body(answer: &str) -> &str {
    answer.split("\r\n\r\n").nth(1).unwrap_or_default()
}

#[test]
fn by_default_the_answers_are_upstreams() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();

    let answer = exchange(&server, b"GARBAGE\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{}",
        answer
    );
    assert!(answer.contains("Content-Length: 0\r\n"), "{}", answer);
    assert!(!answer.contains("Content-Type"), "{}", answer);
    assert_eq!(body(&answer), "");

    let answer = exchange(&server, b"GET / HTTP/2.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 505 "), "{}", answer);
    assert!(
        answer.contains("Content-Type: text/plain; charset=UTF-8\r\n"),
        "{}",
        answer
    );
    assert_eq!(
        body(&answer),
        "This server only supports HTTP versions 1.0 and 1.1"
    );
}

#[test]
fn set_error_body_gives_every_answer_the_hooks_body() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    server.set_error_body(|status, reason| {
        let body = format!("{} {}", status.0, reason).into_bytes();
        let content_type =
            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/x-test"[..]).unwrap();
        (body, content_type)
    });

    let cases: &[(&[u8], &str, &str)] = &[
        (
            b"GARBAGE\r\n\r\n",
            "HTTP/1.1 400 ",
            "400 Bad Request: malformed request line or header",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n",
            "HTTP/1.1 400 ",
            "400 Bad Request: malformed request line or header",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n",
            "HTTP/1.1 417 ",
            "417 Expectation Failed",
        ),
        (
            b"GET / HTTP/2.0\r\n\r\n",
            "HTTP/1.1 505 ",
            "505 This server only supports HTTP versions 1.0 and 1.1",
        ),
    ];
    for (raw, status_line, expected) in cases {
        let answer = exchange(&server, raw);
        assert!(answer.starts_with(status_line), "{}", answer);
        assert!(
            answer.contains("Content-Type: text/x-test\r\n"),
            "{}",
            answer
        );
        assert!(
            answer.contains(&format!("Content-Length: {}\r\n", expected.len())),
            "{}",
            answer
        );
        assert_eq!(body(&answer), *expected);
    }

    // A head larger than the cap (patch 2): 431, also with the hook's body.
    let mut raw = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    raw.extend(std::iter::repeat(b'a').take(40 * 1024));
    raw.extend_from_slice(b"\r\n\r\n");
    let answer = exchange(&server, &raw);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{}", answer);
    assert_eq!(body(&answer), "431 Request header fields too large");
}

/// Sends one request to `server`, drops it unanswered, and returns what the client got.
fn dropped_unanswered(server: tiny_http::Server) -> String {
    let server = std::sync::Arc::new(server);
    let inside = server.clone();
    let client = std::thread::spawn(move || exchange(&inside, b"GET / HTTP/1.0\r\n\r\n"));
    let request = server.recv().unwrap();
    drop(request);
    client.join().unwrap()
}

#[test]
fn a_request_dropped_unanswered_gets_a_retryable_503() {
    let answer = dropped_unanswered(tiny_http::Server::http("127.0.0.1:0").unwrap());
    assert!(answer.starts_with("HTTP/1.0 503 "), "{}", answer);
    assert!(answer.contains("Retry-After: 1\r\n"), "{}", answer);
    assert!(!answer.contains("Content-Type"), "{}", answer);
    assert_eq!(body(&answer), "");

    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    server.set_error_body(|status, reason| {
        let content_type =
            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/x-test"[..]).unwrap();
        (
            format!("{} {}", status.0, reason).into_bytes(),
            content_type,
        )
    });
    let answer = dropped_unanswered(server);
    assert!(answer.starts_with("HTTP/1.0 503 "), "{}", answer);
    assert!(answer.contains("Retry-After: 1\r\n"), "{}", answer);
    assert!(
        answer.contains("Content-Type: text/x-test\r\n"),
        "{}",
        answer
    );
    assert_eq!(body(&answer), "503 the server is stopping, retry later");
}
