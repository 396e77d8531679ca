//! [`Proxy`]: the tests' TCP proxy, in front of RabbitMQ or the Event Logger. It passes
//! connections through, closes each one as soon as it is accepted, refuses them for real (nothing
//! listens on its port then), or answers every request itself with one status, as a gateway whose
//! backend is down answers `503`. Switching cuts the connections open through it, so a keep-alive
//! connection cannot outlive an outage.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// To the target and back.
    Pass,
    /// Accepted, then closed at once (a broker cut off mid-session, or one that hangs up).
    Close,
    /// Connection refused: the port is closed until another mode is set.
    Refuse,
    /// Every request answered with this status and a JSON `detail`, then the connection closed.
    Answer(u16),
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    mode: Mutex<Mode>,
    stopping: AtomicBool,
    /// Every stream of the open connections, to shut down on a switch.
    open: Mutex<Vec<TcpStream>>,
    answered: AtomicU64,
}

impl Proxy {
    /// A proxy to `target`, in `mode` from the start.
    pub fn start(target: SocketAddr, mode: Mode) -> Proxy {
        let listener = listen(None);
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            stopping: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            answered: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(&shared, Some(listener), addr, target))
        };
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Switches to `mode`, cutting every connection open through the proxy.
    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Requests the proxy answered itself so far (in [`Mode::Answer`]).
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::Acquire)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.set(Mode::Refuse);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// A non-blocking listener on loopback: a fresh port, or `at` again after a refusing phase
/// (std sets `SO_REUSEADDR`, so connections of before in `TIME_WAIT` do not hold it).
fn listen(at: Option<SocketAddr>) -> TcpListener {
    let listener = TcpListener::bind(at.unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr")))
        .unwrap_or_else(|e| panic!("proxy cannot listen on {at:?}: {e}"));
    listener.set_nonblocking(true).expect("non-blocking");
    listener
}

fn accept_loop(
    shared: &Arc<Shared>,
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    target: SocketAddr,
) {
    while !shared.stopping.load(Ordering::Acquire) {
        let mode = *shared.mode.lock().unwrap();
        if mode == Mode::Refuse {
            // Dropping the listener closes the port: connecting is refused by the kernel.
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let listening = listener.get_or_insert_with(|| listen(Some(addr)));
        match listening.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let _ = serve(shared, client, mode, target);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => {}
        }
    }
}

/// Handles one accepted connection in `mode` on threads of its own.
fn serve(
    shared: &Arc<Shared>,
    client: TcpStream,
    mode: Mode,
    target: SocketAddr,
) -> io::Result<()> {
    if mode == Mode::Close {
        return client.shutdown(Shutdown::Both);
    }
    shared.open.lock().unwrap().push(client.try_clone()?);
    match mode {
        Mode::Pass => {
            let server = TcpStream::connect(target)?;
            shared.open.lock().unwrap().push(server.try_clone()?);
            let (mut up_from, mut up_to) = (client.try_clone()?, server.try_clone()?);
            std::thread::spawn(move || {
                let _ = io::copy(&mut up_from, &mut up_to);
                let _ = up_to.shutdown(Shutdown::Write);
            });
            let (mut down_from, mut down_to) = (server, client);
            std::thread::spawn(move || {
                let _ = io::copy(&mut down_from, &mut down_to);
                let _ = down_to.shutdown(Shutdown::Both);
            });
        }
        Mode::Answer(status) => {
            let shared = shared.clone();
            std::thread::spawn(move || {
                if answer_one(client, status).is_ok() {
                    shared.answered.fetch_add(1, Ordering::AcqRel);
                }
            });
        }
        Mode::Close | Mode::Refuse => {}
    }
    Ok(())
}

/// Reads one request (head and `Content-Length` body), answers `status`, closes.
fn answer_one(client: TcpStream, status: u16) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    io::copy(&mut reader.take(length as u64), &mut io::sink())?;
    let body = format!(r#"{{"detail": "answered {status} by the test's proxy"}}"#);
    let mut client = client;
    write!(
        client,
        "HTTP/1.1 {status} Proxy\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    client.flush()?;
    client.shutdown(Shutdown::Both)
}
