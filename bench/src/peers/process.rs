//! The server process behind a peer's address, found by the port it listens on,
//! for its resident memory and CPU time.

use std::fs;

/// The process listening on the port of `url` (`scheme://user:pass@host:port/path` or `host:port`).
pub(super) fn listening(url: &str) -> Option<u32> {
    let port = port_of(url)?;
    let inodes = listening_inodes(port);
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let mut fds = fs::read_dir(entry.path().join("fd")).ok()?.flatten();
        fds.any(|fd| fs::read_link(fd.path()).is_ok_and(|l| inodes.iter().any(|i| l.to_str() == Some(i))))
            .then_some(pid)
    })
}

pub(super) fn rss(pid: u32) -> Option<u64> {
    crate::server::rss_of(&pid.to_string())
}

fn port_of(url: &str) -> Option<u16> {
    let rest = url.rsplit("://").next()?;
    let host_port = rest.rsplit('@').next()?.split('/').next()?;
    host_port.rsplit(':').next()?.parse().ok()
}

/// `socket:[inode]` of every socket listening on `port`, as `/proc/PID/fd` links name them.
fn listening_inodes(port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
                    (local_port == port && fields.get(3) == Some(&LISTEN))
                        .then(|| format!("socket:[{}]", fields.get(9).unwrap_or(&"")))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::port_of;

    #[test]
    fn ports_come_from_either_form_of_address() {
        assert_eq!(port_of("amqp://guest:guest@127.0.0.1:5672/%2f"), Some(5672));
        assert_eq!(port_of("nats://127.0.0.1:4222"), Some(4222));
        assert_eq!(port_of("127.0.0.1:4223"), Some(4223));
    }
}
