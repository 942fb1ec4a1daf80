//! The callback client's connector: the only way a delivery opens a socket.
//! Whatever the host (a name, or an address in any spelling), it becomes
//! addresses through [`callback::addresses`], and the policy is applied to
//! each address right before a socket is opened to it. No proxy is used.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::callback::{self, AddressPolicy, Resolve, Unreachable};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens TCP connections to callback hosts, only to addresses the policy allows.
#[derive(Debug, Clone)]
pub struct CheckedConnector {
    policy: AddressPolicy,
    resolver: Arc<dyn Resolve>,
}

impl CheckedConnector {
    pub fn new(policy: AddressPolicy, resolver: Arc<dyn Resolve>) -> Self {
        Self { policy, resolver }
    }

    /// Connects to the first address of the URI's host that is allowed and answers.
    pub async fn connect(&self, uri: &Uri) -> Result<TcpStream, BoxError> {
        let host = uri.host().ok_or("the callback URL names no host")?;
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let addrs = callback::addresses(&*self.resolver, host, port).await.map_err(|e| match e {
            Unreachable::Refused(e) | Unreachable::Unresolved(e) => e,
        })?;
        let mut last: Option<std::io::Error> = None;
        for addr in addrs {
            match self.open(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| "no address to connect to".into(), Into::into))
    }

    /// Opens a socket to one address, after checking that very address.
    async fn open(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        self.policy.check_ip(addr.ip()).map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl tower_service::Service<Uri> for CheckedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(&uri).await.map(TokioIo::new) })
    }
}
