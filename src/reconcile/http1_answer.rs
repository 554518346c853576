//! HTTP/1.1 answers read off a pipelined connection ([`super::pipelined`]): the answers to
//! several requests arrive back to back in one buffer, and each must be cut off exactly where
//! it ends, by its `Content-Length` or its chunked encoding, for the next to be read. Pure: the
//! connection hands in what it has read, and is told whether a whole answer is there.
//!
//! Only what the writer reads is kept: the status, a `Retry-After` (throttling), whether the
//! server closes the connection after this answer, and the body, whole.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderValue, StatusCode};

/// The most header fields an answer may carry (the API server sends about eight).
const MAX_HEADERS: usize = 64;
/// The largest answer body taken: a write's answer is an object's metadata or a Status, a few
/// kB; anything near this is not an answer to a write.
pub const MAX_BODY: usize = 16 << 20;

/// One answer, whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<HeaderValue>,
    /// The server closes the connection after this answer (`Connection: close`, or an HTTP/1.0
    /// answer without keep-alive, or a body that ends with the connection): requests sent after
    /// it on the same connection will not be answered there.
    pub closes: bool,
    pub body: Bytes,
}

/// What cannot be read as an answer: the connection is no longer usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("the API server's answer is not HTTP/1.x: {0}")]
    Malformed(String),
    #[error("the API server's answer has a body of over {MAX_BODY} bytes")]
    TooLarge,
}

/// Takes the first whole answer off the front of `read` (what the connection has read so far),
/// skipping informational (1xx) ones. `None` while more must be read; `at_end` says the server
/// has closed its side, which ends a body that had no length.
pub fn take_answer(read: &mut BytesMut, at_end: bool) -> Result<Option<Answer>, AnswerError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(read) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(AnswerError::Malformed(e.to_string())),
        };
        let code = response.code.unwrap_or_default();
        let status = StatusCode::from_u16(code)
            .map_err(|_| AnswerError::Malformed(format!("status {code}")))?;
        if status.is_informational() {
            read.advance(head_len);
            continue;
        }
        let head = Head::of(&response, status)?;
        let Some((body, used)) = head.body(&read[head_len..], at_end)? else {
            return Ok(None);
        };
        read.advance(head_len + used);
        return Ok(Some(Answer {
            status,
            retry_after: head.retry_after,
            closes: head.closes || head.framing == Framing::UntilClose,
            body,
        }));
    }
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// No length given: the body is whatever comes until the server closes (RFC 9112 §6.3).
    UntilClose,
}

/// What an answer's head says.
struct Head {
    framing: Framing,
    closes: bool,
    retry_after: Option<HeaderValue>,
}

impl Head {
    fn of(response: &httparse::Response<'_, '_>, status: StatusCode) -> Result<Head, AnswerError> {
        let http10 = response.version == Some(0);
        let mut closes = http10;
        let mut length = None;
        let mut chunked = false;
        let mut retry_after = None;
        for header in response.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| {
                        AnswerError::Malformed(format!(
                            "Content-Length {:?}",
                            String::from_utf8_lossy(header.value)
                        ))
                    })?;
                if length.is_some_and(|l| l != value) {
                    return Err(AnswerError::Malformed("two Content-Lengths".into()));
                }
                length = Some(value);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked is the last coding when it is there at all (RFC 9112 §6.1).
                chunked = header
                    .value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                if !chunked {
                    return Err(AnswerError::Malformed(format!(
                        "Transfer-Encoding {:?}",
                        String::from_utf8_lossy(header.value)
                    )));
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for option in header.value.split(|b| *b == b',') {
                    let option = option.trim_ascii();
                    if option.eq_ignore_ascii_case(b"close") {
                        closes = true;
                    } else if http10 && option.eq_ignore_ascii_case(b"keep-alive") {
                        closes = false;
                    }
                }
            } else if name.eq_ignore_ascii_case("retry-after") {
                retry_after = HeaderValue::from_bytes(header.value).ok();
            }
        }
        let framing = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked
        } else if let Some(length) = length {
            Framing::Length(length)
        } else {
            Framing::UntilClose
        };
        Ok(Head {
            framing,
            closes,
            retry_after,
        })
    }

    /// The body and the bytes it took after the head, once all of it is in `rest`.
    fn body(&self, rest: &[u8], at_end: bool) -> Result<Option<(Bytes, usize)>, AnswerError> {
        match self.framing {
            Framing::Length(length) if length > MAX_BODY => Err(AnswerError::TooLarge),
            Framing::Length(length) => {
                Ok((rest.len() >= length)
                    .then(|| (Bytes::copy_from_slice(&rest[..length]), length)))
            }
            Framing::UntilClose if rest.len() > MAX_BODY => Err(AnswerError::TooLarge),
            Framing::UntilClose => Ok(at_end.then(|| (Bytes::copy_from_slice(rest), rest.len()))),
            Framing::Chunked => dechunk(rest),
        }
    }
}

/// A chunked body (RFC 9112 §7.1), joined, and the bytes it took (trailers included), once its
/// last chunk and trailers are all in `rest`. The chunks are only located until then: the
/// connection calls again after each read, and a body copied at each call would be copied
/// once per read.
fn dechunk(rest: &[u8]) -> Result<Option<(Bytes, usize)>, AnswerError> {
    let mut chunks: Vec<std::ops::Range<usize>> = Vec::new();
    let mut length = 0;
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&rest[at..]) else {
            return Ok(None);
        };
        let line = &rest[at..at + line_end];
        let size_text = line
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 8)
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| {
                AnswerError::Malformed(format!(
                    "chunk size {:?}",
                    String::from_utf8_lossy(size_text)
                ))
            })?;
        at += line_end + 2;
        if size == 0 {
            // Trailers, each a line, then an empty line.
            loop {
                let Some(line_end) = find_crlf(&rest[at..]) else {
                    return Ok(None);
                };
                at += line_end + 2;
                if line_end == 0 {
                    let mut body = Vec::with_capacity(length);
                    for chunk in chunks {
                        body.extend_from_slice(&rest[chunk]);
                    }
                    return Ok(Some((Bytes::from(body), at)));
                }
            }
        }
        length += size;
        if length > MAX_BODY {
            return Err(AnswerError::TooLarge);
        }
        if rest.len() < at + size + 2 {
            return Ok(None);
        }
        chunks.push(at..at + size);
        at += size;
        if &rest[at..at + 2] != b"\r\n" {
            return Err(AnswerError::Malformed("a chunk not ended by CRLF".into()));
        }
        at += 2;
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_all(bytes: &[u8], at_end: bool) -> (Vec<Answer>, BytesMut) {
        let mut read = BytesMut::from(bytes);
        let mut answers = Vec::new();
        while let Some(answer) = take_answer(&mut read, at_end).expect("answers") {
            answers.push(answer);
        }
        (answers, read)
    }

    const LENGTH: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    const CHUNKED: &[u8] = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;name=x\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n";
    const THROTTLED: &[u8] =
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn answers_back_to_back_are_each_cut_where_they_end() {
        let together = [LENGTH, CHUNKED, THROTTLED, LENGTH].concat();
        let (answers, left) = take_all(&together, false);
        assert!(left.is_empty(), "{left:?}");
        let seen: Vec<_> = answers
            .iter()
            .map(|a| (a.status.as_u16(), a.body.clone(), a.closes))
            .collect();
        assert_eq!(
            seen,
            [
                (200, Bytes::from_static(b"{}"), false),
                (201, Bytes::from_static(b"{\"a\":1}"), false),
                (429, Bytes::new(), false),
                (200, Bytes::from_static(b"{}"), false),
            ]
        );
        assert_eq!(
            answers[2].retry_after.as_ref().map(|v| v.as_bytes()),
            Some(&b"3"[..])
        );
        assert_eq!(answers[0].retry_after, None);
    }

    /// However the bytes are split between reads, nothing is taken before an answer is whole,
    /// and each is taken once it is.
    #[test]
    fn an_answer_split_anywhere_is_taken_only_once_whole() {
        let together = [CHUNKED, LENGTH].concat();
        for cut in 0..together.len() {
            let mut read = BytesMut::from(&together[..cut]);
            let mut taken = Vec::new();
            while let Some(a) = take_answer(&mut read, false).expect("no error") {
                taken.push(a.status.as_u16());
            }
            let expected: &[u16] = if cut >= together.len() {
                &[201, 200]
            } else if cut >= CHUNKED.len() {
                &[201]
            } else {
                &[]
            };
            assert_eq!(taken, expected, "cut at {cut}");
            read.extend_from_slice(&together[cut..]);
            while let Some(a) = take_answer(&mut read, false).expect("no error") {
                taken.push(a.status.as_u16());
            }
            assert_eq!(taken, [201, 200], "cut at {cut}");
            assert!(read.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn informational_answers_are_skipped_and_bodiless_statuses_have_none() {
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx";
        let (answers, left) = take_all(bytes, false);
        assert!(left.is_empty());
        let codes: Vec<_> = answers.iter().map(|a| a.status.as_u16()).collect();
        assert_eq!(codes, [204, 200]);
        assert!(answers[0].body.is_empty());
    }

    #[test]
    fn an_answer_that_closes_the_connection_says_so() {
        let cases: [(&[u8], bool); 5] = [
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
                true,
            ),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            (
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        ];
        for (bytes, closes) in cases {
            let (answers, _) = take_all(bytes, false);
            assert_eq!(answers.len(), 1, "{}", String::from_utf8_lossy(bytes));
            assert_eq!(
                answers[0].closes,
                closes,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn a_body_without_a_length_ends_with_the_connection() {
        let bytes = b"HTTP/1.1 500 Internal Server Error\r\n\r\nsomething broke";
        let (answers, _) = take_all(bytes, false);
        assert!(answers.is_empty(), "taken before the server closed");
        let (answers, left) = take_all(bytes, true);
        assert_eq!(answers.len(), 1);
        assert_eq!(&answers[0].body[..], b"something broke");
        assert!(answers[0].closes);
        assert!(left.is_empty());
    }

    #[test]
    fn what_is_not_an_answer_is_an_error_naming_what_is_wrong() {
        let cases: [(&[u8], &str); 6] = [
            (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not HTTP/1.x"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n",
                "Content-Length \"two\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
                "two Content-Lengths",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                "Transfer-Encoding \"gzip\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "chunk size \"zz\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
                "not ended by CRLF",
            ),
        ];
        for (bytes, says) in cases {
            let mut read = BytesMut::from(bytes);
            let error = take_answer(&mut read, false)
                .expect_err("an error")
                .to_string();
            assert!(
                error.contains(says),
                "{error:?} for {}",
                String::from_utf8_lossy(bytes)
            );
        }
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let mut read = BytesMut::from(huge.as_bytes());
        assert_eq!(
            take_answer(&mut read, false).unwrap_err(),
            AnswerError::TooLarge
        );
    }
}
