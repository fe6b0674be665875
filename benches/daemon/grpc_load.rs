//! strongroom's load generator: unary gRPC calls on raw HTTP/2 frames
//! (`h2`), leaner than a tonic client, so the generator on its core costs
//! less than the server on its own.

use std::time::{Duration, Instant};

use strongroom::proto::StatusRequest;

use crate::BOUND;
use crate::peers::Instance;
use crate::process::{bounded, cpu_seconds, rusage_seconds};
use crate::results::{ms, percentile};

#[derive(Clone, Copy)]
pub(crate) struct Load {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) client_cpu: f64,
    pub(crate) server_cpu: f64,
}

/// One unary gRPC call on raw HTTP/2: two frames (headers, and the message
/// with its 5-byte gRPC prefix), the answer read to its trailers. Leaner
/// than a tonic client, so the load generator on its core costs less than
/// the server on its own.
pub(crate) async fn grpc_unary(
    sender: &mut h2::client::SendRequest<bytes::Bytes>,
    call: &Rpc,
) -> Result<(), h2::Error> {
    let mut request = http::Request::post(call.path)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = &call.token {
        request = request.header("authorization", token.clone());
    }
    let request = request.body(()).expect("request");
    let (response, mut body) = sender.send_request(request, false)?;
    body.send_data(call.message.clone(), true)?;
    let mut response = response.await?.into_body();
    while let Some(chunk) = response.data().await {
        let chunk = chunk?;
        let _ = response.flow_control().release_capacity(chunk.len());
    }
    let trailers = response.trailers().await?;
    let ok = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .is_some_and(|s| s == "0");
    assert!(ok, "{} failed: {trailers:?}", call.path);
    Ok(())
}

/// A unary call for [`grpc_unary`]: its path, its token, and the message
/// already framed (the 5-byte gRPC prefix, then the protobuf bytes).
#[derive(Clone)]
pub(crate) struct Rpc {
    pub(crate) path: &'static str,
    pub(crate) token: Option<http::HeaderValue>,
    pub(crate) message: bytes::Bytes,
}

impl Rpc {
    pub(crate) fn new(
        path: &'static str,
        token: Option<&str>,
        message: &impl prost::Message,
    ) -> Self {
        let encoded = message.encode_to_vec();
        let mut framed = Vec::with_capacity(5 + encoded.len());
        framed.push(0);
        framed.extend_from_slice(&u32::try_from(encoded.len()).expect("small").to_be_bytes());
        framed.extend_from_slice(&encoded);
        Self {
            path,
            token: token.map(|t| format!("Bearer {t}").parse().expect("a header value")),
            message: framed.into(),
        }
    }

    pub(crate) fn status() -> Self {
        Self::new(
            "http://127.0.0.1/strongroom.v1.Sys/Status",
            None,
            &StatusRequest {},
        )
    }
}

/// The call a load task makes next: `(task, n)` picks it (distinct keys
/// for writes).
pub(crate) type NextRpc = std::sync::Arc<dyn Fn(usize, u64) -> Rpc + Send + Sync>;

/// The same call every time.
pub(crate) fn same(call: Rpc) -> NextRpc {
    std::sync::Arc::new(move |_, _| call.clone())
}

/// An HTTP/2 connection for [`grpc_status`], over TCP or the unix socket.
pub(crate) async fn h2_connection(
    instance: &Instance,
    unix: bool,
) -> h2::client::SendRequest<bytes::Bytes> {
    async fn over<T>(io: T) -> h2::client::SendRequest<bytes::Bytes>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = bounded("the HTTP/2 handshake", h2::client::handshake(io))
            .await
            .expect("h2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        bounded("HTTP/2 readiness", sender.ready())
            .await
            .expect("h2 ready")
    }
    if unix {
        let stream = bounded("connect", tokio::net::UnixStream::connect(&instance.socket))
            .await
            .expect("unix connect");
        over(stream).await
    } else {
        let stream = bounded("connect", tokio::net::TcpStream::connect(instance.addr()))
            .await
            .expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        over(stream).await
    }
}

/// strongroom: `clients` HTTP/2 connections, each with one call in flight.
pub(crate) async fn grpc_load(
    instance: &Instance,
    unix: bool,
    clients: usize,
    seconds: u64,
    server_pid: u32,
    next: NextRpc,
) -> Load {
    let mut senders = Vec::new();
    for _ in 0..clients {
        senders.push(h2_connection(instance, unix).await);
    }
    let warmup = Duration::from_millis(500);
    let measure = Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(task, mut sender)| {
            let next = std::sync::Arc::clone(&next);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(200_000);
                for n in 0.. {
                    let call = next(task, n);
                    let sent = Instant::now();
                    bounded("a gRPC call", grpc_unary(&mut sender, &call))
                        .await
                        .expect("the call");
                    let since_start = sent.duration_since(start);
                    if since_start >= warmup + measure {
                        break;
                    }
                    if since_start >= warmup {
                        latencies.push(ms(sent.elapsed()));
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(warmup).await;
    let self_ = nix::sys::resource::UsageWho::RUSAGE_SELF;
    let (client_before, server_before) = (rusage_seconds(self_), cpu_seconds(server_pid));
    let mut all = Vec::new();
    for task in tasks {
        let ran = tokio::time::timeout(BOUND + measure, task).await;
        all.extend(ran.expect("the load ended in time").expect("a load task"));
    }
    let (client_after, server_after) = (rusage_seconds(self_), cpu_seconds(server_pid));
    all.sort_by(f64::total_cmp);
    let wall = measure.as_secs_f64();
    Load {
        rps: all.len() as f64 / wall,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        client_cpu: (client_after - client_before) / wall,
        server_cpu: (server_after - server_before) / wall,
    }
}
