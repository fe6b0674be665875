//! The answer of a forwarded call, passed back as it comes (data frames,
//! trailers), except that a connection to the active node that breaks
//! midway ends the call with UNAVAILABLE and a sentence, as gRPC trailers,
//! rather than a reset stream the caller cannot read.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::HeaderMap;

/// The active node's answer body.
pub struct Relayed {
    inner: Body,
    /// The active node's `cluster_addr`, for the sentence.
    active: String,
    ended: bool,
}

impl Relayed {
    /// Relays `inner`, the body of an answer from `active`.
    pub fn new(inner: Body, active: String) -> Self {
        Self {
            inner,
            active,
            ended: false,
        }
    }
}

impl HttpBody for Relayed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                let status = Status::unavailable(format!(
                    "the active node at {} stopped answering while the call was forwarded to it ({}); the call may or may not have been made: check, then retry",
                    self.active,
                    e.message()
                ));
                let mut trailers = HeaderMap::new();
                match status.add_header(&mut trailers) {
                    Ok(()) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                    Err(status) => Poll::Ready(Some(Err(status))),
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A body that yields its frames, then fails.
    struct Breaks(VecDeque<Bytes>);

    impl HttpBody for Breaks {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            Poll::Ready(Some(match self.0.pop_front() {
                Some(data) => Ok(Frame::data(data)),
                None => Err(Status::unknown("connection reset")),
            }))
        }
    }

    #[tokio::test]
    async fn a_broken_answer_ends_with_unavailable_trailers() {
        use http_body_util::BodyExt;
        let inner = Body::new(Breaks(VecDeque::from([Bytes::from_static(b"part")])));
        let mut body = Relayed::new(inner, "https://10.0.0.5:8201".into());
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"part"));
        let trailers = body
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_trailers()
            .unwrap();
        assert_eq!(trailers["grpc-status"], "14");
        let status = Status::from_header_map(&trailers).unwrap();
        assert!(
            status
                .message()
                .starts_with("the active node at https://10.0.0.5:8201 stopped answering"),
            "{}",
            status.message()
        );
        assert!(body.frame().await.is_none());
    }
}
