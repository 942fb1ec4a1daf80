use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;
use crate::{
    callback::{
        CallbackUrl, StaticResolver,
        tests::{MALFORMED_HOSTS, NON_PUBLIC_HOSTS},
    },
    domain::{QueueName, RoutingPattern},
    ports::RetryPolicy,
};

#[test]
fn backoff_multiplies_from_the_first_delay() {
    assert_eq!(backoff(1000, 2.0, 1, 0.0), Duration::from_millis(1000));
    assert_eq!(backoff(1000, 2.0, 2, 0.0), Duration::from_millis(2000));
    assert_eq!(backoff(1000, 2.0, 3, 0.0), Duration::from_millis(4000));
    assert_eq!(backoff(1000, 2.0, 3, 1.0), Duration::from_millis(4400));
    assert_eq!(backoff(0, 2.0, 5, 0.5), Duration::ZERO);
}

/// A receiver on 127.0.0.1 (and ::1 on the same port when it can) that answers 200
/// to every connection and counts them.
struct Receiver {
    port: u16,
    connections: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start() -> Self {
        let v4 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = v4.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![tokio::spawn(answer(v4, connections.clone()))];
        if let Ok(v6) = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port))).await {
            tasks.push(tokio::spawn(answer(v6, connections.clone())));
        }
        Self { port, connections, tasks }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

async fn answer(listener: TcpListener, connections: Arc<AtomicUsize>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        connections.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        });
    }
}

fn subscription(url: CallbackUrl) -> Subscription {
    Subscription {
        id: "sub_test".into(),
        queue_id: 1,
        queue: QueueName::parse("q").unwrap(),
        routing_key: RoutingPattern::parse("#").unwrap(),
        callback_url: url,
        headers: Default::default(),
        retry_policy: RetryPolicy { max_retries: 0, retry_delay: 0, backoff_multiplier: 1.0 },
        dead_letter_queue: None,
        prefetch_count: 1,
        match_headers: None,
        ordered: false,
        paused_reason: None,
        secret: signature::new_secret(),
        status: crate::ports::SubscriptionStatus::Active,
        owner: None,
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    }
}

fn record() -> Record {
    Record {
        key: None,
        routing_key: None,
        content: Content::Json(r#"{"n":1}"#.into()),
        headers: Default::default(),
        priority: None,
        ttl_ms: 60_000,
        persistent: true,
        published_at: Timestamp::now(),
    }
}

/// A delivery attempt to `host`; `None` when no subscription could name it (refused at subscribe).
async fn attempt(callbacks: &Callbacks, host: &str, port: u16) -> Option<Attempt> {
    let id = MessageId { queue_id: 1, partition: 0, offset: 0 };
    let url = CallbackUrl::parse(&format!("http://{host}:{port}/hook")).ok()?;
    Some(callbacks.deliver(&subscription(url), id, &record(), 1, Timestamp::now()).await)
}

fn callbacks(allow: &str, resolver: StaticResolver) -> Callbacks {
    Callbacks::new(AddressPolicy::parse(allow).unwrap(), Arc::new(resolver), Duration::from_secs(5))
}

/// Spellings of loopback that reach the receiver when the policy allows them.
const LOOPBACK_SPELLINGS: &[&str] =
    &["127.0.0.1.", "127.1.", "0x7f000001.", "2130706433.", "0177.1", "0x7f.1", "localhost.", "[::ffff:127.0.0.1]"];

#[tokio::test]
async fn no_spelling_of_a_non_public_address_is_connected_to() {
    let receiver = Receiver::start().await;
    let refusing = callbacks("", StaticResolver::default());
    for host in NON_PUBLIC_HOSTS.iter().chain(MALFORMED_HOSTS) {
        let Some(attempt) = attempt(&refusing, host, receiver.port).await else { continue };
        assert_eq!(attempt.status, None, "{host} was delivered");
        assert!(attempt.error.is_some(), "{host}");
    }
    assert_eq!(receiver.connections(), 0, "a refused host was connected to");
    // The same spellings reach the receiver once the allow-list names loopback.
    let allowing = callbacks("127.0.0.0/8, ::1, ::ffff:127.0.0.0/104", StaticResolver::default());
    for host in LOOPBACK_SPELLINGS {
        assert!(attempt(&allowing, host, receiver.port).await.is_some_and(|a| a.delivered()), "{host}");
    }
    assert_eq!(receiver.connections(), LOOPBACK_SPELLINGS.len());
}

#[tokio::test]
async fn a_name_accepted_unresolved_is_refused_once_it_resolves_to_a_private_address() {
    let receiver = Receiver::start().await;
    let name = "hooks.example.test";
    let policy = AddressPolicy::default();
    assert_eq!(policy.check_host(&StaticResolver::default(), name, receiver.port).await, Ok(()));
    for (ip, kind) in [("127.0.0.1", "loopback"), ("10.0.0.5", "private"), ("::ffff:127.0.0.1", "loopback")] {
        let later = callbacks("", StaticResolver(vec![(name, ip.parse().unwrap())]));
        let attempt = attempt(&later, name, receiver.port).await.unwrap();
        let error = attempt.error.unwrap_or_default();
        assert!(attempt.status.is_none() && error.contains(kind), "{ip}: {error}");
    }
    assert_eq!(receiver.connections(), 0);
    // Of a name's addresses, only allowed ones are connected to: 10.0.0.5 is skipped, not tried.
    let mixed = StaticResolver(vec![(name, "10.0.0.5".parse().unwrap()), (name, "127.0.0.1".parse().unwrap())]);
    assert!(attempt(&callbacks("127.0.0.0/8", mixed), name, receiver.port).await.unwrap().delivered());
    assert_eq!(receiver.connections(), 1);
}
