//! The real binaries as child processes: started with a clean environment plus the variables a
//! test gives, their stdout and stderr collected as they run, signalled like an operator would.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_notification::logger::LOGGER_VARS;
use event_notification::processor::PROCESSOR_VARS;

use super::output::SharedBuf;
use super::wait::wait_until;

/// No variables beyond the defaults, for [`Service::start`] and [`Service::logger`].
pub const NO_ENV: &[(&str, &str)] = &[];

/// A running binary. Killed (SIGKILL) when dropped, if still running.
pub struct Service {
    child: Child,
    pub stdout: SharedBuf,
    pub stderr: SharedBuf,
    readers: Vec<JoinHandle<()>>,
}

/// Path of one of the crate's binaries, built by cargo for the integration tests.
pub fn binary(name: &str) -> &'static str {
    match name {
        "event-logger" => env!("CARGO_BIN_EXE_event-logger"),
        "notification-processor" => env!("CARGO_BIN_EXE_notification-processor"),
        other => panic!("no binary {other}"),
    }
}

fn collect(mut from: impl Read + Send + 'static, into: SharedBuf) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.0.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl Service {
    /// Starts `name` with `args`, only `env` set of the variables the services read (a
    /// developer's own `AMQP_URL` must not leak into a test) and `LOG_LEVEL=debug` unless given.
    /// Values may be `&str` or `String`.
    pub fn start(name: &str, args: &[&str], env: &[(&str, impl AsRef<str>)]) -> Service {
        Service::start_with(name, args, env, |_| {})
    }

    /// [`Service::start`], with a last say on the command (e.g. resource limits).
    pub fn start_with(
        name: &str,
        args: &[&str],
        env: &[(&str, impl AsRef<str>)],
        configure: impl FnOnce(&mut Command),
    ) -> Service {
        let mut command = Command::new(binary(name));
        command.args(args);
        for var in LOGGER_VARS.iter().chain(PROCESSOR_VARS) {
            command.env_remove(var.name);
        }
        command.env("LOG_LEVEL", "debug");
        command.envs(env.iter().map(|(k, v)| (k, v.as_ref())));
        configure(&mut command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = SharedBuf::default();
        let stderr = SharedBuf::default();
        let readers = vec![
            collect(child.stdout.take().expect("piped"), stdout.clone()),
            collect(child.stderr.take().expect("piped"), stderr.clone()),
        ];
        Service {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Starts `event-logger` on a free port and waits until it says where it listens.
    pub fn logger(env: &[(&str, impl AsRef<str>)]) -> (Service, SocketAddr) {
        let mut all = vec![("PORT", "0")];
        all.extend(env.iter().map(|(k, v)| (*k, v.as_ref())));
        let service = Service::start("event-logger", &[], &all);
        let addr = service.listening_addr(Duration::from_secs(10));
        (service, addr)
    }

    /// The address from the logger's "listening on" line, once it is logged.
    pub fn listening_addr(&self, timeout: Duration) -> SocketAddr {
        const MARK: &str = "listening on http://";
        let mut found = None;
        wait_until(timeout, || {
            let text = self.stderr.text();
            found = text.find(MARK).and_then(|at| {
                text[at + MARK.len()..]
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.parse().ok())
            });
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!(
                "the logger did not say where it listens; stderr:\n{}",
                self.stderr.text()
            )
        })
    }

    /// Waits until stderr contains `needle`; panics with stderr after `timeout`.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) {
        assert!(
            wait_until(timeout, || self.stderr.text().contains(needle)),
            "no {needle:?} on stderr within {timeout:?}:\n{}",
            self.stderr.text()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"TERM"`, `"INT"`, `"KILL"`) as `kill -s` does.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {signal} {}", self.pid());
    }

    /// Waits up to `timeout` for the process to exit; then its output is complete.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status (panics if it takes longer than `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait(timeout).unwrap_or_else(|| {
            panic!(
                "still running {timeout:?} after SIGTERM; stderr:\n{}",
                self.stderr.text()
            )
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
