//! Round trips to one Redis server, counted on the wire: a loopback proxy between the
//! store and Redis counts each time the client speaks after the server last did (commands
//! sent together, before any reply, are one round trip). Counted, not read from the code.

#[cfg(feature = "redis")]
mod with_redis {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use phone_otp::{
        HmacKey, KeyRing, Limits, ManualClock, OtpService, Purpose, RedisStore, ResendRequest,
        StartRequest, StubProvider,
    };
    use secrecy::SecretSlice;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use crate::support::{TestResult, jp_mobile_n, last_code, skip_loudly, wrong};

    /// A TCP proxy on loopback that counts round trips over all its connections.
    struct RoundTrips {
        address: SocketAddr,
        turns: Arc<AtomicU64>,
    }

    impl RoundTrips {
        async fn in_front_of(upstream: SocketAddr) -> std::io::Result<Self> {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let address = listener.local_addr()?;
            let turns = Arc::new(AtomicU64::new(0));
            let counted = Arc::clone(&turns);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::spawn(relay(client, server, Arc::clone(&counted)));
                }
            });
            Ok(Self { address, turns })
        }

        /// Round trips since the last call.
        fn take(&self) -> u64 {
            self.turns.swap(0, Ordering::SeqCst)
        }
    }

    async fn relay(client: TcpStream, server: TcpStream, turns: Arc<AtomicU64>) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        // Whether the server spoke last: the client's next bytes start a round trip.
        let server_spoke = Arc::new(AtomicBool::new(true));
        let heard = Arc::clone(&server_spoke);
        let upstream = async move {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(n) = client_read.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                if server_spoke.swap(false, Ordering::SeqCst) {
                    turns.fetch_add(1, Ordering::SeqCst);
                }
                if server_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        };
        let downstream = async move {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(n) = server_read.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                heard.store(true, Ordering::SeqCst);
                if client_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(upstream, downstream);
    }

    /// `host:port` of a `redis://host:port[/db]` URL.
    fn address_of(url: &str) -> Option<SocketAddr> {
        let rest = url.strip_prefix("redis://")?;
        let host_port = rest.split('/').next()?;
        host_port.parse().ok()
    }

    /// A start takes two round trips on one server (the account's failures and every limit
    /// in one script, then the insert), a verify one, a resend three (the challenge, the
    /// limits, the new code), with the default limits on.
    #[tokio::test]
    async fn start_verify_and_resend_round_trips() -> TestResult {
        let Some(url) = std::env::var("REDIS_URL").ok() else {
            skip_loudly("REDIS_URL is not set (./scripts/test.sh sets it)");
            return Ok(());
        };
        let upstream = address_of(&url).expect("REDIS_URL is redis://host:port");
        let proxy = RoundTrips::in_front_of(upstream).await?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let prefix = format!("trips:{nanos}:{}:", std::process::id());
        let store = RedisStore::connect(&format!("redis://{}", proxy.address), &prefix).await?;
        let (stub, clock) = (StubProvider::new(), ManualClock::new());
        let otp = OtpService::builder()
            .key_ring(KeyRing::new(HmacKey::new(
                1,
                &SecretSlice::from(vec![6u8; 32]),
            )?))
            .provider(stub.clone())
            .store(store)
            .clock(clock.clone())
            .limits(Limits::default())
            .build()?;
        let start = |n: u32| {
            StartRequest::sms(jp_mobile_n(n), Purpose::SignIn)
                .subject(format!("trip-user-{n}"))
                .client_ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, n as u8)))
        };
        // The first operations connect and load the scripts: not counted.
        let warm = otp.start(start(0)).await?;
        clock.advance(std::time::Duration::from_secs(31));
        let warm_ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 0));
        otp.resend_with(ResendRequest::new(warm.challenge_id).client_ip(warm_ip))
            .await?;
        let code = last_code(&stub, &jp_mobile_n(0));
        otp.verify(&warm.challenge_id, &code).await?;
        proxy.take();

        let started = otp.start(start(1)).await?;
        assert_eq!(proxy.take(), 2, "a start");
        let code = last_code(&stub, &jp_mobile_n(1));
        otp.verify(&started.challenge_id, &wrong(&code)).await?;
        assert_eq!(proxy.take(), 1, "a wrong code");
        clock.advance(std::time::Duration::from_secs(31));
        let resent = otp
            .resend_with(
                ResendRequest::new(started.challenge_id)
                    .client_ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))),
            )
            .await?;
        assert_eq!(proxy.take(), 3, "a resend");
        let code = last_code(&stub, &jp_mobile_n(1));
        assert!(otp.verify(&resent.challenge_id, &code).await?.is_verified());
        assert_eq!(proxy.take(), 1, "a right code");
        Ok(())
    }
}
