//! Abstractions of Tcp and Unix socket types

#[cfg(unix)]
use std::os::unix::net as unix_net;
use std::{
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs},
    path::PathBuf,
};
// PATCHED (fix 25): for `SharedConnection`
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Unified listener. Either a [`TcpListener`] or [`std::os::unix::net::UnixListener`]
pub enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(unix_net::UnixListener),
}
impl Listener {
    pub(crate) fn local_addr(&self) -> std::io::Result<ListenAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().map(ListenAddr::from),
            #[cfg(unix)]
            Self::Unix(l) => l.local_addr().map(ListenAddr::from),
        }
    }

    pub(crate) fn accept(&self) -> std::io::Result<(Connection, Option<SocketAddr>)> {
        match self {
            Self::Tcp(l) => l
                .accept()
                .map(|(conn, addr)| (Connection::from(conn), Some(addr))),
            #[cfg(unix)]
            Self::Unix(l) => l.accept().map(|(conn, _)| (Connection::from(conn), None)),
        }
    }
}
impl From<TcpListener> for Listener {
    fn from(s: TcpListener) -> Self {
        Self::Tcp(s)
    }
}
#[cfg(unix)]
impl From<unix_net::UnixListener> for Listener {
    fn from(s: unix_net::UnixListener) -> Self {
        Self::Unix(s)
    }
}

/// Unified connection. Either a [`TcpStream`] or [`std::os::unix::net::UnixStream`].
#[derive(Debug)]
pub(crate) enum Connection {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(unix_net::UnixStream),
}
impl std::io::Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self).read(buf) // PATCHED (fix 24): through `&Connection`
    }
}
impl std::io::Write for Connection {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self).write(buf) // PATCHED (fix 24): through `&Connection`
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self).flush() // PATCHED (fix 24)
    }
}
// PATCHED (see PATCHES.md, fix 24): a shared connection reads and writes, as `&TcpStream` and
// `&UnixStream` do, so that its reading and writing halves share one descriptor (upstream
// duplicated the socket for them).
impl std::io::Read for &Connection {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match *self {
            Connection::Tcp(s) => (&*s).read(buf),
            #[cfg(unix)]
            Connection::Unix(s) => (&*s).read(buf),
        }
    }
}
// PATCHED (fix 24)
impl std::io::Write for &Connection {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match *self {
            Connection::Tcp(s) => (&*s).write(buf),
            #[cfg(unix)]
            Connection::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match *self {
            Connection::Tcp(s) => (&*s).flush(),
            #[cfg(unix)]
            Connection::Unix(s) => (&*s).flush(),
        }
    }
}
impl Connection {
    /// Gets the peer's address. Some for TCP, None for Unix sockets.
    /// PATCHED (fix 24): `&self`, for a shared connection
    pub(crate) fn peer_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        match self {
            Self::Tcp(s) => s.peer_addr().map(Some),
            #[cfg(unix)]
            Self::Unix(_) => Ok(None),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Self::Unix(s) => s.shutdown(how),
        }
    }

    /// PATCHED: the socket's read timeout, which also bounds the time to send a request head.
    pub(crate) fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
        match self {
            Self::Tcp(s) => s.read_timeout(),
            #[cfg(unix)]
            Self::Unix(s) => s.read_timeout(),
        }
    }

    /// PATCHED (fix 21): for reading what a refused client already sent, without waiting.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nonblocking(nonblocking),
            #[cfg(unix)]
            Self::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }
    // PATCHED (fix 24): no `try_clone`: a connection is shared, never duplicated

    /// PATCHED (fix 25): bounds each read of the lingering close.
    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(timeout),
            #[cfg(unix)]
            Self::Unix(s) => s.set_read_timeout(timeout),
        }
    }
}

/// PATCHED (see PATCHES.md, fix 25): how long, and how much of what the client still sends,
/// a lingering close reads and discards at most.
pub(crate) const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
pub(crate) const LINGER_BYTES: usize = 1 << 20;
/// PATCHED (fix 25): what a close that cannot wait (the accept thread's `503`, a connection
/// whose last handle is dropped by the application's thread) discards at most.
pub(crate) const DISCARD_BYTES: usize = 64 * 1024;

/// PATCHED (see PATCHES.md, fix 25): a plain connection, shared by its reading and writing
/// halves (fix 24), that closes without a reset.
///
/// Closing a socket whose receive buffer holds unread data, or that receives data after it
/// is closed, makes the kernel send a reset (RST) instead of a FIN, and a client that gets
/// the reset before it has read the answer loses the answer: a `413` or `400` sent before
/// the body was read, then the connection closed. So when the connection answered something
/// and the client has not closed its side, the connection's thread closes it by lingering
/// ([`SharedConnection::close_lingering`]): a FIN first (`shutdown(Write)`), then what the
/// client still sends is read and discarded, until the client closes too, for at most
/// [`LINGER_TIME`] in all or [`LINGER_BYTES`], and only then the socket is closed. Should
/// the last handle be dropped elsewhere (a request the application still held, in queue
/// mode), that thread is not held: the FIN, then what already came, up to [`DISCARD_BYTES`].
pub(crate) struct SharedConnection {
    connection: Connection,
    // something was written to the client: an answer to protect
    answered: AtomicBool,
    // the client closed its side (a read returned 0) or the connection failed: nothing to
    // wait for
    finished: AtomicBool,
}

impl SharedConnection {
    pub(crate) fn new(connection: Connection) -> SharedConnection {
        SharedConnection {
            connection,
            answered: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        }
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }

    pub(crate) fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::ErrorKind::*;
        let read = (&self.connection).read(buf);
        match &read {
            Ok(0) if !buf.is_empty() => self.finished.store(true, Relaxed),
            Err(e) if matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) => {
                self.finished.store(true, Relaxed)
            }
            _ => {}
        }
        read
    }

    pub(crate) fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        let written = (&self.connection).write(buf);
        match &written {
            Ok(n) if *n > 0 => self.answered.store(true, Relaxed),
            Ok(_) => {}
            // Timed out (the client does not read) or gone: lingering would only wait.
            Err(_) => self.finished.store(true, Relaxed),
        }
        written
    }

    pub(crate) fn flush(&self) -> std::io::Result<()> {
        (&self.connection).flush()
    }

    fn needs_care(&self) -> bool {
        self.answered.load(Relaxed) && !self.finished.load(Relaxed)
    }

    /// Called by the connection's thread once it is done with the connection: if `shared`
    /// is its last handle, closes it by lingering (on this thread); otherwise the last one
    /// dropped closes it (without waiting).
    pub(crate) fn close_lingering(shared: std::sync::Arc<SharedConnection>) {
        if let Ok(shared) = std::sync::Arc::try_unwrap(shared) {
            if shared.needs_care() {
                linger(&shared.connection, LINGER_TIME, LINGER_BYTES);
                shared.finished.store(true, Relaxed);
            }
        }
    }
}

impl Drop for SharedConnection {
    fn drop(&mut self) {
        if self.needs_care() {
            let _ = self.connection.shutdown(Shutdown::Write);
            discard_pending(&self.connection, DISCARD_BYTES);
        }
    }
}

/// PATCHED (fix 25): sends a FIN, then reads and discards what comes until the client
/// closes, `time` has passed or `bytes` were read. The caller then closes the socket.
pub(crate) fn linger(connection: &Connection, time: std::time::Duration, bytes: usize) {
    if connection.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + time;
    discard(connection, bytes, || {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        !left.is_zero() && connection.set_read_timeout(Some(left)).is_ok()
    });
}

/// PATCHED (fix 25): reads and discards what the client already sent, up to `bytes`, never
/// waiting (the socket is left non-blocking: it is about to be closed).
pub(crate) fn discard_pending(connection: &Connection, bytes: usize) {
    if connection.set_nonblocking(true).is_ok() {
        discard(connection, bytes, || true);
    }
}

/// PATCHED (fix 25): reads and discards until the client closes, a read fails, `bytes` were
/// read, or `before_read` says to stop (it also sets the next read's timeout).
fn discard(connection: &Connection, bytes: usize, mut before_read: impl FnMut() -> bool) {
    let mut sink = [0u8; 8192];
    let mut drained = 0;
    while drained < bytes && before_read() {
        match (&*connection).read(&mut sink) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

impl From<TcpStream> for Connection {
    fn from(s: TcpStream) -> Self {
        Self::Tcp(s)
    }
}
#[cfg(unix)]
impl From<unix_net::UnixStream> for Connection {
    fn from(s: unix_net::UnixStream) -> Self {
        Self::Unix(s)
    }
}

#[derive(Debug, Clone)]
pub enum ConfigListenAddr {
    IP(Vec<SocketAddr>),
    #[cfg(unix)]
    // TODO: use SocketAddr when bind_addr is stabilized
    Unix(std::path::PathBuf),
}
impl ConfigListenAddr {
    pub fn from_socket_addrs<A: ToSocketAddrs>(addrs: A) -> std::io::Result<Self> {
        addrs.to_socket_addrs().map(|it| Self::IP(it.collect()))
    }

    #[cfg(unix)]
    pub fn unix_from_path<P: Into<PathBuf>>(path: P) -> Self {
        Self::Unix(path.into())
    }

    pub(crate) fn bind(&self) -> std::io::Result<Listener> {
        match self {
            Self::IP(a) => TcpListener::bind(a.as_slice()).map(Listener::from),
            #[cfg(unix)]
            Self::Unix(a) => unix_net::UnixListener::bind(a).map(Listener::from),
        }
    }
}

/// Unified listen socket address. Either a [`SocketAddr`] or [`std::os::unix::net::SocketAddr`].
#[derive(Debug, Clone)]
pub enum ListenAddr {
    IP(SocketAddr),
    #[cfg(unix)]
    Unix(unix_net::SocketAddr),
}
impl ListenAddr {
    pub fn to_ip(self) -> Option<SocketAddr> {
        match self {
            Self::IP(s) => Some(s),
            #[cfg(unix)]
            Self::Unix(_) => None,
        }
    }

    /// Gets the Unix socket address.
    ///
    /// This is also available on non-Unix platforms, for ease of use, but always returns `None`.
    #[cfg(unix)]
    pub fn to_unix(self) -> Option<unix_net::SocketAddr> {
        match self {
            Self::IP(_) => None,
            Self::Unix(s) => Some(s),
        }
    }
    #[cfg(not(unix))]
    pub fn to_unix(self) -> Option<SocketAddr> {
        None
    }
}
impl From<SocketAddr> for ListenAddr {
    fn from(s: SocketAddr) -> Self {
        Self::IP(s)
    }
}
#[cfg(unix)]
impl From<unix_net::SocketAddr> for ListenAddr {
    fn from(s: unix_net::SocketAddr) -> Self {
        Self::Unix(s)
    }
}
impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IP(s) => s.fmt(f),
            #[cfg(unix)]
            Self::Unix(s) => std::fmt::Debug::fmt(s, f),
        }
    }
}
