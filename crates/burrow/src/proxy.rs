//! Reverse proxies: which peers are trusted (`--trusted-proxies`), and what their headers
//! say about the client (`--client-ip-mode`): its IP address, and the scheme and host it
//! used. The core layer resolves this once per request into [`ClientIp`] and, when a
//! trusted proxy said how the site was reached, [`Forwarded`].
//!
//! A header is only believed from a trusted peer, and only as far as trusted hops go: as
//! Rails' `RemoteIp` middleware does, `X-Forwarded-For` (and `Forwarded: for=`) is read
//! from the right, skipping the addresses of trusted proxies; the first address that is
//! not trusted is the client. Everything left of it was written by the client or by
//! proxies nobody vouches for. With no trusted proxy (the default) no header is read at
//! all: the client is the TCP peer.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::request::{ClientIp, Forwarded};

/// Hops of `X-Forwarded-For` or `Forwarded` examined at most: a long chain of trusted
/// proxies is a misconfiguration, and a header of thousands of entries costs no more than
/// this.
const MAX_HOPS: usize = 16;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// `--client-ip-mode`: where the client's address comes from when the peer is trusted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientIpMode {
    /// The TCP peer, always.
    #[default]
    RemoteAddr,
    /// `X-Forwarded-For` (nginx `$proxy_add_x_forwarded_for`, most load balancers), with
    /// `X-Forwarded-Proto` and `X-Forwarded-Host`.
    XForwardedFor,
    /// `X-Real-IP` (nginx `$remote_addr`), with `X-Forwarded-Proto` and `X-Forwarded-Host`.
    XRealIp,
    /// RFC 7239 `Forwarded: for=…;proto=…;host=…`.
    Forwarded,
}

impl FromStr for ClientIpMode {
    type Err = String;

    fn from_str(raw: &str) -> Result<ClientIpMode, String> {
        match raw {
            "remote-addr" => Ok(ClientIpMode::RemoteAddr),
            "x-forwarded-for" => Ok(ClientIpMode::XForwardedFor),
            "x-real-ip" => Ok(ClientIpMode::XRealIp),
            "forwarded" => Ok(ClientIpMode::Forwarded),
            _ => Err("expected remote-addr, x-forwarded-for, x-real-ip or forwarded".into()),
        }
    }
}

impl ClientIpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientIpMode::RemoteAddr => "remote-addr",
            ClientIpMode::XForwardedFor => "x-forwarded-for",
            ClientIpMode::XRealIp => "x-real-ip",
            ClientIpMode::Forwarded => "forwarded",
        }
    }
}

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address (`/32`, `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The prefix length: 0 for a block holding every address.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_bits(u32::from(net).into(), 32, self.prefix)
                    == mask_bits(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_bits(net.into(), 128, self.prefix) == mask_bits(ip.into(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn mask_bits(bits: u128, width: u32, prefix: u8) -> u128 {
    let prefix = u32::from(prefix);
    if prefix == 0 { 0 } else { bits >> (width - prefix) }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(raw: &str) -> Result<Cidr, String> {
        let raw = raw.trim();
        let bad = || format!("'{raw}' is not an IP address or CIDR block such as 10.0.0.0/8");
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let written: IpAddr = address.parse().map_err(|_| bad())?;
        let width = if written.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(bad)?,
            None => width,
        };
        // Peers are matched as canonical addresses: `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
        let network = written.to_canonical();
        if network.is_ipv4() && written.is_ipv6() {
            let prefix = prefix.checked_sub(96).ok_or_else(bad)?;
            return Ok(Cidr { network, prefix });
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses `--trusted-proxies`: addresses and CIDR blocks, separated by commas.
pub(crate) fn parse_cidrs(raw: &str) -> Result<Vec<Cidr>, String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect()
}

/// How to find the client behind the proxies (from the core settings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxies {
    pub mode: ClientIpMode,
    pub trusted: Vec<Cidr>,
}

impl Proxies {
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client of a request from `peer` with `headers`, and what a trusted proxy said
    /// about the scheme and host (`None` when the peer is not trusted or said nothing).
    pub(crate) fn resolve(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> (ClientIp, Option<Forwarded>) {
        let peer = peer.map(|ip| ip.to_canonical());
        // Without trusted proxies (the default), nothing is parsed.
        let Some(peer_ip) = peer.filter(|ip| !self.trusted.is_empty() && self.is_trusted(*ip))
        else {
            return (ClientIp(peer), None);
        };
        match self.mode {
            ClientIpMode::RemoteAddr => (ClientIp(peer), x_forwarded(headers)),
            ClientIpMode::XRealIp => {
                let ip = single(headers, &X_REAL_IP).and_then(parse_node).unwrap_or(peer_ip);
                (ClientIp(Some(ip)), x_forwarded(headers))
            }
            ClientIpMode::XForwardedFor => {
                let hops = values(headers, &X_FORWARDED_FOR).rev().map(parse_node);
                let (ip, _) = self.walk(peer_ip, hops);
                (ClientIp(Some(ip)), x_forwarded(headers))
            }
            ClientIpMode::Forwarded => {
                let elements: Vec<&str> =
                    values(headers, &header::FORWARDED).rev().take(MAX_HOPS + 1).collect();
                let hops = elements.iter().map(|e| pair(e, "for").and_then(parse_node));
                let (ip, stop) = self.walk(peer_ip, hops);
                // The scheme and host the outermost believed proxy saw: the client's
                // element, or failing that the nearest one right of it that says.
                let believed = &elements[..stop.min(elements.len())];
                let https = believed.iter().rev().find_map(|e| pair(e, "proto").and_then(proto));
                let host = believed.iter().rev().find_map(|e| pair(e, "host").and_then(host));
                (ClientIp(Some(ip)), forwarded(https, host))
            }
        }
    }

    /// Walks hops from the nearest (the trusted peer's own statement) outwards: the first
    /// address that is not a trusted proxy is the client. A hop that is not an address
    /// (`unknown`, garbage) ends the walk at the last address believed, as does running out
    /// of hops (every hop trusted: the leftmost is the client) or [`MAX_HOPS`]. Also
    /// returns how many hops were looked at up to and including the client's.
    fn walk(&self, peer: IpAddr, hops: impl Iterator<Item = Option<IpAddr>>) -> (IpAddr, usize) {
        let mut client = peer;
        let mut seen = 0;
        for hop in hops.take(MAX_HOPS) {
            let Some(ip) = hop else { break };
            client = ip;
            seen += 1;
            if !self.is_trusted(ip) {
                break;
            }
        }
        (client, seen)
    }
}

/// Every comma-separated entry of every `name` header, in order.
fn values<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl DoubleEndedIterator<Item = &'a str> + use<'a> {
    let all: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    all.into_iter().flat_map(|v| v.split(',')).map(str::trim)
}

/// The value of a header that must appear once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut all = headers.get_all(name).iter();
    let value = all.next()?;
    all.next().is_none().then(|| value.to_str().ok()).flatten().map(str::trim)
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]:4711`,
/// `192.0.2.1:4711`, `"[2001:db8::1]"` (quoted in `Forwarded`).
fn parse_node(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let address = match raw.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => raw.rsplit_once(':').filter(|(a, _)| !a.contains(':'))?.0,
    };
    address.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The value of `name=` in one `Forwarded` element (`for=…;proto=…`), unquoted.
fn pair<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().trim_matches('"'))
    })
}

/// `X-Forwarded-Proto` and `X-Forwarded-Host`: the last value of each, written by the
/// nearest (trusted) proxy.
fn x_forwarded(headers: &HeaderMap) -> Option<Forwarded> {
    let https = values(headers, &X_FORWARDED_PROTO).next_back().and_then(proto);
    let host = values(headers, &X_FORWARDED_HOST).next_back().and_then(host);
    forwarded(https, host)
}

fn forwarded(https: Option<bool>, host: Option<HeaderValue>) -> Option<Forwarded> {
    (https.is_some() || host.is_some()).then_some(Forwarded { https, host })
}

/// `Some(true)` for https, `Some(false)` for http; anything else is ignored.
fn proto(raw: &str) -> Option<bool> {
    if raw.eq_ignore_ascii_case("https") {
        Some(true)
    } else if raw.eq_ignore_ascii_case("http") {
        Some(false)
    } else {
        None
    }
}

/// A host as a Host header carries it (`example.com`, `example.com:8443`, `[::1]:8080`);
/// anything else is ignored.
fn host(raw: &str) -> Option<HeaderValue> {
    let fine = !raw.is_empty()
        && raw.len() <= 255
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    fine.then(|| HeaderValue::from_str(raw).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(mode: ClientIpMode, trusted: &str) -> Proxies {
        Proxies { mode, trusted: parse_cidrs(trusted).unwrap() }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    fn client(p: &Proxies, peer: &str, pairs: &[(&str, &str)]) -> IpAddr {
        p.resolve(Some(ip(peer)), &headers(pairs)).0.0.unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let all = parse_cidrs("10.0.0.0/8, 192.0.2.7,fd00::/8 , ::1").unwrap();
        let p = Proxies { mode: ClientIpMode::XForwardedFor, trusted: all };
        for inside in ["10.1.2.3", "192.0.2.7", "fd12::1", "::1", "::ffff:10.9.9.9"] {
            assert!(p.is_trusted(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.0.2.8", "fe80::1", "127.0.0.1", "::2"] {
            assert!(!p.is_trusted(ip(outside)), "{outside}");
        }
        assert!(parse_cidrs("0.0.0.0/0").unwrap()[0].contains(ip("203.0.113.9")));
        assert!(!parse_cidrs("0.0.0.0/0").unwrap()[0].contains(ip("2001:db8::1")));
        assert_eq!(parse_cidrs("").unwrap(), vec![]);
        for bad in ["10.0.0.0/33", "::/129", "example.com", "10.0.0/8", "10.0.0.0/", "1.2.3.4/-1"] {
            let err = parse_cidrs(bad).unwrap_err();
            assert!(err.contains("CIDR"), "{bad}: {err}");
        }
        assert!(parse_cidrs("::ffff:10.0.0.0/8").unwrap_err().contains("CIDR"));
        assert_eq!(parse_cidrs("::ffff:10.0.0.0/104").unwrap(), parse_cidrs("10.0.0.0/8").unwrap());
        assert_eq!(parse_cidrs("10.0.0.0/8").unwrap()[0].to_string(), "10.0.0.0/8");
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9;proto=https"),
            ("x-forwarded-proto", "https"),
        ];
        for mode in [
            ClientIpMode::RemoteAddr,
            ClientIpMode::XForwardedFor,
            ClientIpMode::XRealIp,
            ClientIpMode::Forwarded,
        ] {
            // No trusted proxy at all, and a peer that is not one of them.
            for p in [proxies(mode, ""), proxies(mode, "10.0.0.0/8")] {
                let (client, forwarded) = p.resolve(Some(ip("127.0.0.1")), &headers(&spoofed));
                assert_eq!(client.0, Some(ip("127.0.0.1")), "{mode:?}");
                assert!(forwarded.is_none(), "{mode:?}");
            }
        }
        // No peer (a request made in-process): no client address, and nothing believed.
        let p = proxies(ClientIpMode::XForwardedFor, "0.0.0.0/0");
        assert_eq!(p.resolve(None, &headers(&spoofed)).0, ClientIp(None));
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right_over_trusted_hops() {
        let p = proxies(ClientIpMode::XForwardedFor, "127.0.0.1, 10.0.0.0/8, fd00::/8");
        let xff = |value: &str| client(&p, "127.0.0.1", &[("x-forwarded-for", value)]);
        assert_eq!(xff("203.0.113.9"), ip("203.0.113.9"));
        // The client prepended a lie; the trusted proxy appended the real peer.
        assert_eq!(xff("1.1.1.1, 203.0.113.9"), ip("203.0.113.9"));
        // Two trusted hops are skipped.
        assert_eq!(xff("1.1.1.1, 203.0.113.9, 10.0.0.2, 10.0.0.3"), ip("203.0.113.9"));
        // Every hop trusted: the leftmost.
        assert_eq!(xff("10.0.0.5, 10.0.0.6"), ip("10.0.0.5"));
        // Several header lines are one list, in order.
        let lines = [("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.9, 10.0.0.2")];
        assert_eq!(client(&p, "127.0.0.1", &lines), ip("203.0.113.9"));
        // IPv6, bracketed or with ports; IPv4-mapped addresses count as IPv4.
        assert_eq!(xff("2001:db8::7, fd00::1"), ip("2001:db8::7"));
        assert_eq!(xff("[2001:db8::7]:4711"), ip("2001:db8::7"));
        assert_eq!(xff("203.0.113.9:4711"), ip("203.0.113.9"));
        assert_eq!(xff("::ffff:10.0.0.9, ::ffff:203.0.113.9"), ip("203.0.113.9"));
        assert_eq!(client(&p, "::ffff:127.0.0.1", &[("x-forwarded-for", "192.0.2.1")]), {
            ip("192.0.2.1")
        });
        // Garbage ends the walk at the last address believed.
        assert_eq!(xff("203.0.113.9, unknown, 10.0.0.2"), ip("10.0.0.2"));
        assert_eq!(xff("not an address"), ip("127.0.0.1"));
        assert_eq!(xff(""), ip("127.0.0.1"));
        assert_eq!(xff("203.0.113.9,,10.0.0.2"), ip("10.0.0.2"));
        assert_eq!(xff("1.2.3.4.5"), ip("127.0.0.1"));
        // No header: the peer.
        assert_eq!(client(&p, "10.0.0.2", &[]), ip("10.0.0.2"));
        // Too many hops: the walk stops after MAX_HOPS trusted ones.
        let many = vec!["10.0.0.1"; 1000].join(",");
        assert_eq!(xff(&format!("203.0.113.9,{many}")), ip("10.0.0.1"));
    }

    #[test]
    fn x_real_ip_is_one_address_from_a_trusted_peer() {
        let p = proxies(ClientIpMode::XRealIp, "127.0.0.1/32");
        assert_eq!(client(&p, "127.0.0.1", &[("x-real-ip", "203.0.113.9")]), ip("203.0.113.9"));
        assert_eq!(client(&p, "127.0.0.1", &[("x-real-ip", "[2001:db8::1]")]), ip("2001:db8::1"));
        assert_eq!(client(&p, "127.0.0.1", &[("x-real-ip", "garbage")]), ip("127.0.0.1"));
        let twice = [("x-real-ip", "203.0.113.9"), ("x-real-ip", "198.51.100.1")];
        assert_eq!(client(&p, "127.0.0.1", &twice), ip("127.0.0.1"));
        // X-Forwarded-For is not read in this mode.
        assert_eq!(client(&p, "127.0.0.1", &[("x-forwarded-for", "203.0.113.9")]), {
            ip("127.0.0.1")
        });
    }

    #[test]
    fn forwarded_gives_the_client_and_what_its_proxy_saw() {
        let p = proxies(ClientIpMode::Forwarded, "127.0.0.1, 10.0.0.0/8");
        let resolve =
            |value: &str| p.resolve(Some(ip("127.0.0.1")), &headers(&[("forwarded", value)]));
        let (c, f) = resolve("for=192.0.2.60;proto=https;host=example.com;by=10.0.0.1");
        assert_eq!(c.0, Some(ip("192.0.2.60")));
        let f = f.unwrap();
        assert_eq!((f.https(), f.host()), (Some(true), Some("example.com")));
        let (c, f) = resolve(
            "for=1.1.1.1;proto=http;host=evil.example, For=\"[2001:db8:cafe::17]:4711\";\
             Proto=HTTPS;Host=\"example.com:8443\", for=10.0.0.2;proto=http;host=internal",
        );
        assert_eq!(c.0, Some(ip("2001:db8:cafe::17")));
        let f = f.unwrap();
        assert_eq!((f.https(), f.host()), (Some(true), Some("example.com:8443")), "the client's");
        // An obfuscated or unknown node ends the walk; the nearest proxy's word is kept.
        let (c, f) = resolve("for=192.0.2.60, for=_hidden;proto=https, for=10.0.0.2;proto=http");
        assert_eq!(c.0, Some(ip("10.0.0.2")));
        assert_eq!(f.unwrap().https(), Some(false));
        let (c, f) = resolve("for=unknown");
        assert_eq!((c.0, f.is_none()), (Some(ip("127.0.0.1")), true));
        // A host that is no host is ignored.
        let (_, f) = resolve("for=192.0.2.60;host=\"a b/c\";proto=ftp");
        assert!(f.is_none());
        // X-Forwarded-Proto is not read in this mode.
        let x = [("x-forwarded-proto", "https"), ("forwarded", "for=192.0.2.60")];
        assert!(p.resolve(Some(ip("127.0.0.1")), &headers(&x)).1.is_none());
    }

    #[test]
    fn proto_and_host_come_from_trusted_peers_only() {
        let p = proxies(ClientIpMode::RemoteAddr, "127.0.0.1");
        let pairs = [
            ("x-forwarded-proto", "http, https"),
            ("x-forwarded-host", "example.com"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        let (c, f) = p.resolve(Some(ip("127.0.0.1")), &headers(&pairs));
        assert_eq!(c.0, Some(ip("127.0.0.1")), "remote-addr reads no address header");
        let f = f.unwrap();
        assert_eq!((f.https(), f.host()), (Some(true), Some("example.com")));
        let (_, f) = p.resolve(Some(ip("192.0.2.1")), &headers(&pairs));
        assert!(f.is_none());
        let odd = [("x-forwarded-proto", "gopher"), ("x-forwarded-host", "evil.example/path")];
        assert!(p.resolve(Some(ip("127.0.0.1")), &headers(&odd)).1.is_none());
    }
}
