use super::*;
use crate::callback::host::StaticResolver;

/// Hosts that stand for a non-public address, in the spellings URL parsers, `inet_aton`
/// and resolvers accept (RFC 6761 localhost names included).
pub(crate) const NON_PUBLIC_HOSTS: &[&str] = &[
    "127.0.0.1",
    "127.0.0.1.",
    "127.1",
    "127.1.",
    "127.0.1",
    "0x7f000001",
    "0x7f000001.",
    "0X7F000001",
    "2130706433",
    "2130706433.",
    "0177.0.0.1",
    "0177.0.0.1.",
    "0177.1",
    "0x7f.1",
    "0x7f.0.0.1.",
    "0X7F.0X0.0X0.0X1",
    "017700000001",
    "127.255.255.254",
    "0",
    "0.",
    "0x",
    "00",
    "0.0.0.0",
    "0.0.0.0.",
    "10.1",
    "10.0.0.1.",
    "012.0.0.1",
    "0xa000001",
    "167772161.",
    "172.16.1",
    "0xac100001",
    "192.168.1",
    "192.168.1.1.",
    "0xc0a80101",
    "3232235777",
    "169.254.169.254",
    "169.254.169.254.",
    "0xa9fea9fe",
    "2852039166",
    "0251.0376.0251.0376",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "192.0.2.7",
    "198.18.0.1",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::FFFF:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::ffff:0:127.0.0.1]",
    "[::ffff:a9fe:a9fe]",
    "[::ffff:10.0.0.1]",
    "[::127.0.0.1]",
    "[::7f00:1]",
    "[64:ff9b::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::a00:1]",
    "[64:ff9b:1::a00:1]",
    "[2002:7f00:1::]",
    "[2002:a00:1::1]",
    "[2002:c0a8:101::]",
    "[2001::1]",
    "[fd00::1]",
    "[fc00::]",
    "[fe80::1]",
    "[fec0::1]",
    "[ff02::1]",
    "[2001:db8::1]",
    "[100::1]",
    "localhost",
    "localhost.",
    "LocalHost",
    "hooks.localhost",
    "hooks.localhost.",
];

/// Hosts that are neither a name nor a valid address.
pub(crate) const MALFORMED_HOSTS: &[&str] =
    &["1.2.3.4.5", "256.0.0.1", "foo.127", "1.2.3.09", "0x100000000", "[127.0.0.1]", "[fe80::1%25eth0]", "a%2eb"];

#[tokio::test]
async fn every_spelling_of_a_non_public_address_is_refused() {
    let policy = AddressPolicy::default();
    let no_dns = StaticResolver::default();
    for host in NON_PUBLIC_HOSTS.iter().chain(MALFORMED_HOSTS) {
        assert!(policy.check_host(&no_dns, host, 80).await.is_err(), "{host} was allowed");
    }
}

#[tokio::test]
async fn public_addresses_pass_and_unresolved_names_wait_for_delivery() {
    let policy = AddressPolicy::default();
    let no_dns = StaticResolver::default();
    for host in ["93.184.216.34", "93.184.216.34.", "0x08080808", "134744072", "[2606:2800:220:1::1]"] {
        assert_eq!(policy.check_host(&no_dns, host, 80).await, Ok(()), "{host}");
    }
    assert_eq!(policy.check_host(&no_dns, "hooks.example.com", 80).await, Ok(()));
    let private = StaticResolver(vec![("hooks.example.com", "10.0.0.7".parse().unwrap())]);
    let err = policy.check_host(&private, "hooks.example.com", 80).await.unwrap_err();
    assert!(err.contains("private"), "{err}");
}

#[test]
fn a_name_is_refused_only_when_no_address_is_allowed() {
    let policy = AddressPolicy::default();
    let addrs: Vec<SocketAddr> = vec!["10.0.0.1:80".parse().unwrap(), "93.184.216.34:80".parse().unwrap()];
    assert_eq!(policy.allowed("mixed.example", &addrs), Ok(vec![addrs[1]]));
    assert!(policy.allowed("private.example", &addrs[..1]).unwrap_err().contains("10.0.0.1 is a private"));
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
async fn localhost_names_are_loopback_without_a_lookup() {
    let allowed = AddressPolicy::parse("127.0.0.0/8").unwrap();
    assert_eq!(allowed.check_host(&StaticResolver::default(), "localhost.", 80).await, Ok(()));
    let err = AddressPolicy::default().check_host(&SystemResolver, "localhost", 80).await.unwrap_err();
    assert!(err.contains("loopback"), "{err}");
}
