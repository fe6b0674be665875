//! The systemd notify protocol (`Type=notify`): one datagram per message to
//! the socket named by `NOTIFY_SOCKET`. Outside systemd it does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// A handle on the service manager's notify socket, if there is one.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|name| {
            let name = name.to_string_lossy().into_owned();
            let address = match name.strip_prefix('@') {
                Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
                None => SocketAddr::from_pathname(&name),
            };
            match (UnixDatagram::unbound(), address) {
                (Ok(socket), Ok(address)) => Some((socket, address)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(socket = %name, error = %e, "cannot use NOTIFY_SOCKET; systemd will not hear from strongroom");
                    None
                }
            }
        });
        Self { target }
    }

    /// Sends `message` (such as `READY=1\nSTATUS=sealed`); failures are logged, not fatal.
    pub fn notify(&self, message: &str) {
        if let Some((socket, address)) = &self.target
            && let Err(e) = socket.send_to_addr(message.as_bytes(), address)
        {
            tracing::warn!(error = %e, "systemd notify failed");
        }
    }
}
