//! `event-logger --healthcheck`, run as Docker's `HEALTHCHECK` runs it: the real binary, pointed
//! by `HOST`/`PORT` at a real logger (healthy, exit 0), at a stopped one, at a server answering
//! an error or garbage, or at one that never answers (each unhealthy: exit 1, one line saying
//! why on standard error).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::app::spawn_app;
use crate::common::process::binary;

/// Runs the healthcheck against `addr`, failing the test if it does not end by itself.
fn healthcheck(addr: SocketAddr) -> Output {
    let mut child = Command::new(binary("event-logger"))
        .arg("--healthcheck")
        .env("HOST", addr.ip().to_string())
        .env("PORT", addr.port().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn event-logger --healthcheck");
    // Generous: this only tells "ends by itself" from "hangs"; it measures nothing.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            child.kill().expect("kill");
            panic!("event-logger --healthcheck against {addr} hangs");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A server that reads one request and answers `answer` (then closes), returning the request.
fn answer_once(answer: &'static str) -> (SocketAddr, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut request = vec![0u8; 4096];
        let n = conn.read(&mut request).expect("read the request");
        conn.write_all(answer.as_bytes()).expect("write the answer");
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    (addr, server)
}

#[test]
fn a_running_logger_is_healthy() {
    let app = spawn_app();
    let output = healthcheck(app.addr);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("healthy: "), "{stdout}");
    assert!(stdout.contains("/health answered HTTP/1.1 200"), "{stdout}");
}

#[test]
fn a_stopped_logger_is_unhealthy() {
    let app = spawn_app();
    let addr = app.addr;
    drop(app); // stops it, and waits until it stopped
    let output = healthcheck(addr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot connect"), "{output:?}");
}

#[test]
fn an_error_answer_is_unhealthy() {
    let (addr, server) = answer_once(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
         Content-Length: 35\r\n\r\n{\"detail\": \"Internal Server Error\"}",
    );
    let output = healthcheck(addr);
    let request = server.join().expect("server thread");
    assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("unhealthy") && message.contains("500"),
        "{message}"
    );
}

#[test]
fn answers_that_are_not_http_200_are_unhealthy() {
    for answer in [
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "200 OK\r\n\r\n",
        "",
    ] {
        let (addr, server) = answer_once(answer);
        let output = healthcheck(addr);
        server.join().expect("server thread");
        assert_eq!(output.status.code(), Some(1), "{answer:?}: {output:?}");
    }
}

#[test]
fn a_server_that_never_answers_is_unhealthy() {
    // Accepted by the kernel's backlog, never read: the check must give up, not hang.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let output = healthcheck(listener.local_addr().expect("local_addr"));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no answer"), "{output:?}");
    drop(listener);
}

#[test]
fn a_bad_port_is_reported() {
    let output = Command::new(binary("event-logger"))
        .arg("--healthcheck")
        .env("PORT", "eighty")
        .output()
        .expect("run event-logger --healthcheck");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("invalid PORT"), "{output:?}");
}
