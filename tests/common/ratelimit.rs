//! An HTTP proxy on loopback in front of one registry that rate-limits like Docker Hub: the
//! first `limit` requests are answered `429 Too Many Requests` with `Retry-After`, the rest
//! are forwarded. It counts what it saw, and every request that arrived while its last
//! `Retry-After` had not elapsed yet (`early`): a client that honours `Retry-After` has none.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What the proxy answered to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    TooManyRequests,
    Forwarded,
}

#[derive(Debug, Default)]
struct State {
    /// 429s still to give.
    limit: u32,
    /// No request should arrive before this (the last 429's `Retry-After`).
    not_before: Option<Instant>,
    early: u32,
    log: Vec<(Instant, Answer, String)>,
}

pub struct RateLimiter {
    host: String,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
}

/// The counts a test reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub throttled: usize,
    pub forwarded: usize,
    /// Requests that arrived before the last `Retry-After` elapsed.
    pub early: u32,
}

impl RateLimiter {
    /// Proxies 127.0.0.1:<free port> to `upstream` (a plain-HTTP registry, host:port),
    /// answering the first `limit` requests 429 with `Retry-After: retry_after` seconds.
    pub fn start(upstream: &str, limit: u32, retry_after: u64) -> RateLimiter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the rate-limiting proxy");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let host = listener.local_addr().expect("its address").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State {
            limit,
            ..State::default()
        }));
        let (flag, shared, upstream) = (Arc::clone(&stop), Arc::clone(&state), upstream.to_owned());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let (upstream, state) = (upstream.clone(), Arc::clone(&shared));
                        std::thread::spawn(move || serve(client, &upstream, &state, retry_after));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RateLimiter { host, stop, state }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn counts(&self) -> Counts {
        let state = self.lock();
        let count = |a: Answer| state.log.iter().filter(|(_, x, _)| *x == a).count();
        Counts {
            throttled: count(Answer::TooManyRequests),
            forwarded: count(Answer::Forwarded),
            early: state.early,
        }
    }

    /// Every request: when it arrived, what it got, its request line.
    pub fn log(&self) -> Vec<(Instant, Answer, String)> {
        self.lock().log.clone()
    }
}

impl Drop for RateLimiter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one request head (and its body, by Content-Length); `None` for a TLS hello (the
/// client tries HTTPS first: closing makes it fall back to HTTP, uncounted) or a closed
/// connection.
fn read_request(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        if buf.first() == Some(&0x16) {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

/// One connection, one request: answered 429, or forwarded with `Connection: close`.
fn serve(mut client: TcpStream, upstream: &str, state: &Mutex<State>, retry_after: u64) {
    let Some((head, body)) = read_request(&mut client) else {
        return;
    };
    let line = head.lines().next().unwrap_or_default().to_owned();
    let now = Instant::now();
    let answer = {
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.not_before.is_some_and(|t| now < t) {
            s.early += 1;
        }
        let answer = if s.limit > 0 {
            s.limit -= 1;
            s.not_before = Some(now + Duration::from_secs(retry_after));
            Answer::TooManyRequests
        } else {
            Answer::Forwarded
        };
        s.log.push((now, answer, line));
        answer
    };
    if answer == Answer::TooManyRequests {
        let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#;
        let _ = write!(
            client,
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let mut forwarded: String = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    forwarded.push_str("Connection: close\r\n\r\n");
    if server.write_all(forwarded.as_bytes()).is_err() || server.write_all(&body).is_err() {
        return;
    }
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}
