//! What a callback host stands for: an address written in any spelling, a
//! localhost name, or a name to resolve. The subscribe-time check and the
//! delivery connector both read hosts here, so they cannot disagree.

use std::{
    future::Future,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
};

/// Addresses a name resolves to.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Name resolution. The system's in production; tests point names anywhere without DNS.
pub trait Resolve: Send + Sync + std::fmt::Debug {
    fn resolve(&self, name: &str, port: u16) -> Resolving;
}

/// The operating system's resolver (`getaddrinfo`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: &str, port: u16) -> Resolving {
        let name = name.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((name.as_str(), port)).await?.collect()) })
    }
}

/// Fixed answers for names, for tests: no DNS, no traffic. Unknown names do not resolve.
#[cfg(test)]
#[derive(Debug, Default, Clone)]
pub(crate) struct StaticResolver(pub(crate) Vec<(&'static str, IpAddr)>);

#[cfg(test)]
impl Resolve for StaticResolver {
    fn resolve(&self, name: &str, port: u16) -> Resolving {
        let found: Vec<SocketAddr> =
            self.0.iter().filter(|(n, _)| *n == name).map(|(_, ip)| SocketAddr::new(*ip, port)).collect();
        let name = name.to_owned();
        Box::pin(async move {
            if found.is_empty() {
                return Err(io::Error::new(io::ErrorKind::NotFound, format!("{name} is not known")));
            }
            Ok(found)
        })
    }
}

/// A host as written in a URL (IPv6 in brackets), read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Written as an address, in any spelling.
    Address(IpAddr),
    /// `localhost` or a name under it (RFC 6761): loopback by definition, never looked up.
    Localhost,
    /// A name to resolve.
    Name(String),
}

impl Host {
    /// Reads a host; an error for a host that is neither a name nor a valid address.
    pub fn parse(host: &str) -> Result<Self, String> {
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return inner.parse::<Ipv6Addr>().map(|ip| Self::Address(ip.into())).map_err(|_| {
                format!("{host} is not an IPv6 address (zone identifiers and embedded IPv4 in brackets are refused)")
            });
        }
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) {
            return Err(format!("{host:?} is not a host name or address"));
        }
        // One trailing dot is the root of the name space; it makes no address a name.
        let bare = host.strip_suffix('.').unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Self::Address(ip));
        }
        // As URL parsers and inet_aton do: a host whose last label is a number is an IPv4 address.
        if bare.rsplit('.').next().is_some_and(is_number) {
            return inet_aton(bare)
                .map(|ip| Self::Address(ip.into()))
                .ok_or_else(|| format!("{host} ends in a number but is not a valid IPv4 address"));
        }
        let lower = bare.to_ascii_lowercase();
        if lower == "localhost" || lower.ends_with(".localhost") {
            return Ok(Self::Localhost);
        }
        Ok(Self::Name(bare.to_owned()))
    }
}

/// Why a host has no address to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    /// The host or one of its addresses is not allowed.
    Refused(String),
    /// The name did not resolve (now).
    Unresolved(String),
}

/// Every address `host` stands for on `port`: the address itself, loopback for
/// localhost names, or what the resolver answers. Unchecked: callers apply the policy.
pub async fn addresses(resolver: &dyn Resolve, host: &str, port: u16) -> Result<Vec<SocketAddr>, Unreachable> {
    match Host::parse(host).map_err(Unreachable::Refused)? {
        Host::Address(ip) => Ok(vec![SocketAddr::new(ip, port)]),
        Host::Localhost => Ok(vec![
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
        ]),
        Host::Name(name) => match resolver.resolve(&name, port).await {
            Ok(addrs) if !addrs.is_empty() => Ok(addrs),
            Ok(_) => Err(Unreachable::Unresolved(format!("{name} has no address"))),
            Err(e) => Err(Unreachable::Unresolved(format!("cannot resolve {name}: {e}"))),
        },
    }
}

/// A decimal number, or `0x` followed by hex digits (none is zero), as URL parsers read IPv4 parts.
fn is_number(label: &str) -> bool {
    match label.strip_prefix("0x").or_else(|| label.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// The classic `inet_aton` forms: 1 to 4 parts, each decimal, octal (`0` prefix) or hex (`0x`).
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = s
        .split('.')
        .map(|p| match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            Some("") => Some(0),
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None if p.len() > 1 && p.starts_with('0') => u64::from_str_radix(&p[1..], 8).ok(),
            None => p.parse().ok(),
        })
        .collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|&p| p > 255) || *last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let value = head.iter().enumerate().fold(*last, |acc, (i, &p)| acc | p << (24 - 8 * i));
    Some(Ipv4Addr::from(u32::try_from(value).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(host: &str) -> IpAddr {
        match Host::parse(host) {
            Ok(Host::Address(ip)) => ip,
            other => panic!("{host} read as {other:?}"),
        }
    }

    #[test]
    fn addresses_in_every_spelling() {
        for (host, want) in [
            ("127.0.0.1", "127.0.0.1"),
            ("127.0.0.1.", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.1.", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0x7f000001.", "127.0.0.1"),
            ("0X7F.0.0.1", "127.0.0.1"),
            ("2130706433.", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0177.1.", "127.0.0.1"),
            ("0x7f.0.1", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("0.", "0.0.0.0"),
            ("0x", "0.0.0.0"),
            ("0x.0x.0x.0x", "0.0.0.0"),
            ("10.1", "10.0.0.1"),
            ("0xa9fea9fe", "169.254.169.254"),
            ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
            ("[::1]", "::1"),
        ] {
            assert_eq!(address(host), want.parse::<IpAddr>().unwrap(), "{host}");
        }
    }

    #[test]
    fn names_localhost_and_nonsense() {
        for name in ["api.delivery.com", "api.delivery.com.", "add.be", "1password.com", "0x1g.example", "x.0xg"] {
            assert!(matches!(Host::parse(name), Ok(Host::Name(_))), "{name}");
        }
        for name in ["localhost", "localhost.", "LOCALHOST", "app.localhost", "app.localhost."] {
            assert_eq!(Host::parse(name), Ok(Host::Localhost), "{name}");
        }
        for bad in ["1.2.3.4.5", "256.1.1.1", "foo.127", "1.2.3.09", "0x100000000", "", "a%2e", "a b", "[127.0.0.1]"] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
        assert!(Host::parse("[fe80::1%25eth0]").is_err());
    }
}
