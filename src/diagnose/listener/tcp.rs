//! A TCP listener: its address can be bound (or who holds it), and TLS.

use std::io::ErrorKind;
use std::net::SocketAddr;

use super::{ask, tls};
use crate::config::TcpListener;
use crate::diagnose::{Context, Finding};

const BIND: &str = "bind";
const TLS: &str = "tls";

/// The checks of one TCP listener, under its heading.
pub async fn check(context: &Context, listener: &TcpListener) -> Finding {
    let address = listener.address;
    let label = format!("tcp {address}");
    if context.skipped(&label) {
        return Finding::skipped(&label, "skipped (--skip)");
    }
    let mut children = vec![if context.skipped(BIND) {
        Finding::skipped(BIND, "skipped (--skip)")
    } else {
        bind(address, listener.tls.is_some()).await
    }];
    match &listener.tls {
        Some(files) => children.extend(tls::check(context, files)),
        None => children.push(context.unless_skipped(TLS, || plaintext(address))),
    }
    Finding::heading(&label, "", children)
}

/// Binds the address and lets it go at once; when it is taken, asks the
/// holder whether it is a strongroom.
async fn bind(address: SocketAddr, tls: bool) -> Finding {
    let error = match std::net::TcpListener::bind(address) {
        Ok(socket) => {
            drop(socket);
            return Finding::success(BIND, format!("{address} can be bound"));
        }
        Err(e) => e,
    };
    match error.kind() {
        ErrorKind::AddrInUse => match ask::tcp(address, tls).await {
            Some(state) => Finding::warning(
                BIND,
                format!(
                    "{address} is in use by a running strongroom ({state}): a second daemon could not bind it"
                ),
                "stop the running daemon before starting another on this address (systemctl stop strongroom); nothing to do if it is this config's own daemon",
            ),
            None => Finding::failure(
                BIND,
                format!(
                    "{address} is in use by another process, which does not answer as a strongroom"
                ),
                "stop that process (ss -ltnp names it) or choose another address",
            ),
        },
        ErrorKind::PermissionDenied => Finding::failure(
            BIND,
            format!("{address} cannot be bound: {error}"),
            "ports below 1024 need CAP_NET_BIND_SERVICE (AmbientCapabilities= in the unit); or use a port above 1023",
        ),
        ErrorKind::AddrNotAvailable => Finding::failure(
            BIND,
            format!("{address} cannot be bound: it is not an address of this host ({error})"),
            "use one of this host's addresses, or 0.0.0.0",
        ),
        _ => Finding::failure(
            BIND,
            format!("{address} cannot be bound: {error}"),
            "choose an address this host can listen on",
        ),
    }
}

/// A listener without TLS: fine on loopback, a warning anywhere else.
fn plaintext(address: SocketAddr) -> Finding {
    if address.ip().is_loopback() {
        Finding::success(
            TLS,
            format!("TLS is off on the loopback address {address}: only this host can connect"),
        )
    } else {
        Finding::warning(
            TLS,
            format!(
                "TLS is off on {address}, which is not a loopback address: tokens and secrets would cross the network in the clear"
            ),
            "set tls_cert_file and tls_key_file, or listen on 127.0.0.1 behind a TLS proxy",
        )
    }
}
