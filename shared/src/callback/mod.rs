//! Callback safety: a callback may reach only public addresses, unless an
//! operator allow-list (`MESSAGE_QUEUE_CALLBACK_ALLOW`) names the network.
//! [`host`] reads what a host stands for; the policy here judges addresses.
//! Deliveries apply it to the address each socket is opened to (`dispatch::connect`).

mod host;
mod url;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

#[cfg(test)]
pub(crate) use host::StaticResolver;
pub use host::{Host, Resolve, Resolving, SystemResolver, Unreachable, addresses};
pub use url::CallbackUrl;

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

    /// The addresses of `host` the policy allows; an error naming a refusal when it allows none.
    pub fn allowed(&self, host: &str, addrs: &[SocketAddr]) -> Result<Vec<SocketAddr>, String> {
        let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
            addrs.iter().partition(|a| self.check_ip(a.ip()).is_ok());
        match (allowed.is_empty(), refused.first()) {
            (true, Some(first)) => Err(format!("{host} stands for {}", self.check_ip(first.ip()).unwrap_err())),
            (true, None) => Err(format!("{host} has no address")),
            (false, _) => Ok(allowed),
        }
    }

    /// The subscribe-time check: a host refused now is a 400. A name that does not
    /// resolve now is let through; the connector checks again at every delivery.
    pub async fn check_host(&self, resolver: &dyn Resolve, host: &str, port: u16) -> Result<(), String> {
        let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, host::addresses(resolver, host, port)).await;
        match lookup {
            Ok(Ok(addrs)) => self.allowed(host, &addrs).map(drop),
            Ok(Err(Unreachable::Refused(e))) => Err(e),
            Ok(Err(Unreachable::Unresolved(_))) | Err(_) => Ok(()),
        }
    }
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
        0x2001 if s[1] == 2 && s[2] == 0 => "benchmarking",
        0x2001 if (0x10..=0x2f).contains(&s[1]) => "ORCHID",
        0x0064 if s[1] == 0xff9b && s[2] == 1 => "NAT64 local-use",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only",
        0x0000 => "reserved",
        _ => return None,
    })
}

/// The IPv4 address inside IPv4-mapped, -translated and -compatible, NAT64 and 6to4 forms.
fn embedded_v4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0xffff, 0, ..] => Some(tail),
        [0, 0, 0, 0, 0, 0, ..] if !ip.is_loopback() && !ip.is_unspecified() => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests;
