//! A lingering close, as nginx does it: when the server closes a connection,
//! it first sends its FIN, then reads and discards what the client is still
//! sending (for a bounded time), and only then closes. A client that sends a
//! whole body before reading the answer (say a 413) reads it instead of
//! meeting a reset that would discard it.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};

/// Longest a closing connection is drained.
const LINGER_FOR: Duration = Duration::from_secs(10);
/// A closing connection that sends nothing for this long is closed.
const LINGER_IDLE: Duration = Duration::from_secs(1);

/// A TCP stream whose shutdown drains the client's unread data first.
#[derive(Debug)]
pub(crate) struct LingeringClose {
    stream: TcpStream,
    draining: Option<Drain>,
}

#[derive(Debug)]
struct Drain {
    until: Instant,
    idle: Pin<Box<Sleep>>,
}

impl LingeringClose {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self { stream, draining: None }
    }

    /// Reads and discards until the client closes, goes quiet, or the time is up.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(drain) = self.draining.as_mut() else { return Poll::Ready(()) };
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if drain.idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let next = (Instant::now() + LINGER_IDLE).min(drain.until);
                    drain.idle.as_mut().reset(next);
                }
                // The client closed its side, or the connection broke: nothing left to drain.
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncRead for LingeringClose {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringClose {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// Sends the FIN after everything written, then drains before reporting the close done.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.draining.is_none() {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            let now = Instant::now();
            let idle = Box::pin(tokio::time::sleep_until(now + LINGER_IDLE));
            this.draining = Some(Drain { until: now + LINGER_FOR, idle });
        }
        ready!(this.poll_drain(cx));
        Poll::Ready(Ok(()))
    }
}
