//! Callback safety: a callback URL may point only at public addresses, unless
//! an operator allow-list (`MESSAGE_QUEUE_CALLBACK_ALLOW`) names the network.
//! Literal addresses in every spelling resolvers accept (decimal, octal, hex,
//! IPv4-mapped IPv6) are checked as the address they stand for; names are
//! resolved and every address checked.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

/// How long a subscribe waits for a name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// A network written as `address/prefix` (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.trim().split_once('/').map_or((s.trim(), None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.map_or(Ok(max), |p| p.parse::<u8>().map_err(|_| format!("bad prefix in {s:?}")))?;
        if prefix > max {
            return Err(format!("prefix of {s:?} is longer than the address"));
        }
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    a[..whole] == b[..whole] && (rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0)
}

/// Which callback addresses are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<Network>,
}

impl AddressPolicy {
    /// Reads a comma-separated allow-list of networks.
    pub fn parse(list: &str) -> Result<Self, String> {
        let allow = list.split(',').filter(|s| !s.trim().is_empty()).map(Network::parse).collect::<Result<_, _>>()?;
        Ok(Self { allow })
    }

    /// Refuses a non-public address the allow-list does not name.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        match non_public(ip) {
            Some(kind) if !self.allow.iter().any(|n| n.contains(ip)) => Err(format!(
                "{ip} is a {kind} address; callbacks must go to public addresses unless MESSAGE_QUEUE_CALLBACK_ALLOW names the network"
            )),
            _ => Ok(()),
        }
    }

    /// Checks a callback host: literal addresses directly, names through DNS.
    /// A name that does not resolve now is let through; delivery checks again.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Some(ip) = literal_address(host)? {
            self.check_ip(ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let resolved = match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
            _ => return Ok(Vec::new()),
        };
        for addr in &resolved {
            self.check_ip(addr.ip()).map_err(|e| format!("{host} resolves to {e}"))?;
        }
        Ok(resolved)
    }
}

/// Resolves a name and checks every address; an error when none resolves or one is refused.
/// Connecting to exactly these addresses pins the connection to what was checked.
pub async fn resolve_checked(policy: &AddressPolicy, host: &str) -> Result<Vec<SocketAddr>, String> {
    let resolved = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0)))
        .await
        .map_err(|_| format!("resolving {host} timed out"))?
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect::<Vec<_>>();
    if resolved.is_empty() {
        return Err(format!("{host} has no address"));
    }
    for addr in &resolved {
        policy.check_ip(addr.ip()).map_err(|e| format!("{host} resolves to {e}"))?;
    }
    Ok(resolved)
}

/// The address a host stands for when it is written as one, in any spelling resolvers accept.
pub fn literal_address(host: &str) -> Result<Option<IpAddr>, String> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| Some(IpAddr::V6(ip)))
            .map_err(|_| format!("{host} is not an IPv6 address"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let numeric = host.split('.').all(|p| {
        p.starts_with(|c: char| c.is_ascii_digit()) && p.chars().all(|c| c.is_ascii_hexdigit() || c == 'x' || c == 'X')
    });
    if !numeric {
        return Ok(None);
    }
    inet_aton(host)
        .map(|ip| Some(IpAddr::V4(ip)))
        .ok_or_else(|| format!("{host} is neither a name nor a valid address"))
}

/// The classic `inet_aton` forms: 1 to 4 parts, each decimal, octal (`0` prefix) or hex (`0x`).
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = s
        .split('.')
        .map(|p| match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
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

/// What kind of non-public address this is, if it is one.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "unspecified",
        (127, ..) => "loopback",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (CGNAT)",
        (192, 0, 0) => "protocol-assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(&ip) {
        return non_public_v4(v4).or(Some("IPv4-embedding"));
    }
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        0xfc00..=0xfdff => "unique-local",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x2001 if s[1] == 0 => "Teredo",
        0x0000 => "reserved",
        _ => return None,
    })
}

/// The IPv4 address inside IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms.
fn embedded_v4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] => Some(tail),
        [0, 0, 0, 0, 0, 0, ..] if !ip.is_loopback() && !ip.is_unspecified() => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_private_address_is_refused() {
        let policy = AddressPolicy::default();
        for host in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.7",
            "198.18.0.1",
            "[::1]",
            "[::]",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[::127.0.0.1]",
            "[64:ff9b::a00:1]",
            "[2002:7f00:1::]",
            "[fd00::1]",
            "[fe80::1]",
            "[ff02::1]",
            "[2001:db8::1]",
            "2130706433",
            "0177.0.0.1",
            "0x7f.1",
            "127.1",
            "017700000001",
        ] {
            let ip = literal_address(host).unwrap().unwrap_or_else(|| panic!("{host} is a literal"));
            assert!(policy.check_ip(ip).is_err(), "{host} ({ip}) was allowed");
        }
    }

    #[test]
    fn public_addresses_and_names_pass() {
        let policy = AddressPolicy::default();
        for host in ["93.184.216.34", "[2606:2800:220:1::1]", "8.8.8.8"] {
            assert!(policy.check_ip(literal_address(host).unwrap().unwrap()).is_ok(), "{host}");
        }
        for name in ["api.delivery.com", "add.be", "1password.com", "localhost"] {
            assert_eq!(literal_address(name), Ok(None), "{name}");
        }
        assert!(literal_address("1.2.3.4.5").is_err());
        assert_eq!(literal_address("0x1g.example"), Ok(None));
    }

    #[test]
    fn the_allow_list_names_networks() {
        let policy = AddressPolicy::parse("127.0.0.0/8, ::1, 10.1.0.0/16").unwrap();
        assert!(policy.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("::1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("10.1.200.3".parse().unwrap()).is_ok());
        assert!(policy.check_ip("10.2.0.1".parse().unwrap()).is_err());
        assert!(AddressPolicy::parse("10.0.0.0/33").is_err());
        assert!(AddressPolicy::parse("nonsense").is_err());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused() {
        let err = AddressPolicy::default().check_host("localhost", 80).await.unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(AddressPolicy::parse("127.0.0.0/8").unwrap().check_host("localhost", 80).await.is_ok());
    }
}
