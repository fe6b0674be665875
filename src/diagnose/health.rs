//! The one question diagnose asks a strongroom it finds running: Vault's
//! `GET /v1/sys/health`, with every state answering 200 so the body alone
//! tells it. Used by the storage area (a daemon holds the store) and the
//! listener area (something holds the address). Nothing read is trusted:
//! the answer is bounded and only its shape is looked at.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most of an answer read: a health answer is a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// Sends the health request on `stream` (to `host`) and returns the JSON
/// body of the answer; the error is one sentence.
pub async fn ask(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    host: &str,
) -> Result<serde_json::Value, String> {
    let request = format!(
        "GET /v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // A peer that closes without TLS's close_notify still sent its answer:
    // what was read counts, whatever ended the read.
    let read = (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await;
    if answer.is_empty()
        && let Err(e) = read
    {
        return Err(e.to_string());
    }
    body(&answer)
}

/// The JSON object after the headers of `answer`: from the first brace to
/// the last (a chunked body has its sizes around it).
pub fn body(answer: &[u8]) -> Result<serde_json::Value, String> {
    let text = String::from_utf8_lossy(answer);
    let (_, after) = text
        .split_once("\r\n\r\n")
        .ok_or("its answer is not an HTTP answer")?;
    let json = after
        .find('{')
        .zip(after.rfind('}'))
        .and_then(|(start, end)| after.get(start..=end))
        .ok_or("its answer has no JSON body")?;
    serde_json::from_str(json).map_err(|_| "its answer's body is not JSON".to_string())
}

#[cfg(test)]
mod tests {
    use super::body;

    #[test]
    fn a_body_is_found_and_braces_out_of_order_do_not_panic() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1a\r\n{\"initialized\":true}\r\n0\r\n\r\n";
        assert_eq!(body(chunked).unwrap()["initialized"], true);
        for odd in [
            &b"HTTP/1.1 200 OK\r\n\r\n}{"[..],
            b"HTTP/1.1 200 OK\r\n\r\n} x {",
            b"HTTP/1.1 200 OK\r\n\r\n{",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
        ] {
            assert!(body(odd).is_err(), "{}", String::from_utf8_lossy(odd));
        }
    }
}
