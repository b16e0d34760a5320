//! A QUIC (quinn) one-way stream test, the counterpart of a3m's `examples/push.rs` and
//! `examples/pull.rs`, for `ci/loss-bench.sh`.
//!
//! ```text
//! quinn-peer recv --bind 127.0.0.1:7001 --count 20000 --size 64
//! quinn-peer send --to 127.0.0.1:7001 --count 20000 --size 64
//! ```
//!
//! The sender opens one connection and one unidirectional stream, writes `--count` messages
//! of `--size` bytes (at least 8), numbered 0, 1, ... in their first 8 bytes (little endian),
//! and finishes the stream. The receiver reads the whole stream, checks the numbering and
//! answers with one byte (1: all correct, 0: not) on a unidirectional stream of its own; the
//! sender's clock runs from its first write until that byte arrives, so it covers the
//! delivery of everything to the receiving application. Both print one line:
//!
//! ```text
//! quinn send count=N size=S elapsed_ms=X msgs_per_sec=Y
//! quinn recv received=N in_order=true elapsed_ms=X msgs_per_sec=Y
//! ```
//!
//! (the receiver's clock runs from the first byte to the last) and exit with 0 only if all
//! N messages arrived, in order. Congestion control and loss detection are quinn's
//! defaults; the idle timeout is raised to 120 s and both sides send keep-alives every
//! second, so blackouts and heavy loss slow the connection down without closing it.
//!
//! Options: `--timeout` (seconds the whole exchange may take, default 60).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::exit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::crypto::rustls::QuicClientConfig;
use quinn::rustls::{self, pki_types};
use quinn::{ClientConfig, Endpoint, IdleTimeout, ServerConfig, TransportConfig, VarInt};

/// Seconds without any packet from the peer before a connection is given up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Interval of keep-alive packets while a connection is otherwise quiet.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// The receiver's answer on its stream back: everything arrived in order, or not.
const ANSWER_OK: u8 = 1;
const ANSWER_BAD: u8 = 0;
/// How long the receiver keeps the connection up for its answer to reach the sender.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How long the sender lingers after closing, so that its close reaches the receiver.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

struct Options {
    mode: String,
    addr: SocketAddr,
    count: u64,
    size: usize,
    timeout: Duration,
}

fn fail(message: &str) -> ! {
    eprintln!("quinn-peer: {message}");
    exit(2);
}

fn usage() -> ! {
    fail(
        "usage: quinn-peer recv --bind ADDR --count N --size S [--timeout SECS]\n       \
         quinn-peer send --to ADDR --count N --size S [--timeout SECS]",
    )
}

fn parse_args() -> Options {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    let addr_flag = match mode.as_str() {
        "recv" => "--bind",
        "send" => "--to",
        _ => usage(),
    };
    let (mut addr, mut count, mut size, mut timeout) = (None, None, None, 60u64);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| fail(&format!("{flag}: missing value")));
        let bad = || -> ! { fail(&format!("{flag} {value}: invalid value")) };
        match flag.as_str() {
            f if f == addr_flag => {
                addr = Some(value.parse::<SocketAddr>().unwrap_or_else(|_| bad()))
            }
            "--count" => count = Some(value.parse::<u64>().unwrap_or_else(|_| bad())),
            "--size" => size = Some(value.parse::<usize>().unwrap_or_else(|_| bad())),
            "--timeout" => timeout = value.parse::<u64>().unwrap_or_else(|_| bad()),
            _ => fail(&format!("unknown option {flag}")),
        }
    }
    let addr = addr.unwrap_or_else(|| fail(&format!("{addr_flag} is required")));
    let count = count.unwrap_or_else(|| fail("--count is required"));
    let size = size.unwrap_or_else(|| fail("--size is required"));
    if size < 8 {
        fail("--size must be at least 8 (the message number)");
    }
    Options { mode, addr, count, size, timeout: Duration::from_secs(timeout) }
}

fn transport_config() -> Arc<TransportConfig> {
    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(Some(IdleTimeout::try_from(IDLE_TIMEOUT).expect("idle timeout")))
        .keep_alive_interval(Some(KEEP_ALIVE));
    Arc::new(transport)
}

/// *ring*, the provider quinn's default features build. rustls deprecates it for lacking
/// post-quantum key exchange, which does not matter for a loopback benchmark.
#[allow(deprecated)]
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn main() {
    let options = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")));
    let limit = options.timeout;
    let result = runtime.block_on(async {
        let run = async {
            match options.mode.as_str() {
                "recv" => receive(&options).await,
                _ => send(&options).await,
            }
        };
        tokio::time::timeout(limit, run)
            .await
            .unwrap_or_else(|_| Err(format!("not done within {limit:?}")))
    });
    // Do not wait for stray tasks (e.g. a connection still draining).
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(true) => {}
        Ok(false) => exit(1),
        Err(e) => {
            eprintln!("quinn-peer {}: {e}", options.mode);
            exit(1);
        }
    }
}

/// The receiving side; `Ok(true)` if every message arrived once, in order.
async fn receive(options: &Options) -> Result<bool, String> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(|e| format!("certificate: {e}"))?;
    let cert_der = pki_types::CertificateDer::from(cert.cert);
    let key = pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let crypto = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key.into())
        .map_err(|e| format!("TLS: {e}"))?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto)
        .map_err(|e| format!("TLS: {e}"))?;
    let mut server_config = ServerConfig::with_crypto(Arc::new(crypto));
    server_config.transport_config(transport_config());
    let endpoint = Endpoint::server(server_config, options.addr)
        .map_err(|e| format!("bind {}: {e}", options.addr))?;
    println!("quinn recv listening on {}", endpoint.local_addr().map_err(|e| e.to_string())?);

    let incoming = endpoint.accept().await.ok_or("endpoint closed")?;
    let conn = incoming.await.map_err(|e| format!("handshake: {e}"))?;
    println!("quinn recv connection from {}", conn.remote_address());
    let mut stream = conn.accept_uni().await.map_err(|e| format!("accept stream: {e}"))?;

    let (count, size) = (options.count, options.size);
    let mut buf = vec![0u8; 64 << 10];
    let mut message = vec![0u8; size];
    let (mut filled, mut received, mut in_order, mut extra) = (0usize, 0u64, true, 0u64);
    let mut first = None;
    while let Some(n) = stream.read(&mut buf).await.map_err(|e| format!("read: {e}"))? {
        first.get_or_insert_with(Instant::now);
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let take = (size - filled).min(chunk.len());
            message[filled..filled + take].copy_from_slice(&chunk[..take]);
            filled += take;
            chunk = &chunk[take..];
            if filled == size {
                filled = 0;
                let number = u64::from_le_bytes(message[..8].try_into().expect("8 bytes"));
                in_order &= number == received;
                received += 1;
            }
        }
    }
    if filled != 0 {
        extra += 1; // a trailing partial message
    }
    let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
    let ok = received == count && in_order && extra == 0;

    let ms = elapsed.as_secs_f64() * 1e3;
    let rate = received as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "quinn recv received={received} in_order={in_order} elapsed_ms={ms:.1} msgs_per_sec={rate:.0}"
    );
    if extra > 0 {
        eprintln!("quinn recv: the stream ended inside a message");
    }

    // Tell the sender, and wait (a while) until it has the answer: our stream acknowledged,
    // or the connection closed by the sender after reading it. Its close may be lost, so
    // this wait is bounded and does not decide the exit status.
    let answer = async {
        let mut answer = conn.open_uni().await.map_err(|e| format!("open: {e}"))?;
        answer
            .write_all(&[if ok { ANSWER_OK } else { ANSWER_BAD }])
            .await
            .map_err(|e| format!("write: {e}"))?;
        answer.finish().map_err(|e| format!("finish: {e}"))?;
        let _ = answer.stopped().await;
        Ok::<(), String>(())
    };
    match tokio::time::timeout(ANSWER_WAIT, answer).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("quinn recv: answering the sender: {e}"),
        Err(_) => eprintln!("quinn recv: answer not acknowledged within {ANSWER_WAIT:?}"),
    }
    conn.close(VarInt::from_u32(0), b"done");
    Ok(ok)
}

/// The sending side; `Ok(true)` once the receiver confirmed every message, in order.
async fn send(options: &Options) -> Result<bool, String> {
    let crypto = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(SkipServerVerification::new())
        .with_no_client_auth();
    let crypto = QuicClientConfig::try_from(crypto).map_err(|e| format!("TLS: {e}"))?;
    let mut client_config = ClientConfig::new(Arc::new(crypto));
    client_config.transport_config(transport_config());
    let bind = if options.addr.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let mut endpoint = Endpoint::client(bind).map_err(|e| format!("bind {bind}: {e}"))?;
    endpoint.set_default_client_config(client_config);

    // The receiver may start a little later: retry the handshake until the deadline.
    let conn = loop {
        let connecting = endpoint
            .connect(options.addr, "localhost")
            .map_err(|e| format!("connect {}: {e}", options.addr))?;
        match connecting.await {
            Ok(conn) => break conn,
            Err(quinn::ConnectionError::TimedOut) => continue,
            Err(e) => {
                eprintln!("quinn send: handshake with {}: {e}; retrying", options.addr);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    println!("quinn send connected to {}", conn.remote_address());
    let mut stream = conn.open_uni().await.map_err(|e| format!("open stream: {e}"))?;

    let (count, size) = (options.count, options.size);
    let start = Instant::now();
    let mut message = vec![0xA5u8; size];
    for n in 0..count {
        message[..8].copy_from_slice(&n.to_le_bytes());
        stream.write_all(&message).await.map_err(|e| format!("write {n} of {count}: {e}"))?;
    }
    stream.finish().map_err(|e| format!("finish: {e}"))?;
    let mut answer = conn.accept_uni().await.map_err(|e| format!("waiting for the answer: {e}"))?;
    let mut byte = [0u8; 1];
    answer.read_exact(&mut byte).await.map_err(|e| format!("reading the answer: {e}"))?;
    let elapsed = start.elapsed();
    conn.close(VarInt::from_u32(0), b"done");
    let ms = elapsed.as_secs_f64() * 1e3;
    let rate = count as f64 / elapsed.as_secs_f64().max(1e-9);
    println!("quinn send count={count} size={size} elapsed_ms={ms:.1} msgs_per_sec={rate:.0}");
    // Linger a moment, answering the receiver's retransmissions with the close, but not for
    // the whole draining period.
    let _ = tokio::time::timeout(CLOSE_WAIT, endpoint.wait_idle()).await;
    if byte[0] != ANSWER_OK {
        eprintln!("quinn send: the receiver reports missing or misordered messages");
        return Ok(false);
    }
    Ok(true)
}

/// Accepts any server certificate: the receiver's is self-signed and made up on the spot.
#[derive(Debug)]
struct SkipServerVerification(Arc<rustls::crypto::CryptoProvider>);

impl SkipServerVerification {
    fn new() -> Arc<Self> {
        Arc::new(Self(crypto_provider()))
    }
}

impl rustls::client::danger::ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &pki_types::CertificateDer<'_>,
        _intermediates: &[pki_types::CertificateDer<'_>],
        _server_name: &pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
