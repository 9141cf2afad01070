//! A WebSocket client for the integration tests: connects through Tether (optionally
//! with a `Cookie` header, to test affinity), sends and receives with a bounded
//! timeout, and observes a close. Synchronous to its callers (it owns a small
//! current-thread runtime), so plain `#[test]`s can mix it with the blocking HTTP
//! helpers and the admin API.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::header::HeaderMap;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long one connect, send or receive may take.
pub const WS_TIMEOUT: Duration = Duration::from_secs(10);

/// One open WebSocket, with the handshake's response headers.
pub struct WebSocket {
    runtime: tokio::runtime::Runtime,
    ws: WebSocketStream<TcpStream>,
    /// The `101` response's headers (`Set-Cookie`, `X-Tether-Decision`, `x-upstream`).
    pub headers: HeaderMap,
}

/// How a wait for a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Text(String),
    /// The connection ended: a close frame, a FIN or a reset.
    Closed,
    /// Nothing within the timeout; the connection is still open.
    Nothing,
}

impl WebSocket {
    /// `GET path` with `Host: host` (and `Cookie: cookie`) upgraded to a WebSocket at
    /// `addr`. `Err` with the reason when the handshake fails (e.g. a `503`).
    pub fn connect(
        addr: SocketAddr,
        host: &str,
        path: &str,
        cookie: Option<&str>,
    ) -> Result<WebSocket, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("build a runtime: {e}"))?;
        let mut request = format!("ws://{host}{path}")
            .into_client_request()
            .map_err(|e| format!("request: {e}"))?;
        if let Some(cookie) = cookie {
            let value = HeaderValue::from_str(cookie).map_err(|e| format!("cookie: {e}"))?;
            request.headers_mut().insert("cookie", value);
        }
        let connected = runtime.block_on(async {
            tokio::time::timeout(WS_TIMEOUT, async {
                let tcp = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect {addr}: {e}"))?;
                tokio_tungstenite::client_async(request, tcp)
                    .await
                    .map_err(|e| format!("handshake: {e}"))
            })
            .await
            .map_err(|_| format!("handshake not done within {WS_TIMEOUT:?}"))?
        });
        let (ws, response) = connected?;
        let mut headers = HeaderMap::new();
        for (name, value) in response.headers() {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
                reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.append(name, value);
            }
        }
        Ok(WebSocket {
            runtime,
            ws,
            headers,
        })
    }

    /// A response header of the handshake, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The `__cflb` cookie the handshake's response set (`__cflb=<value>`), if any.
    pub fn cflb_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| pair.starts_with("__cflb="))
            .map(str::to_string)
    }

    /// Sends `text`; `Err` when the connection is gone.
    pub fn send(&mut self, text: &str) -> Result<(), String> {
        let ws = &mut self.ws;
        self.runtime.block_on(async {
            tokio::time::timeout(WS_TIMEOUT, ws.send(Message::text(text)))
                .await
                .map_err(|_| "send timed out".to_string())?
                .map_err(|e| format!("send: {e}"))
        })
    }

    /// The next text message within `timeout`, or how the wait ended.
    pub fn receive(&mut self, timeout: Duration) -> Received {
        let ws = &mut self.ws;
        self.runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                match tokio::time::timeout_at(deadline, ws.next()).await {
                    Err(_) => return Received::Nothing,
                    Ok(None | Some(Err(_))) => return Received::Closed,
                    Ok(Some(Ok(Message::Text(t)))) => return Received::Text(t.to_string()),
                    Ok(Some(Ok(Message::Close(_)))) => return Received::Closed,
                    Ok(Some(Ok(_))) => continue,
                }
            }
        })
    }

    /// Sends `text` and returns the reply (`Err` when none came within [`WS_TIMEOUT`]).
    pub fn ask(&mut self, text: &str) -> Result<String, String> {
        self.send(text)?;
        match self.receive(WS_TIMEOUT) {
            Received::Text(reply) => Ok(reply),
            other => Err(format!("no reply to {text:?}: {other:?}")),
        }
    }

    /// The name of the upstream at the other end (the echo answers `whoami`).
    pub fn whoami(&mut self) -> Result<String, String> {
        self.ask("whoami")
    }

    /// Whether the connection is closed by the other side within `timeout`: a message
    /// arriving meanwhile is skipped.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.receive(left) {
                Received::Closed => return true,
                Received::Nothing => return false,
                Received::Text(_) if left.is_zero() => return false,
                Received::Text(_) => continue,
            }
        }
    }

    /// Whether the connection still echoes now (a round trip within [`WS_TIMEOUT`]).
    pub fn still_open(&mut self) -> bool {
        self.ask("ping?").is_ok_and(|r| r == "ping?")
    }

    /// Closes from the client's side (a close frame, then waits for the end).
    pub fn close(mut self) {
        let ws = &mut self.ws;
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(WS_TIMEOUT, ws.close(None)).await;
        });
    }
}
