//! Counting strongroom's own in-flight requests, so shutdown waits for them
//! and for nothing else.
//!
//! Graceful HTTP/2 shutdown waits for every client to acknowledge GOAWAY; an
//! idle client whose runtime is not being polled, or a peer behind a dead
//! network path, would hold the exit for the whole drain deadline. Only the
//! unary `strongroom.v1` calls (an init or a KV write half done) deserve that
//! wait; health watches and reflection streams do not.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::codegen::http;
use tower::{Layer, Service};

/// Requests under way, by path prefix `/strongroom.v1.`.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    fn enter(&self) -> Guard {
        self.0.fetch_add(1, Ordering::AcqRel);
        Guard(Arc::clone(&self.0))
    }

    /// Waits until no request is in flight, or until `deadline` passes;
    /// returns how many were still running.
    pub async fn settle(&self, deadline: Duration) -> usize {
        let until = Instant::now() + deadline;
        loop {
            let running = self.0.load(Ordering::Acquire);
            if running == 0 || Instant::now() >= until {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A layer that counts the requests passing through it.
    pub fn layer(&self) -> TrackLayer {
        TrackLayer(self.clone())
    }
}

/// See [`InFlight::layer`].
#[derive(Clone)]
pub struct TrackLayer(InFlight);

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            in_flight: self.0.clone(),
        }
    }
}

/// The counting service.
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    in_flight: InFlight,
}

impl<S, B> Service<http::Request<B>> for Track<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = request
            .uri()
            .path()
            .starts_with("/strongroom.v1.")
            .then(|| self.in_flight.enter());
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            drop(guard);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settles_when_requests_finish() {
        let in_flight = InFlight::default();
        assert_eq!(in_flight.settle(Duration::from_millis(1)).await, 0);
        let guard = in_flight.enter();
        assert_eq!(in_flight.settle(Duration::from_millis(5)).await, 1);
        drop(guard);
        assert_eq!(in_flight.settle(Duration::from_secs(5)).await, 0);
    }
}
