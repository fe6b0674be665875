//! The listener area: for every listener, whether its address can be bound
//! (or which process holds it), its TLS files as clients will see them,
//! and a unix socket's directory and owner.

mod ask;
mod tcp;
mod tls;
mod unix;

use super::{Context, Finding};
use crate::config::Listener;

/// The listener area.
pub async fn check(context: &Context) -> Finding {
    const NAME: &str = "listener";
    let config = match context.config_or_skip(NAME) {
        Ok(config) => config,
        Err(skipped) => return skipped,
    };
    let mut children = Vec::new();
    for listener in &config.listeners {
        children.push(match listener {
            Listener::Tcp(tcp) => tcp::check(context, tcp).await,
            Listener::Unix(unix) => unix::check(context, unix).await,
        });
    }
    Finding::heading(NAME, "", children)
}
