//! Process resource limits the Event Logger adjusts at start: the open-file limit, and the
//! connection limit derived from it.
//!
//! Every connection costs one file descriptor (the fork's patch 24: tiny_http's reading and
//! writing halves share the socket instead of duplicating it). Many systems start processes
//! with a soft limit of 1024 under a much higher hard limit, so the soft limit is raised to
//! the hard one, which needs no privilege; the default `MAX_CONNECTIONS` keeps
//! [`FD_RESERVE`] descriptors for everything else.

use std::io;

/// Below this many descriptors a warning says that the server may run out under load.
pub const LOW_FD_LIMIT: u64 = 4096;

/// Descriptors kept for the store, the broker connection, logs and the accept loop's refusals
/// (a quarter of the limit when that is less, but at least [`MIN_FD_RESERVE`]).
pub const FD_RESERVE: u64 = 256;

/// The reserve at least, however low the limit: the process's own descriptors (listener,
/// standard streams, epoll) and room to accept and refuse a connection.
pub const MIN_FD_RESERVE: u64 = 16;

/// The default `MAX_CONNECTIONS`: what the hard open-file limit (the soft one after
/// [`raise_fd_limit`]) leaves after [`FD_RESERVE`], one descriptor per connection.
pub fn default_max_connections() -> usize {
    let hard = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(1024)
        // "unlimited", or more than the kernel gives a process (fs.nr_open, 1 Mi by default)
        .min(1 << 20);
    let reserve = FD_RESERVE.min(hard / 4).max(MIN_FD_RESERVE);
    hard.saturating_sub(reserve).max(1) as usize
}

/// The open-file limit before and after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise_fd_limit() -> io::Result<FdLimit> {
    let (before, _) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    rlimit::increase_nofile_limit(u64::MAX)?;
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    Ok(FdLimit { before, soft, hard })
}

/// Logs the outcome of [`raise_fd_limit`] (a warning if it stays low or could not be read).
/// Kept apart from raising, so that a service that fails to start prints only its error.
pub fn log(result: &io::Result<FdLimit>) {
    match result {
        Ok(limit) => {
            if limit.soft > limit.before {
                log::info!(
                    "open-file limit raised from {} to {} (the hard limit)",
                    limit.before,
                    limit.soft
                );
            } else {
                log::info!(
                    "open-file limit: {} (hard limit {})",
                    limit.soft,
                    limit.hard
                );
            }
            if limit.soft < LOW_FD_LIMIT {
                log::warn!(
                    "open-file limit {} is low: each connection needs one; raise the hard limit (ulimit -Hn, Compose `ulimits: nofile`)",
                    limit.soft
                );
            }
        }
        Err(e) => log::warn!("cannot read or raise the open-file limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_costs_one_descriptor_of_the_default_limit() {
        let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let hard = hard.min(1 << 20);
        let reserve = FD_RESERVE.min(hard / 4).max(MIN_FD_RESERVE);
        // Not halved any more: tiny_http no longer duplicates each socket (the fork's patch 24).
        assert_eq!(default_max_connections() as u64, (hard - reserve).max(1));
    }

    #[test]
    fn soft_limit_ends_at_the_hard_limit() {
        let limit = raise_fd_limit().expect("getrlimit works on Linux");
        assert_eq!(limit.soft, limit.hard);
        assert!(limit.soft >= limit.before);
        assert_eq!(
            rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap(),
            (limit.hard, limit.hard)
        );
    }
}
