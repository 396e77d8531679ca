use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc; // PATCHED (fix 24)

use crate::connection::{Connection, SharedConnection}; // PATCHED (fix 25): SharedConnection
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use crate::ssl::SslStream;

pub(crate) enum Stream {
    // PATCHED (see PATCHES.md, fix 24): shared by the reading and the writing half, so that a
    // connection costs one descriptor (upstream duplicated the socket for each half).
    // PATCHED (fix 25): which lingers as it closes
    Http(Arc<SharedConnection>),
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    Https(SslStream),
}

// PATCHED (fix 24): a clone shares the connection; it can no longer fail (upstream's `Clone`
// unwrapped `try_clone`, a `dup` that fails with `EMFILE` when the process is out of
// descriptors, and patch 22 answered that client 503).
impl Clone for Stream {
    fn clone(&self) -> Self {
        match self {
            Stream::Http(connection) => Stream::Http(Arc::clone(connection)),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => Stream::Https(ssl_stream.clone()),
        }
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(Arc::new(SharedConnection::new(tcp_stream))) // PATCHED (fix 24, 25)
    }
}

impl Stream {
    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => true,
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.connection().peer_addr(), // PATCHED (fix 25)
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.peer_addr(),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.connection().shutdown(how), // PATCHED (fix 25)
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.read(buf), // PATCHED (fix 24, 25)
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.write(buf), // PATCHED (fix 24, 25)
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.flush(), // PATCHED (fix 24, 25)
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.flush(),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
}

impl RefinedTcpStream {
    /// PATCHED (fix 24): the reading and the writing half of one stream, which they share
    /// (no duplicate, so this cannot fail).
    pub(crate) fn new<S>(stream: S) -> (RefinedTcpStream, RefinedTcpStream)
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let (read, write) = (stream.clone(), stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
        };

        (read, write)
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

    /// PATCHED (fix 25): the shared plain connection (`None` over TLS), for its thread's
    /// lingering close.
    pub(crate) fn shared(&self) -> Option<Arc<SharedConnection>> {
        match &self.stream {
            Stream::Http(shared) => Some(Arc::clone(shared)),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => None,
        }
    }

    /// PATCHED: the read timeout of a plain connection (`None` over TLS).
    pub(crate) fn read_timeout(&self) -> Option<std::time::Duration> {
        match &self.stream {
            // PATCHED (fix 25): of the shared connection
            Stream::Http(shared) => shared.connection().read_timeout().ok().flatten(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => None,
        }
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        // PATCHED (fix 25): not a plain connection's reading side, which its lingering close
        // still reads (after `shutdown(Read)`, a read returns 0 at once): it is closed when its
        // last handle is dropped (`SharedConnection`).
        if self.close_read && self.secure() {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        self.stream.read(buf)
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
