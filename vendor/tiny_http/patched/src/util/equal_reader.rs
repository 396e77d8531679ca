use std::io::Read;
use std::io::Result as IoResult;
use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. If the limit is not reached
/// when the destructor is called, the remaining bytes will be read and
/// thrown away.
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: usize,
    last_read_signal: Sender<IoResult<()>>,
    // PATCHED: shared with the `ClientConnection`; set when the body is abandoned unread
    abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<R> EqualReader<R>
where
    R: Read,
{
    // PATCHED: takes the connection's `abandoned` flag
    pub fn new(
        reader: R,
        size: usize,
        abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> (EqualReader<R>, Receiver<IoResult<()>>) {
        let (tx, rx) = channel();

        let r = EqualReader {
            reader,
            size,
            last_read_signal: tx,
            abandoned,
        };

        (r, rx)
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read,
{
    // PATCHED (see PATCHES.md): the original allocated a buffer of the whole remaining size on
    // every iteration (a huge declared Content-Length aborted the process) and drained without
    // bound. Drain at most `DRAIN_LIMIT` bytes through a fixed buffer; past that, give up and
    // let the connection be closed.
    fn drop(&mut self) {
        const DRAIN_LIMIT: usize = 64 * 1024;
        if self.size > DRAIN_LIMIT {
            let err = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request body left unread; closing the connection",
            );
            self.abandoned
                .store(true, std::sync::atomic::Ordering::Release);
            self.last_read_signal.send(Err(err)).ok();
            return;
        }
        // PATCHED: and for at most `DRAIN_TIME`, so a client trickling its unread body does
        // not hold the worker that answered it.
        const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);
        let started = std::time::Instant::now();
        let mut buf = [0u8; 8 * 1024];
        while self.size > 0 {
            if started.elapsed() > DRAIN_TIME {
                let err = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body drained too slowly; closing the connection",
                );
                self.abandoned
                    .store(true, std::sync::atomic::Ordering::Release);
                self.last_read_signal.send(Err(err)).ok();
                return;
            }
            let want = self.size.min(buf.len());
            match self.reader.read(&mut buf[..want]) {
                Err(e) => {
                    self.last_read_signal.send(Err(e)).ok();
                    break;
                }
                Ok(0) => {
                    self.last_read_signal.send(Ok(())).ok();
                    break;
                }
                Ok(other) => {
                    self.size -= other; // PATCHED: `size` itself counts down
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use std::io::Read;

    #[test]
    fn test_limit() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            // PATCHED: a fresh `abandoned` flag
            let (mut equal_reader, _) =
                EqualReader::new(org_reader.by_ref(), 5, Default::default());

            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    #[test]
    fn test_not_enough() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            // PATCHED: a fresh `abandoned` flag
            let (mut equal_reader, _) =
                EqualReader::new(org_reader.by_ref(), 5, Default::default());

            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }
}
