//! A TCP listener: its address can be bound (or who holds it), and TLS.

use std::io::ErrorKind;
use std::net::SocketAddr;

use super::{ask, tls};
use crate::config::TcpListener;
use crate::diagnose::{Context, Finding, Status, health};

const BIND: &str = "bind";
const TLS: &str = "tls";

/// The checks of one TCP listener, under its heading.
pub async fn check(context: &Context, listener: &TcpListener) -> Finding {
    let address = listener.address;
    let label = format!("tcp {address}");
    if context.skipped(&label) {
        return Finding::skipped(&label, "skipped (--skip)");
    }
    let mutual = listener
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_ca.is_some());
    let mut children = vec![if context.skipped(BIND) {
        Finding::skipped(BIND, "skipped (--skip)")
    } else {
        let bound = bind(address, listener.tls.is_some(), mutual).await;
        // Only a port root could bind is the service user's problem; one
        // held by another process (or a strongroom) says so as it is.
        match privileged_for_service(context, address) {
            Some(refused) if bound.status == Status::Success => refused,
            _ => bound,
        }
    }];
    match &listener.tls {
        Some(files) => children.extend(tls::check(context, files)),
        None => children.push(context.unless_skipped(TLS, || plaintext(address))),
    }
    Finding::heading(&label, "", children)
}

/// Root binds any port; the service user, under the unit's
/// `CapabilityBoundingSet=CAP_IPC_LOCK`, only those from the kernel's
/// `ip_unprivileged_port_start` up. A port below it fails for the service
/// user, named, though root could bind it here.
fn privileged_for_service(context: &Context, address: SocketAddr) -> Option<Finding> {
    let user = context.service_user.as_ref().filter(|user| user.uid != 0)?;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    privileged_verdict(address, start, &user.name)
}

/// The failure for `service_user` binding `address` when its port is below
/// `start`, the first port unprivileged users may bind.
fn privileged_verdict(address: SocketAddr, start: u16, service_user: &str) -> Option<Finding> {
    (address.port() != 0 && address.port() < start).then(|| {
        Finding::failure(
            BIND,
            format!(
                "{address} is a privileged port (below {start}): the service user {service_user} cannot bind it without CAP_NET_BIND_SERVICE, which deploy/strongroom.service does not grant"
            ),
            "use a port from 1024 up (8200 is Vault's), or add CAP_NET_BIND_SERVICE to the unit's CapabilityBoundingSet= and AmbientCapabilities=",
        )
    })
}

/// Binds the address and lets it go at once; when it is taken, asks the
/// holder whether it is a strongroom.
async fn bind(address: SocketAddr, tls: bool, mutual: bool) -> Finding {
    let error = match std::net::TcpListener::bind(address) {
        Ok(socket) => {
            drop(socket);
            return Finding::success(BIND, format!("{address} can be bound"));
        }
        Err(e) => e,
    };
    match error.kind() {
        ErrorKind::AddrInUse => match ask::tcp(address, tls).await {
            Ok(state) => Finding::warning(
                BIND,
                format!(
                    "{address} is in use by a running strongroom ({state}): a second daemon could not bind it"
                ),
                "stop the running daemon before starting another on this address (systemctl stop strongroom); nothing to do if it is this config's own daemon",
            ),
            // This listener wants client certificates: a TLS server that
            // refuses diagnose after the handshake may well be its daemon.
            Err(why) if mutual && why.starts_with(health::AFTER_HANDSHAKE) => Finding::warning(
                BIND,
                format!(
                    "{address} is in use by a TLS server that refused a client without a certificate, as this listener's tls_client_ca_file makes strongroom do: a second daemon could not bind it"
                ),
                "if it is this config's own daemon, nothing to do (`strongroom status` asks it with your certificate); otherwise stop it or choose another address",
            ),
            Err(_) => Finding::failure(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_below_the_unprivileged_start_fails_for_the_service_user() {
        let https: SocketAddr = "0.0.0.0:443".parse().unwrap();
        let refused = privileged_verdict(https, 1024, "strongroom").unwrap();
        assert_eq!(refused.status, crate::diagnose::Status::Failure);
        assert!(
            refused
                .message
                .contains("the service user strongroom cannot bind it")
        );
        assert!(privileged_verdict(https, 80, "strongroom").is_none());
        assert!(privileged_verdict("0.0.0.0:8200".parse().unwrap(), 1024, "s").is_none());
        assert!(privileged_verdict("127.0.0.1:0".parse().unwrap(), 1024, "s").is_none());
    }
}
