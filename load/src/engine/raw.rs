//! The raw sockets of `burst`: write a request but its last byte, release the last bytes together,
//! and read each answer to the close, parsed here with httparse (the hot loop's keep-alive
//! connections are parsed by hyper, [`crate::engine::connection`]).

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::engine::connection::{Exchange, MAX_BODY};
use crate::plan::target::Target;

/// Connects to `target` and writes all of `raw` but its last byte; `None` if that fails, in which
/// case the server cannot have carried the request out.
pub(crate) async fn withhold(target: &Target, raw: &[u8], timeout: Duration) -> Option<TcpStream> {
    let connect = async {
        let mut stream = TcpStream::connect(&target.addrs[..]).await.ok()?;
        stream.set_nodelay(true).ok()?;
        stream.write_all(&raw[..raw.len() - 1]).await.ok()?;
        Some(stream)
    };
    tokio::time::timeout(timeout, connect).await.ok().flatten()
}

/// Reads the whole answer (the request asked the server to close after it), up to a head and
/// [`MAX_BODY`]: a longer answer is an acknowledgement whose body is not read.
async fn read_answer(stream: Option<TcpStream>, timeout: Duration) -> Exchange {
    let Some(stream) = stream else {
        return Exchange::NotSent;
    };
    let cap = MAX_HEAD + MAX_BODY;
    let mut buffer = Vec::new();
    let mut capped = stream.take(cap as u64);
    let read = tokio::time::timeout(timeout, capped.read_to_end(&mut buffer)).await;
    if buffer.len() >= cap && parse_response(&buffer).is_none() {
        if let Some(status) = parse_status(&buffer) {
            return Exchange::Oversized { status };
        }
    }
    match read {
        Err(_) => match parse_response(&buffer) {
            // Answered in full, but the server kept the connection open.
            Some((status, body)) => Exchange::Answer {
                status,
                body: Some(body),
                hint: None,
            },
            None => Exchange::TimedOut,
        },
        Ok(_) => match parse_response(&buffer) {
            Some((status, body)) => Exchange::Answer {
                status,
                body: Some(body),
                hint: None,
            },
            None => Exchange::Broken,
        },
    }
}

/// The most bytes of an answer's head read before its body.
const MAX_HEAD: usize = 16 * 1024;

/// The status of an answer whose head is complete.
fn parse_status(bytes: &[u8]) -> Option<StatusCode> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(_) = response.parse(bytes).ok()? else {
        return None;
    };
    StatusCode::from_u16(response.code?).ok()
}

/// The status and body of a complete HTTP/1.1 answer (`Content-Length`, chunked, or up to the
/// close); `None` when incomplete.
fn parse_response(bytes: &[u8]) -> Option<(StatusCode, Bytes)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response.parse(bytes).ok()? else {
        return None;
    };
    let status = StatusCode::from_u16(response.code?).ok()?;
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .and_then(|header| std::str::from_utf8(header.value).ok())
    };
    let rest = &bytes[head..];
    let body = if header("transfer-encoding").is_some_and(|value| value.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        rest.get(..length.trim().parse::<usize>().ok()?)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some((status, Bytes::from(body)))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Sends the last byte of every withheld request, back to back; returns the time from the first
/// last byte to the last. A stream that fails here is dropped (its request was never complete).
pub(crate) async fn release(streams: &mut [Option<TcpStream>], raws: &[Vec<u8>]) -> Duration {
    let released = Instant::now();
    let mut last_sent = released;
    for (stream, raw) in streams.iter_mut().zip(raws) {
        if let Some(open) = stream {
            if open.write_all(&raw[raw.len() - 1..]).await.is_err() {
                *stream = None;
            }
            last_sent = Instant::now();
        }
    }
    last_sent.duration_since(released)
}

/// Reads every stream's answer at once, in the order of the streams.
pub(crate) async fn read_answers(
    streams: Vec<Option<TcpStream>>,
    timeout: Duration,
) -> Vec<Exchange> {
    let readers: Vec<_> = streams
        .into_iter()
        .map(|stream| tokio::spawn(read_answer(stream, timeout)))
        .collect();
    let mut answers = Vec::with_capacity(readers.len());
    for reader in readers {
        answers.push(reader.await.unwrap_or(Exchange::Broken));
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_with_a_length_chunked_or_up_to_the_close() {
        let (status, body) =
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"balance\":5}")
                .unwrap();
        assert_eq!((status.as_u16(), &body[..]), (200, &b"{\"balance\":5}"[..]));
        let (_, body) = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"bal\r\n8\r\nance\":5}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(&body[..], b"{\"balance\":5}");
        let (status, body) = parse_response(b"HTTP/1.1 409 Conflict\r\n\r\nno").unwrap();
        assert_eq!((status.as_u16(), &body[..]), (409, &b"no"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"bal").is_none());
        assert!(parse_response(b"HTTP/1.1 200").is_none());
    }
}
