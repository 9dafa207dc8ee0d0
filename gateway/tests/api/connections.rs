//! Slow and idle clients on the gateway's own server loop (`serve::serve`): partial headers
//! are cut off, idle keep-alive connections close, and more partial connections than the
//! cap cannot keep `/healthz` from answering.

use std::time::Duration;

use phone_otp_gateway::serve::{ConnectionLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestGateway;

/// Serves a fresh test gateway's router with `limits`; returns its address.
async fn serve_with(limits: ConnectionLimits) -> std::net::SocketAddr {
    let gw = TestGateway::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = gw.gateway.router();
    tokio::spawn(async move {
        let _keep = gw;
        serve(listener, router, limits, std::future::pending()).await
    });
    address
}

/// A connection that has sent half a request head.
async fn partial(address: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        .await
        .unwrap();
    stream
}

/// Reads until the peer closes (or resets) the connection; the bytes read.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn more_partial_connections_than_the_cap_cannot_starve_healthz() {
    let address = serve_with(ConnectionLimits {
        header_read_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
        max_connections: 32,
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        slow.push(partial(address).await);
    }
    // A real client still gets its answer, within a second.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let answer = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .expect("healthz answers within a second");
    assert_eq!(answer.status(), 200);
    // The oldest partial connections were closed to make room (bounded wait: the server
    // closes them as it accepts newer ones).
    for stream in slow.iter_mut().take(150) {
        let closed = tokio::time::timeout(Duration::from_secs(5), until_closed(stream)).await;
        assert_eq!(closed.ok(), Some(Vec::new()), "evicted without an answer");
    }
}

#[tokio::test(start_paused = true)]
async fn a_partial_header_is_cut_off_at_the_header_read_timeout() {
    let address = serve_with(ConnectionLimits {
        header_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(600),
        max_connections: 32,
    })
    .await;
    let started = tokio::time::Instant::now();
    let mut stream = partial(address).await;
    until_closed(&mut stream).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let address = serve_with(ConnectionLimits {
        header_read_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(2),
        max_connections: 32,
    })
    .await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(br#"{"status":"ok"}"#) {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    let answered = tokio::time::Instant::now();
    assert_eq!(until_closed(&mut stream).await, Vec::<u8>::new());
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_secs(2) && idle < Duration::from_secs(3),
        "{idle:?}"
    );
}
