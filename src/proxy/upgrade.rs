//! The upstream connection of an HTTP/1 upgrade request (a WebSocket's
//! handshake): always a new connection, whose first read waits one turn of
//! the task.
//!
//! Why: Pingora 0.9.1 tears an upgraded tunnel down right after the `101`
//! when it reads the endpoint's `101` before it has handled the upgrade
//! request's own empty body (`pingora-proxy-0.9.1/src/proxy_h1.rs:326-333`:
//! the end of that body is taken for the end of the tunnel; Pingora issue
//! #946, fixes proposed in its pull requests #947 and #1016). The client gets
//! the `101` and then EOF. Pingora queues that empty body before it first
//! polls the endpoint's answer, and its `select!` picks at random between two
//! ready branches: when the `101` is already readable (the endpoint answered
//! while the proxy's thread was descheduled between writing the request and
//! reading the answer) the tunnel is lost half of the time — 5 socket.io
//! sessions in 1,000 here (docs/realtime.md). The first read returning
//! `Pending` once (its waker woken at once) leaves only the queued body end
//! ready, so it is always handled first, and the `101` then opens the tunnel.
//!
//! A new connection (a pool key of its own, never kept idle) makes that
//! first read the answer's: a handshake never waits behind a pooled
//! connection the endpoint may have closed, either. Only `Upgrade:
//! websocket` takes this path; plain requests (and other upgrades) use
//! Pingora's own connector and pool, untouched.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::connectors::l4::Connect;
use pingora::prelude::*;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The low bit of every WebSocket handshake's connection pool key (Pingora's
/// `HttpPeer::group_key`, 0 for plain requests); the rest is random, so no
/// two handshakes share a pool either.
const UPGRADE_GROUP: u64 = 1;

/// Whether the request asks to become a WebSocket (`Upgrade: websocket`):
/// other upgrades (`h2c`, which `curl --http2` asks for on every plain
/// request) keep Pingora's pooled connections.
pub fn asks_for_websocket(headers: &http::HeaderMap) -> bool {
    headers.get_all(http::header::UPGRADE).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    })
}

/// Sets `peer` up for a WebSocket handshake: a new connection through
/// [`UpgradeConnect`], in a pool of its own that no other request looks in
/// (a handshake answered without `101` leaves a connection nobody reuses).
pub fn prepare(peer: &mut HttpPeer, connect_timeout: Duration) {
    peer.group_key = UPGRADE_GROUP ^ (rand::random::<u64>() << 1);
    peer.options.idle_timeout = Some(Duration::ZERO);
    peer.options.custom_l4 = Some(Arc::new(UpgradeConnect { connect_timeout }));
}

/// Connects over TCP as Pingora does (its connect timeout, `TCP_NODELAY`),
/// and hands Pingora the socket wrapped in [`FirstReadWaits`].
#[derive(Debug)]
pub struct UpgradeConnect {
    connect_timeout: Duration,
}

#[async_trait]
impl Connect for UpgradeConnect {
    async fn connect(&self, addr: &SocketAddr) -> Result<Stream> {
        let Some(inet) = addr.as_inet() else {
            return Error::e_explain(ErrorType::ConnectError, "not an IP endpoint");
        };
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(*inet)).await
        {
            Err(_) => {
                return Error::e_explain(
                    ErrorType::ConnectTimedout,
                    format!("timeout {:?} connecting to {inet}", self.connect_timeout),
                )
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(Error::because(
                    ErrorType::ConnectRefused,
                    format!("connecting to {inet}"),
                    e,
                ))
            }
            Ok(Err(e)) => {
                return Err(Error::because(
                    ErrorType::ConnectError,
                    format!("connecting to {inet}"),
                    e,
                ))
            }
            Ok(Ok(tcp)) => tcp,
        };
        let socket = FirstReadWaits::new(tcp);
        Ok(VirtualSocketStream::new(Box::new(socket)).into())
    }
}

/// A TCP stream whose first read returns `Pending` once, its waker woken at once.
#[derive(Debug)]
pub struct FirstReadWaits<S> {
    inner: S,
    waited: bool,
}

impl<S> FirstReadWaits<S> {
    pub fn new(inner: S) -> Self {
        FirstReadWaits {
            inner,
            waited: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstReadWaits<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.waited {
            self.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstReadWaits<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl VirtualSocket for FirstReadWaits<TcpStream> {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> std::io::Result<()> {
        match opt {
            VirtualSockOpt::NoDelay => self.inner.set_nodelay(true),
            // Tether sets no TCP keepalive on endpoints' connections.
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "TCP keepalive is not set on upgrade connections",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_first_read_waits_one_turn_then_reads() {
        let (a, mut b) = tokio::io::duplex(64);
        b.write_all(b"101").await.unwrap();
        let mut waits = FirstReadWaits::new(a);
        let mut buf = [0u8; 8];
        // One poll: Pending though bytes are there, and the task is woken.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut read_buf = ReadBuf::new(&mut buf);
        assert!(Pin::new(&mut waits)
            .poll_read(&mut cx, &mut read_buf)
            .is_pending());
        // The next read gets the bytes; later reads never wait.
        let n = waits.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"101");
        b.write_all(b"x").await.unwrap();
        let mut read_buf = ReadBuf::new(&mut buf);
        assert!(Pin::new(&mut waits)
            .poll_read(&mut cx, &mut read_buf)
            .is_ready());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_refusal() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let connect = UpgradeConnect {
            connect_timeout: Duration::from_secs(1),
        };
        let err = connect.connect(&SocketAddr::Inet(addr)).await.unwrap_err();
        assert_eq!(err.etype(), &ErrorType::ConnectRefused);
    }

    #[test]
    fn an_upgrade_peer_has_a_pool_of_its_own_and_keeps_nothing_idle() {
        let mut peer = HttpPeer::new("127.0.0.1:80", false, String::new());
        let plain = peer.clone();
        prepare(&mut peer, Duration::from_secs(1));
        use pingora::upstreams::peer::Peer;
        assert_ne!(peer.reuse_hash(), plain.reuse_hash());
        assert_eq!(peer.options.idle_timeout, Some(Duration::ZERO));
        assert!(peer.options.custom_l4.is_some());
        let mut other = plain.clone();
        prepare(&mut other, Duration::from_secs(1));
        assert_ne!(other.reuse_hash(), peer.reuse_hash(), "nor with each other");
    }

    #[test]
    fn only_websocket_upgrades_take_a_new_connection() {
        let mut headers = http::HeaderMap::new();
        assert!(!asks_for_websocket(&headers));
        headers.insert(http::header::UPGRADE, "h2c".parse().unwrap());
        assert!(!asks_for_websocket(&headers));
        headers.insert(http::header::UPGRADE, "WebSocket".parse().unwrap());
        assert!(asks_for_websocket(&headers));
        headers.insert(http::header::UPGRADE, "foo/2, websocket".parse().unwrap());
        assert!(asks_for_websocket(&headers));
    }
}
