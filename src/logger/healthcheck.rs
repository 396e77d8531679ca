//! `event-logger --healthcheck`: one blocking `GET /health` against the logger running in the
//! same container, for Docker's `HEALTHCHECK` (the runtime image has no curl).
//!
//! It reads `HOST` and `PORT` as the logger does: the request goes to `127.0.0.1` when the
//! logger listens on every address (`0.0.0.0`, `::` or unset), else to `HOST` itself. Only the
//! standard library is used, with short connect/read/write timeouts so a hung server makes the
//! check fail instead of hang. The answer is healthy when its status line says `200`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// How long one step (connect, write, read) may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The most of the answer that is read: the status line is all that matters.
const MAX_READ: u64 = 64 * 1024;

/// Where the check connects for a logger configured with `host` and `port`.
pub fn target(host: Option<&str>, port: u16) -> String {
    let host = host.map(str::trim).unwrap_or("");
    match host {
        "" | "0.0.0.0" | "::" | "[::]" => format!("127.0.0.1:{port}"),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]:{port}"),
        h => format!("{h}:{port}"),
    }
}

/// Why the check failed; `Display` is the one line the check prints.
#[derive(Debug)]
pub enum CheckError {
    Resolve {
        addr: String,
        source: io::Error,
    },
    NoAddress {
        addr: String,
    },
    Connect {
        socket: SocketAddr,
        source: io::Error,
    },
    Timeouts(io::Error),
    Send {
        socket: SocketAddr,
        source: io::Error,
    },
    NoAnswer {
        socket: SocketAddr,
        source: Option<io::Error>,
    },
    Unhealthy {
        socket: SocketAddr,
        status_line: String,
    },
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::Resolve { addr, source } => write!(f, "cannot resolve {addr}: {source}"),
            CheckError::NoAddress { addr } => write!(f, "no address for {addr}"),
            CheckError::Connect { socket, source } => {
                write!(f, "cannot connect to {socket}: {source}")
            }
            CheckError::Timeouts(e) => write!(f, "cannot set timeouts: {e}"),
            CheckError::Send { socket, source } => {
                write!(f, "cannot send the request to {socket}: {source}")
            }
            CheckError::NoAnswer {
                socket,
                source: Some(e),
            } => write!(f, "no answer from {socket}: {e}"),
            CheckError::NoAnswer { socket, .. } => write!(f, "empty answer from {socket}"),
            CheckError::Unhealthy {
                socket,
                status_line,
            } => write!(f, "unhealthy: {socket} answered {status_line:?}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// `GET /health` on `addr` (`host:port`); `Ok` with the status line when the status is 200.
pub fn check(addr: &str, timeout: Duration) -> Result<String, CheckError> {
    let sockets: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| CheckError::Resolve {
            addr: addr.to_owned(),
            source,
        })?
        .collect();
    let mut last_error = CheckError::NoAddress {
        addr: addr.to_owned(),
    };
    for socket in sockets {
        match check_socket(addr, socket, timeout) {
            Ok(status) => return Ok(status),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

fn check_socket(addr: &str, socket: SocketAddr, timeout: Duration) -> Result<String, CheckError> {
    let mut stream = TcpStream::connect_timeout(&socket, timeout)
        .map_err(|source| CheckError::Connect { socket, source })?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(CheckError::Timeouts)?;
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|source| CheckError::Send { socket, source })?;
    let mut answer = Vec::new();
    // The status line is enough; a read error after it (say, a reset) does not matter.
    let read = stream.take(MAX_READ).read_to_end(&mut answer);
    let status_line = answer
        .split(|&b| b == b'\n')
        .next()
        .map(|line| String::from_utf8_lossy(line).trim_end().to_owned())
        .unwrap_or_default();
    if status_line.is_empty() {
        return Err(CheckError::NoAnswer {
            socket,
            source: read.err(),
        });
    }
    let mut parts = status_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/") => Ok(status_line),
        _ => Err(CheckError::Unhealthy {
            socket,
            status_line,
        }),
    }
}

/// The whole `--healthcheck` run: read `HOST`/`PORT`, check, print one line, exit 0 or 1.
pub fn run_from_env() -> ExitCode {
    let host = std::env::var("HOST").ok();
    let port = match std::env::var("PORT") {
        Ok(text) if !text.trim().is_empty() => match text.trim().parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => {
                eprintln!("healthcheck: invalid PORT={text:?}: expected a port from 1 to 65535");
                return ExitCode::FAILURE;
            }
        },
        _ => 8000,
    };
    let addr = target(host.as_deref(), port);
    match check(&addr, TIMEOUT) {
        Ok(status) => {
            println!("healthy: http://{addr}/health answered {status}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}

// The failure paths (logger down, error answers, silence) are tested on the binary itself, as
// Docker runs it, in the logger's integration tests.
#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn wildcard_hosts_are_checked_on_loopback() {
        assert_eq!(target(None, 8000), "127.0.0.1:8000");
        assert_eq!(target(Some("0.0.0.0"), 8000), "127.0.0.1:8000");
        assert_eq!(target(Some("::"), 9000), "127.0.0.1:9000");
        assert_eq!(target(Some("10.1.2.3"), 80), "10.1.2.3:80");
        assert_eq!(target(Some("::1"), 80), "[::1]:80");
        assert_eq!(target(Some("localhost"), 80), "localhost:80");
    }
}
