// PATCHED (see PATCHES.md, fix 25): a new file.
//! A connection that answers before it has read what the client sends, then closes, closes
//! by lingering: the client reads the whole answer and a clean end, not a reset.

extern crate tiny_http;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A server that answers every request `413` with `Connection: close`, its body unread.
fn refusing_server() -> (tiny_http::Server, u16) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    server.set_connection_handler(|rq| {
        let close = tiny_http::Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap();
        let answer = tiny_http::Response::from_string("too large")
            .with_status_code(413)
            .with_header(close);
        let _ = rq.respond(answer);
    });
    let port = server.server_addr().to_ip().unwrap().port();
    (server, port)
}

fn connect(port: u16) -> TcpStream {
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
}

#[test]
fn a_refused_body_sent_after_a_pause_does_not_reset_the_answer() {
    let (_server, port) = refusing_server();
    for _ in 0..3 {
        let mut client = connect(port);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000\r\n\r\n")
            .unwrap();
        client.write_all(&[b'a'; 1024]).unwrap();
        // The server answers, gives up on the body (patches 1 and 6: after 1 s) and closes;
        // the rest of the body comes after that.
        sleep(Duration::from_millis(1500));
        client.write_all(&[b'a'; 256 * 1024]).unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap(); // a reset fails here
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{}", answer);
        assert!(answer.contains("Connection: close\r\n"), "{}", answer);
        assert!(answer.ends_with("\r\n\r\ntoo large"), "{}", answer);
    }
}

#[test]
fn a_lingering_close_ends_once_the_client_closes() {
    let (server, port) = refusing_server();
    let mut client = connect(port);
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 413"));
    // The server has sent its FIN; it still waits for ours, not its whole 2 s.
    let closed = Instant::now();
    drop(client);
    while server.num_connections() > 0 {
        assert!(closed.elapsed() < Duration::from_secs(1), "still lingering");
        sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_silent_client_is_closed_after_two_seconds_of_lingering() {
    let (server, port) = refusing_server();
    let mut client = connect(port);
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 413"));
    // The client keeps its side open and sends nothing.
    let answered = Instant::now();
    while server.num_connections() > 0 {
        assert!(
            answered.elapsed() < Duration::from_secs(5),
            "lingers for ever"
        );
        sleep(Duration::from_millis(20));
    }
    assert!(answered.elapsed() >= Duration::from_millis(1500));
}

#[test]
fn the_refusal_beyond_the_connection_limit_reads_what_came_before_closing() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    server.set_connection_handler(|rq| {
        let _ = rq.respond(tiny_http::Response::from_string("served"));
    });
    server.set_max_connections(1);
    let port = server.server_addr().to_ip().unwrap().port();
    let mut held = connect(port);
    held.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 12];
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    for _ in 0..20 {
        let mut client = connect(port);
        let head = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 32768\r\n\r\n";
        let mut request = head.to_vec();
        request.extend_from_slice(&[b'a'; 32768]);
        // May fail once the server has closed: only the answer matters.
        let _ = client.write_all(&request);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 503"));
    }
}

#[test]
fn without_a_connection_handler_responding_does_not_wait_for_the_linger() {
    // Queue mode: the application's thread may drop the connection's last handle; it must
    // not be held for the 2 s of a lingering close.
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let mut client = connect(port);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .unwrap();
    let rq = server.recv().unwrap();
    let started = Instant::now();
    rq.respond(tiny_http::Response::from_string("hello"))
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.ends_with("hello"), "{}", answer);
}
