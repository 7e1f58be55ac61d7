//! Ports for servers and tools that cannot be given port 0 (a server's second listener, an
//! ACME CA's fixed validation port, an SMTP sink), chosen where nothing else picks them.
//!
//! Binding port 0 and releasing it returns a port from the kernel's ephemeral range, the same
//! range every other listener on port 0 and every outgoing connection draws from. Between
//! the release and the server's own bind, the next test's server on port 0 could get that
//! very port; CI once saw two servers of one test handed the same one. So ports here come
//! from outside that range, one after another from a start that depends on the process id,
//! and no port is handed out twice in one process.

use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where free ports are looked for when the kernel's range cannot be read: outside Linux's
/// default ephemeral range (32768–60999).
const DEFAULT_EPHEMERAL: (u32, u32) = (32768, 60999);

/// The lowest port handed out: above the well-known and common service ports.
const LOWEST: u32 = 10_000;

/// A TCP and UDP port nobody listens on now, outside the kernel's ephemeral range, never
/// returned twice in one process. For servers and tools that cannot be given port 0.
///
/// # Panics
///
/// When every port outside the ephemeral range has been handed out or is taken.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = candidates(ephemeral_range());
    let span = high - low;
    // Test binaries of one run could otherwise walk the same ports in the same order.
    let start = std::process::id().wrapping_mul(7919) % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free port left in {low}..{high}");
        let port = u16::try_from(low + (start + n) % span).expect("a port below 65536");
        if is_free(port) {
            return port;
        }
    }
}

/// The kernel's ephemeral port range, `(first, last)` inclusive.
fn ephemeral_range() -> (u32, u32) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return DEFAULT_EPHEMERAL;
    };
    let mut bounds = text.split_whitespace().map(str::parse::<u32>);
    match (bounds.next(), bounds.next()) {
        (Some(Ok(first)), Some(Ok(last))) if first <= last => (first, last),
        _ => DEFAULT_EPHEMERAL,
    }
}

/// The larger of the two stretches outside the ephemeral range, as a half-open `low..high`.
fn candidates((first, last): (u32, u32)) -> (u32, u32) {
    let below = (LOWEST, first.max(LOWEST));
    let above = ((last + 1).max(LOWEST), 65536);
    let len = |(low, high): (u32, u32)| high.saturating_sub(low);
    let best = if len(below) >= len(above) { below } else { above };
    assert!(len(best) > 0, "no ports outside the ephemeral range {first}-{last}");
    best
}

/// Whether TCP and UDP can both bind `port` on every IPv4 and IPv6 address now. An IPv6
/// bind that fails for a reason other than the port being taken means the system has no
/// IPv6, and only IPv4 counts.
fn is_free(port: u16) -> bool {
    let v6 = (Ipv6Addr::UNSPECIFIED, port);
    let v4 = (Ipv4Addr::UNSPECIFIED, port);
    let free_on_v6 = |bound: std::io::Result<()>| match bound {
        Ok(()) => true,
        Err(e) => e.kind() != std::io::ErrorKind::AddrInUse,
    };
    // Each socket is closed again before the next bind, so the probes cannot collide.
    free_on_v6(TcpListener::bind(v6).map(drop))
        && TcpListener::bind(v4).is_ok()
        && free_on_v6(UdpSocket::bind(v6).map(drop))
        && UdpSocket::bind(v4).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_outside_the_ephemeral_range_bindable_and_never_repeated() {
        let (first, last) = ephemeral_range();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice: {ports:?}");
        for port in ports {
            assert!(!(first..=last).contains(&u32::from(port)), "{port} in {first}-{last}");
            assert!(u32::from(port) >= LOWEST, "{port}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port binds");
        }
    }

    #[test]
    fn a_port_in_use_is_skipped() {
        let taken = free_port();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, taken)).unwrap();
        assert!(!is_free(taken), "a TCP listener on 127.0.0.1");
        drop(listener);
        assert!(is_free(taken));
        let _socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, taken)).unwrap();
        assert!(!is_free(taken), "a UDP socket on 127.0.0.1");
    }

    #[test]
    fn the_larger_stretch_outside_the_range_is_used() {
        assert_eq!(candidates((32768, 60999)), (10_000, 32768));
        assert_eq!(candidates((1024, 40000)), (40001, 65536));
        assert_eq!(candidates((5000, 6000)), (10_000, 65536));
    }
}
