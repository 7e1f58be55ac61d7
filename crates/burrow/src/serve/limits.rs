//! Limits that keep idle or hostile clients from exhausting the process: a cap on open
//! connections (total, and per client address), the open-file limit, and log lines that
//! cannot flood the log when a limit is hit thousands of times a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::settings::ConnectionLimits;

/// File descriptors kept free for everything that is not a client connection: listeners,
/// database files (each connection opens the database, -wal and -shm), the ACME client,
/// pipes of a restart, log files.
const RESERVED_FDS: u64 = 128;

/// Raises the soft limit on open files to the hard limit (as Go's runtime does): the
/// default soft limit of 1024 is far below what a server with keep-alive clients needs,
/// and the hard limit is the operator's (LimitNOFILE=, ulimit -Hn). Returns the limit now
/// in force, if it could be read.
pub(crate) fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            return Some(hard);
        }
        Some(soft)
    }
    #[cfg(not(unix))]
    None
}

/// The connection cap actually used: `--max-connections`, lowered to what the open-file
/// limit allows (with a log line saying so), since accepting past it fails with EMFILE.
pub(crate) fn effective_max(configured: usize, open_files: Option<u64>) -> usize {
    let Some(limit) = open_files else { return configured };
    let room = limit.saturating_sub(RESERVED_FDS).max(16) as usize;
    if room < configured {
        tracing::warn!(
            max_connections = room,
            open_files_limit = limit,
            "serving at most {room} connections at once: the open-file limit is {limit} \
             (raise it, e.g. LimitNOFILE= in the systemd unit, to allow --max-connections \
             {configured})"
        );
        return room;
    }
    configured
}

/// Open connections per client address (see [`client_key`]).
type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Open connections: a semaphore for the total and counts per client address.
pub(crate) struct Caps {
    total: Arc<Semaphore>,
    max: usize,
    per_ip: usize,
    by_ip: Counts,
    pub(crate) full_log: Throttle,
    pub(crate) per_ip_log: Throttle,
}

/// A connection's place under the caps; given back when dropped.
pub(crate) struct Slot {
    _total: OwnedSemaphorePermit,
    ip: Option<(IpAddr, Counts)>,
}

impl Caps {
    pub(crate) fn new(limits: &ConnectionLimits, max: usize) -> Caps {
        Caps {
            total: Arc::new(Semaphore::new(max)),
            max,
            per_ip: limits.max_per_ip,
            by_ip: Arc::default(),
            full_log: Throttle::default(),
            per_ip_log: Throttle::default(),
        }
    }

    /// Waits for room under the total cap. At the cap, new clients wait in the listen
    /// backlog (the kernel completes their handshakes) until a connection closes, rather
    /// than being accepted and dropped.
    pub(crate) async fn room(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.total.clone().try_acquire_owned() {
            return Some(permit);
        }
        if let Some(suppressed) = self.full_log.ready() {
            tracing::warn!(
                max_connections = self.max,
                suppressed,
                "connection limit reached: {} connections are open (--max-connections); new \
                 clients wait until one closes",
                self.max
            );
        }
        self.total.clone().acquire_owned().await.ok()
    }

    /// Counts a new connection from `ip` against the per-address cap; `None` when that
    /// address already has as many as it may.
    pub(crate) fn admit(&self, total: OwnedSemaphorePermit, ip: IpAddr) -> Option<Slot> {
        if self.per_ip == 0 {
            return Some(Slot { _total: total, ip: None });
        }
        let key = client_key(ip);
        let mut by_ip = self.by_ip.lock().expect("connection counts poisoned");
        let open = by_ip.entry(key).or_insert(0);
        if *open >= self.per_ip {
            drop(by_ip);
            if let Some(suppressed) = self.per_ip_log.ready() {
                tracing::warn!(
                    client = %key,
                    max_connections_per_ip = self.per_ip,
                    suppressed,
                    "refused a connection from {key}: it has {} open connections \
                     (--max-connections-per-ip)",
                    self.per_ip
                );
            }
            return None;
        }
        *open += 1;
        Some(Slot { _total: total, ip: Some((key, self.by_ip.clone())) })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((key, by_ip)) = self.ip.take() {
            let mut by_ip = by_ip.lock().expect("connection counts poisoned");
            if let Some(open) = by_ip.get_mut(&key) {
                *open -= 1;
                if *open == 0 {
                    by_ip.remove(&key);
                }
            }
        }
    }
}

/// Whom a connection counts against: the IPv4 address (also when it arrives mapped into
/// IPv6 on a dual-stack socket), or the /64 network of an IPv6 address, since one host
/// usually holds a whole /64 and could otherwise pick a new address per connection.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if !v6.is_loopback() => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        other => other,
    }
}

/// Lets a repeated log line through at most once a second, counting the ones it held back.
#[derive(Default)]
pub(crate) struct Throttle {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(1);

    /// `Some(number held back since the last line)` when a line may be logged now.
    pub(crate) fn ready(&self) -> Option<u64> {
        let mut last = self.last.lock().expect("throttle poisoned");
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Self::EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max: 3,
            max_per_ip: per_ip,
        }
    }

    #[tokio::test]
    async fn per_address_cap_counts_open_connections_and_frees_on_drop() {
        let caps = Caps::new(&limits(2), 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let first = caps.admit(caps.room().await.unwrap(), a).unwrap();
        let _second = caps.admit(caps.room().await.unwrap(), mapped).unwrap();
        assert!(caps.admit(caps.room().await.unwrap(), a).is_none(), "third from one address");
        let other = caps.admit(caps.room().await.unwrap(), "192.0.2.2".parse().unwrap());
        assert!(other.is_some(), "another address is not affected");
        drop(first);
        assert!(caps.admit(caps.room().await.unwrap(), a).is_some(), "room again after a close");
    }

    #[test]
    fn ipv6_clients_count_by_their_64_network() {
        let one = client_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let two = client_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        assert_eq!(one, two);
        assert_ne!(one, client_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(client_key("::1".parse().unwrap()), "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn throttle_lets_one_line_a_second_through_and_counts_the_rest() {
        let throttle = Throttle::default();
        assert_eq!(throttle.ready(), Some(0));
        assert_eq!(throttle.ready(), None);
        assert_eq!(throttle.ready(), None);
        *throttle.last.lock().unwrap() = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(throttle.ready(), Some(2));
    }

    #[test]
    fn the_cap_leaves_room_below_the_open_file_limit() {
        assert_eq!(effective_max(10_000, Some(1_048_576)), 10_000);
        assert_eq!(effective_max(10_000, Some(1024)), 896);
        assert_eq!(effective_max(10_000, None), 10_000);
    }
}
