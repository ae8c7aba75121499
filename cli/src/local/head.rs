//! The local gateway's first line of defence: a request head read within a time limit and
//! size limits, refused with problem+json when it is too slow, too large or malformed, before
//! hyper sees it (hyper's own refusals are bare statuses, and the API promises problem+json
//! for every error). A head that passes is handed to hyper with the bytes already read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use eventfold::lambda::http::{PROBLEM_JSON, Problem, ProblemType, kinds};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// How long a client has to send its whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to send the body once the head is in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;
/// Longest request target.
pub const MAX_URI_BYTES: usize = 4 * 1024;

/// Why a head was refused.
#[derive(Debug)]
pub enum HeadRefusal {
    /// A problem to answer with before closing.
    Answer(Problem),
    /// The client went away or sent nothing: close without an answer.
    Gone,
}

/// The problem for a head or body that took too long.
pub const REQUEST_TIMEOUT: ProblemType =
    ProblemType::new(408, "request-timeout", "Request timeout");

/// Reads a request head (through the blank line) within `timeout` and the limits. Returns
/// every byte read, the start of the body included.
pub async fn read_head(stream: &mut TcpStream, timeout: Duration) -> Result<Bytes, HeadRefusal> {
    let mut buffer = BytesMut::with_capacity(2048);
    let reading = async {
        loop {
            if let Some(outcome) = judge(&buffer)? {
                return Ok(outcome);
            }
            if buffer.len() >= MAX_HEAD_BYTES {
                return Err(HeadRefusal::Answer(Problem::new(
                    kinds::HEADERS_TOO_LARGE,
                    format!("the request head is over {MAX_HEAD_BYTES} bytes"),
                )));
            }
            let read = stream
                .read_buf(&mut buffer)
                .await
                .map_err(|_| HeadRefusal::Gone)?;
            if read == 0 {
                return Err(HeadRefusal::Gone);
            }
        }
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(Ok(())) => Ok(buffer.freeze()),
        Ok(Err(refusal)) => Err(refusal),
        Err(_) if buffer.is_empty() => Err(HeadRefusal::Gone),
        Err(_) => Err(HeadRefusal::Answer(Problem::new(
            REQUEST_TIMEOUT,
            format!(
                "the request head did not arrive within {} ms",
                timeout.as_millis()
            ),
        ))),
    }
}

/// `Some(())` once a complete, acceptable head is buffered; `None` while more is needed.
fn judge(buffer: &[u8]) -> Result<Option<()>, HeadRefusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let target_too_long =
        |request: &httparse::Request<'_, '_>| request.path.is_some_and(|p| p.len() > MAX_URI_BYTES);
    match request.parse(buffer) {
        Ok(httparse::Status::Complete(_)) if target_too_long(&request) => {
            Err(HeadRefusal::Answer(uri_too_long()))
        }
        Ok(httparse::Status::Complete(_)) => Ok(Some(())),
        Ok(httparse::Status::Partial) => {
            // The target alone can be judged before the head is complete.
            let line_end = buffer.windows(2).position(|w| w == b"\r\n");
            let target_len = buffer.split(|b| *b == b' ').nth(1).map_or(0, <[u8]>::len);
            if target_len > MAX_URI_BYTES && line_end.is_none_or(|end| end > MAX_URI_BYTES) {
                return Err(HeadRefusal::Answer(uri_too_long()));
            }
            Ok(None)
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadRefusal::Answer(Problem::new(
            kinds::HEADERS_TOO_LARGE,
            format!("at most {MAX_HEADERS} headers are accepted"),
        ))),
        Err(error) => Err(HeadRefusal::Answer(Problem::new(
            kinds::INVALID_REQUEST,
            format!("the request is not valid HTTP/1.1: {error}"),
        ))),
    }
}

fn uri_too_long() -> Problem {
    Problem::new(
        kinds::URI_TOO_LONG,
        format!("the request target is over {MAX_URI_BYTES} bytes"),
    )
}

/// Writes a problem as the whole answer, then closes.
pub async fn answer_and_close(stream: &mut TcpStream, problem: &Problem) {
    let body = problem.body("").to_string();
    let status = problem.status();
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    // The client may be gone already; there is nobody to tell.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A stream that yields the bytes already read before reading on.
#[derive(Debug)]
pub struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl Rewind {
    /// `prefix`, then whatever `inner` still has.
    pub fn new(prefix: Bytes, inner: TcpStream) -> Self {
        Self { prefix, inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(head: &str) -> Option<u16> {
        match judge(head.as_bytes()) {
            Err(HeadRefusal::Answer(problem)) => Some(problem.status()),
            _ => None,
        }
    }

    #[test]
    fn heads_are_judged_by_the_limits() {
        assert!(matches!(
            judge(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"),
            Ok(Some(()))
        ));
        assert!(matches!(judge(b"GET / HTTP/1.1\r\nhost: x\r\n"), Ok(None)));
        assert_eq!(refused("GET\x01 / HTTP/1.1\r\n\r\n"), Some(400));
        let many: String = (0..=MAX_HEADERS).map(|n| format!("x-{n}: y\r\n")).collect();
        assert_eq!(refused(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Some(431));
        let long = "a".repeat(MAX_URI_BYTES + 1);
        assert_eq!(refused(&format!("GET /{long} HTTP/1.1\r\n\r\n")), Some(414));
        assert_eq!(
            refused(&format!("GET /{long}")),
            Some(414),
            "before the line ends"
        );
    }
}
