// PATCHED (see PATCHES.md, fixes 11 to 17): a new file.
//! How requests are framed on a connection: where a head ends, how long a body is, what is
//! refused (and then closed), over real sockets to a server that echoes what it got.

extern crate tiny_http;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

/// A server that answers every request with `METHOD URL BODY` (`METHOD URL !error` if its
/// body could not be read), then ` X-Echo: value` if it had that header; its port.
fn echo_server() -> u16 {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let body = match request.as_reader().read_to_string(&mut body) {
                Ok(_) => body,
                Err(e) => format!("!{}", e),
            };
            let mut text = format!("{} {} {}", request.method(), request.url(), body);
            if let Some(h) = request.headers().iter().find(|h| h.field.equiv("X-Echo")) {
                text.push_str(&format!(" X-Echo: {}", h.value));
            }
            request.respond(tiny_http::Response::from_string(text)).ok();
        }
    });
    port
}

/// Sends `raw` on a new connection and reads until the server closes it.
fn exchange(port: u16, raw: &[u8]) -> String {
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(raw).unwrap();
    let mut answer = Vec::new();
    client
        .read_to_end(&mut answer)
        .expect("the server answers and closes within 5 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The bodies of the answers in `answer`, in order (each announced by `Content-Length`).
fn bodies(answer: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = answer;
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = &rest[..end];
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let body_end = (end + 4 + length).min(rest.len());
        out.push(&rest[end + 4..body_end]);
        rest = &rest[body_end..];
    }
    out
}

#[test]
fn pipelined_requests_in_one_write_are_each_served_with_their_own_body() {
    let port = echo_server();
    let answer = exchange(
        port,
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nbyeGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        bodies(&answer),
        ["POST /a hello", "POST /b bye", "GET /c "],
        "{}",
        answer
    );
}

#[test]
fn a_head_with_bare_lf_line_endings_is_served() {
    let port = echo_server();
    let answer = exchange(
        port,
        b"\nPOST /lf HTTP/1.1\nHost: x\nContent-Length: 2\nConnection: close\n\nok",
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{}", answer);
    assert_eq!(bodies(&answer), ["POST /lf ok"], "{}", answer);
}

#[test]
fn a_head_sent_a_byte_at_a_time_is_served() {
    let port = echo_server();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.set_nodelay(true).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for byte in b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" {
        client.write_all(&[*byte]).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert_eq!(bodies(&answer), ["GET /slow "], "{}", answer);
}

#[test]
fn obs_text_in_a_header_value_reaches_the_handler_percent_encoded() {
    let port = echo_server();
    let answer = exchange(
        port,
        b"GET /ua HTTP/1.1\r\nHost: x\r\nX-Echo: caf\xc3\xa9\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{}", answer);
    assert_eq!(
        bodies(&answer),
        ["GET /ua  X-Echo: caf%C3%A9"],
        "{}",
        answer
    );
}

#[test]
fn an_invalid_byte_in_the_target_is_answered_400_and_nothing_after_it_is_served() {
    let port = echo_server();
    for target in [&b"/p\xffth"[..], b"/q?u=\xc3\x28", b"/a\x01b"] {
        let mut raw = b"GET ".to_vec();
        raw.extend_from_slice(target);
        raw.extend_from_slice(
            b" HTTP/1.1\r\nHost: x\r\n\r\nGET /hidden HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let answer = exchange(port, &raw);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{}", answer);
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{}", answer);
    }
}

/// Requests whose body length cannot be told (RFC 9112 §6), each followed by the bytes of a
/// hidden request that would run if the server framed it as upstream did.
const SMUGGLING: &[(&str, &str)] = &[
    (
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "400",
    ),
    (
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        "400",
    ),
    ("Transfer-Encoding: identity\r\n\r\n", "400"),
    (
        "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "400",
    ),
    ("Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "501"),
    (
        "Content-Length: 0\r\nContent-Length: 6\r\n\r\nabcdef",
        "400",
    ),
    ("Content-Length: 0, 6\r\n\r\nabcdef", "400"),
    ("Content-Length: 5, 6\r\n\r\nhello!", "400"),
    ("Content-Length: -1\r\n\r\n", "400"),
    ("Content-Length: abc\r\n\r\n", "400"),
    ("Content-Length: 18446744073709551616\r\n\r\n", "400"),
];

#[test]
fn a_body_whose_length_cannot_be_told_is_refused_and_nothing_after_it_runs() {
    let port = echo_server();
    for (headers, status) in SMUGGLING {
        let raw = format!(
            "POST /first HTTP/1.1\r\nHost: x\r\n{}GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n",
            headers
        );
        let answer = exchange(port, raw.as_bytes());
        let status_line = format!("HTTP/1.1 {} ", status);
        assert!(
            answer.starts_with(&status_line),
            "{:?}: {}",
            headers,
            answer
        );
        assert_eq!(
            answer.matches("HTTP/1.1").count(),
            1,
            "{:?}: {}",
            headers,
            answer
        );
        assert!(!answer.contains("/hidden"), "{:?}: {}", headers, answer);
    }
}

#[test]
fn a_transfer_encoding_in_an_http_1_0_request_is_refused() {
    let port = echo_server();
    let answer = exchange(
        port,
        b"POST /old HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert!(answer.contains(" 400 "), "{}", answer);
}

#[test]
fn repeated_identical_content_lengths_frame_the_body() {
    let port = echo_server();
    let answer = exchange(
        port,
        b"POST /same HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nokGET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        bodies(&answer),
        ["POST /same ok", "GET /next "],
        "{}",
        answer
    );
}

#[test]
fn a_chunked_body_with_trailers_is_read_and_the_next_request_served() {
    let port = echo_server();
    let answer = exchange(
        port,
        b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        bodies(&answer),
        ["POST /t abc", "GET /after "],
        "{}",
        answer
    );
}

#[test]
fn a_chunked_body_cut_short_is_an_error_for_the_handler() {
    let port = echo_server();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .write_all(b"POST /cut HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        .unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{}", answer);
    assert!(answer.contains("POST /cut !"), "{}", answer);
}

#[test]
fn every_answer_after_which_the_server_closes_says_connection_close() {
    let port = echo_server();
    let mut long = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    long.extend(std::iter::repeat(b'a').take(40 * 1024));
    long.extend_from_slice(b"\r\n\r\n");
    let cases: &[(&[u8], &str)] = &[
        (b"GARBAGE\r\n\r\n", "400"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
            "400",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "501",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n",
            "417",
        ),
        (b"GET / HTTP/2.0\r\n\r\n", "505"),
        (&long, "431"),
    ];
    for (raw, status) in cases {
        let answer = exchange(port, raw);
        assert!(answer.contains(&format!(" {} ", status)), "{}", answer);
        assert!(answer.contains("\r\nConnection: close\r\n"), "{}", answer);
    }
}

#[test]
fn a_handler_answer_with_connection_close_is_the_connections_last() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    thread::spawn(move || {
        for request in server.incoming_requests() {
            let close = tiny_http::Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap();
            let keep = tiny_http::Header::from_bytes(&b"Connection"[..], &b"x"[..]).unwrap();
            let response = tiny_http::Response::from_string(request.url().to_string())
                .with_header(keep)
                .with_status_code(413);
            let response = match request.url() {
                "/last" => response.with_header(close),
                _ => response,
            };
            request.respond(response).ok();
        }
    });
    // Sent one after the other, so that each is read only after the answer before it.
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    for path in ["/first", "/last", "/never"] {
        let raw = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path);
        if client.write_all(raw.as_bytes()).is_err() {
            break;
        }
        let mut chunk = [0u8; 4096];
        match client.read(&mut chunk) {
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("{}", e),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(bodies(&answer), ["/first", "/last"], "{}", answer);
    assert_eq!(answer.matches("Connection: close").count(), 1, "{}", answer);
    assert!(!answer.contains("Connection: x"), "{}", answer);
}

#[test]
fn host_rules_are_enforced_and_an_absolute_form_target_is_routed_by_its_path() {
    let port = echo_server();
    for raw in [
        &b"GET /nohost HTTP/1.1\r\n\r\nGET /hidden HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /two HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /hidden HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /bad HTTP/1.1\r\nHost: a b\r\n\r\nGET /hidden HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let answer = exchange(port, raw);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{}", answer);
        assert!(answer.contains("Connection: close\r\n"), "{}", answer);
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{}", answer);
    }
    let answer = exchange(
        port,
        b"POST http://x:1/events?a=b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(bodies(&answer), ["POST /events?a=b hi"], "{}", answer);
    let answer = exchange(port, b"GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(bodies(&answer), ["GET /old "], "{}", answer);
}

#[test]
fn an_upgrade_the_handler_does_not_take_is_served_as_http_1_1_on_the_same_connection() {
    let port = echo_server();
    // What `curl --http2 -d ...` sends over plain HTTP, then a second request.
    let answer = exchange(
        port,
        b"POST /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 4\r\n\r\nbodyGET /upgrade-get HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        bodies(&answer),
        ["POST /h2c body", "GET /upgrade-get ", "GET /after "],
        "{}",
        answer
    );
    assert!(!answer.contains("Upgrade"), "{}", answer);
}

#[test]
fn an_upgrade_the_handler_takes_gets_the_stream_after_the_head() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    thread::spawn(move || {
        let request = server.recv().unwrap();
        let response = tiny_http::Response::empty(101);
        let mut stream = request.upgrade("echo", response);
        let mut line = [0u8; 5];
        stream.read_exact(&mut line).unwrap();
        stream.write_all(&line).unwrap();
        stream.flush().unwrap();
    });
    let answer = exchange(
        port,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nhello",
    );
    assert!(answer.starts_with("HTTP/1.1 101 "), "{}", answer);
    assert!(answer.ends_with("\r\n\r\nhello"), "{}", answer);
}
