//! Connecting to a daemon: address, TLS, token, and plain-sentence errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use super::CliError;
use crate::secret::SecretString;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to reach the daemon.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Daemon address: http://HOST:PORT, https://HOST:PORT or unix:///PATH.
    #[arg(
        long,
        global = true,
        env = "STRONGROOM_ADDR",
        default_value = "http://127.0.0.1:8400"
    )]
    pub address: String,
    /// Read the token from this file (otherwise from STRONGROOM_TOKEN).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle that signed the daemon's certificate (https).
    #[arg(long, global = true, env = "STRONGROOM_CACERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS.
    #[arg(
        long,
        global = true,
        env = "STRONGROOM_CLIENT_CERT",
        value_name = "FILE"
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(
        long,
        global = true,
        env = "STRONGROOM_CLIENT_KEY",
        value_name = "FILE"
    )]
    pub client_key: Option<PathBuf>,
    /// Name to verify in the daemon's certificate, if not the address's host.
    #[arg(long, global = true, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path)
        .map_err(|e| CliError::Usage(format!("cannot read the {what} {}: {e}", path.display())))
}

/// Opens a connection, failing with one sentence if the daemon is unreachable.
pub async fn connect(args: &ClientArgs) -> Result<Channel, CliError> {
    let address = args.address.trim();
    if let Some(path) = address.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        let endpoint = Endpoint::from_static("http://localhost")
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT);
        let socket = path.clone();
        return endpoint
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move { UnixStream::connect(socket).await.map(TokioIo::new) }
            }))
            .await
            .map_err(|e| unreachable_daemon(address, &e));
    }
    if !address.starts_with("http://") && !address.starts_with("https://") {
        return Err(CliError::Usage(format!(
            "the address {address:?} must start with http://, https:// or unix://"
        )));
    }
    let mut endpoint = Endpoint::from_shared(address.to_string())
        .map_err(|_| CliError::Usage(format!("the address {address:?} is not a valid URL")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if address.starts_with("https://") {
        endpoint = endpoint
            .tls_config(tls_config(args)?)
            .map_err(|e| CliError::Failed(format!("TLS setup failed: {e}")))?;
    } else if args.client_cert.is_some() {
        return Err(CliError::Usage(
            "a client certificate needs an https:// address".into(),
        ));
    }
    endpoint
        .connect()
        .await
        .map_err(|e| unreachable_daemon(address, &e))
}

fn tls_config(args: &ClientArgs) -> Result<ClientTlsConfig, CliError> {
    let ca = args.ca_cert.as_deref().ok_or_else(|| {
        CliError::Usage("an https:// address needs the CA that signed the daemon's certificate: --ca-cert or STRONGROOM_CACERT".into())
    })?;
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?));
    match (&args.client_cert, &args.client_key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(CliError::Usage(
                "--client-cert and --client-key go together".into(),
            ));
        }
    }
    if let Some(name) = &args.tls_server_name {
        tls = tls.domain_name(name.clone());
    }
    Ok(tls)
}

/// The innermost cause of a transport error, which is the readable part
/// ("Connection refused (os error 111)").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn unreachable_daemon(address: &str, err: &tonic::transport::Error) -> CliError {
    CliError::Failed(format!(
        "cannot reach strongroom at {address}: {}",
        root_cause(err)
    ))
}

/// The token from `--token-file` or `STRONGROOM_TOKEN`.
pub fn token(args: &ClientArgs) -> Result<Option<SecretString>, CliError> {
    if let Some(path) = &args.token_file {
        let bytes = zeroize::Zeroizing::new(read(path, "token file")?);
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            CliError::Usage(format!("the token file {} is not text", path.display()))
        })?;
        return Ok(Some(SecretString::new(text.trim().to_string())));
    }
    Ok(std::env::var("STRONGROOM_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|t| SecretString::new(t.trim().to_string())))
}

/// A client of one service (`SysClient::new`, …) and the token to send with
/// its calls.
pub async fn authenticated<C>(
    args: &ClientArgs,
    service: impl FnOnce(Channel) -> C,
) -> Result<(C, Option<SecretString>), CliError> {
    let token = token(args)?;
    Ok((service(connect(args).await?), token))
}

/// Calls one RPC with the caller's token and returns its answer, or the
/// daemon's refusal as a [`CliError`](super::CliError):
/// `call!(args, KvClient, get, proto::GetRequest { … })`.
macro_rules! call {
    ($args:expr, $client:ident, $method:ident, $message:expr) => {{
        let (mut service, token) = $crate::cli::client::authenticated($args, $client::new).await?;
        service
            .$method($crate::cli::client::request($message, token.as_ref())?)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| $crate::cli::client::failed(s, token.is_some()))
    }};
}
pub(super) use call;

/// Wraps `message` in a request carrying the token, if there is one.
pub fn request<T>(message: T, token: Option<&SecretString>) -> Result<Request<T>, CliError> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value: MetadataValue<_> =
            format!("Bearer {}", token.expose()).parse().map_err(|_| {
                CliError::Usage(
                    "the token contains characters that cannot be sent in a header".into(),
                )
            })?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// A gRPC error as the sentence the daemon sent, plus a hint where one helps.
pub fn failed(status: Status, has_token: bool) -> CliError {
    let message = status.message().trim();
    let message = if message.is_empty() {
        format!("the request failed ({})", status.code())
    } else {
        message.to_string()
    };
    match status.code() {
        Code::Unauthenticated if !has_token => CliError::Failed(format!(
            "{message} (set STRONGROOM_TOKEN or pass --token-file)"
        )),
        Code::Unavailable if std::error::Error::source(&status).is_some() => {
            CliError::Failed(format!(
                "the connection to strongroom failed: {}",
                root_cause(&status)
            ))
        }
        _ => CliError::Failed(message),
    }
}
