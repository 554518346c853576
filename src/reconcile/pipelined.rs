//! One HTTP/1.1 connection to the API server that carries several requests at once
//! (pipelining, RFC 9112 §9.3): requests are written as they come, those queued together in one
//! write, and the answers, which the server sends in the order of the requests, are read back to
//! back, several in one read when they arrived together.
//!
//! A cold run writes 4,000 times, in bursts (the 40 workloads of an image are patched when its
//! copy is verified, and their Events follow). One request at a time per connection, each write
//! is a `writev` and each answer a read and a wake-up: on loopback TCP the sender's `writev`
//! also runs the receiver's side of the stack, and the connections' tasks were 36 % of
//! image-cloner's CPU in a cold `run --once` (perf, frame pointers). Two bare clients over
//! rustls, 4,000 PATCHes of 900 bytes in bursts of 40 on 8 connections to a hyper server on
//! loopback, the client thread's CPU (`getrusage(RUSAGE_THREAD)`, three runs each): hyper's
//! client one at a time 51–58 ms, pipelined 26–29 ms.
//!
//! The server still works on one request of a connection at a time (Go's, and hyper's, read
//! the next request after answering the one before), so it sees no more requests at once than
//! there are connections. A slow answer holds up those behind it on its connection, which is
//! why the writer queues on the connection with the fewest outstanding and keeps the depth low.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::http1_answer::{Answer, take_answer};

/// Bytes read from the connection at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Why a request sent on a pipelined connection got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unanswered {
    /// The connection ended before a byte of this request's answer came: the server closed it
    /// after an earlier answer (`Connection: close`), or while idle, or the write failed. Go's
    /// server does not start a request it will not answer, so such a request is sent again.
    #[error("the connection to the API server ended before this request was answered ({0})")]
    NotStarted(String),
    /// The connection broke while this request's answer was being read: the server may have
    /// acted on it, so it is not sent again.
    #[error("the connection to the API server broke during an answer: {0}")]
    Broken(String),
}

type Answered = Result<Answer, Unanswered>;

/// How a connection ended: in order (`Ok`: the server closed it between answers, or it is no
/// longer needed), or failed, with why.
type Ending = Result<(), String>;

struct Job {
    /// The request's head and body, as sent.
    request: Bytes,
    answer: oneshot::Sender<Answered>,
}

/// A handle on one pipelined connection; cheap to clone. The connection ends when the server
/// closes it, when it fails, or once every handle is dropped and every answer is in.
#[derive(Clone)]
pub struct Pipelined {
    jobs: mpsc::UnboundedSender<Job>,
    outstanding: Arc<AtomicUsize>,
    answered: Arc<AtomicBool>,
}

impl Pipelined {
    /// Starts the task that drives `io`.
    pub fn start<IO>(io: IO) -> Pipelined
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let outstanding = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicBool::new(false));
        let mut connection = Connection {
            io,
            jobs: receiver,
            jobs_ended: false,
            out: Vec::new(),
            written: 0,
            unflushed: false,
            waiting: VecDeque::new(),
            read: BytesMut::with_capacity(READ_CHUNK),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            outstanding: Arc::clone(&outstanding),
            answered: Arc::clone(&answered),
        };
        tokio::spawn(async move {
            let ended = std::future::poll_fn(|cx| connection.poll_run(cx)).await;
            connection.end(&ended);
            if let Err(why) = ended {
                tracing::debug!(why, "a write connection to the API server ended");
            }
        });
        Pipelined {
            jobs,
            outstanding,
            answered,
        }
    }

    /// Whether the server has answered a request on this connection.
    pub fn has_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// Requests sent and not yet answered (nor failed).
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Whether the connection has ended: nothing sent on it will be answered.
    pub fn is_closed(&self) -> bool {
        self.jobs.is_closed()
    }

    /// Queues `request` (its head and body, as sent); its answer comes on the receiver.
    /// `None` when the connection has ended.
    pub fn send(&self, request: Bytes) -> Option<oneshot::Receiver<Answered>> {
        let (answer, answered) = oneshot::channel();
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        if self.jobs.send(Job { request, answer }).is_err() {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(answered)
    }
}

/// The connection's task's state.
struct Connection<IO> {
    io: IO,
    jobs: mpsc::UnboundedReceiver<Job>,
    /// Every handle is gone: end once the answers are in.
    jobs_ended: bool,
    /// Requests taken and not yet written whole.
    out: Vec<u8>,
    written: usize,
    unflushed: bool,
    /// The requests written (or being written) whose answers have not come, in order.
    waiting: VecDeque<oneshot::Sender<Answered>>,
    /// Read and not yet taken as answers.
    read: BytesMut,
    scratch: Box<[u8]>,
    outstanding: Arc<AtomicUsize>,
    answered: Arc<AtomicBool>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Connection<IO> {
    /// Drives the connection until it ends.
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        loop {
            let mut progress = self.take_jobs(cx);
            progress |= match self.poll_write(cx) {
                Poll::Ready(Ok(wrote)) => wrote,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("writing: {e}"))),
                Poll::Pending => false,
            };
            match self.poll_read(cx) {
                Poll::Ready(Ok(true)) => progress = true,
                Poll::Ready(Ok(false)) => {}
                Poll::Ready(Err(ended)) => return Poll::Ready(ended),
                Poll::Pending => {}
            }
            if self.jobs_ended && self.waiting.is_empty() && self.out.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Takes every queued request into the output; whether any was.
    fn take_jobs(&mut self, cx: &mut Context<'_>) -> bool {
        let mut took = false;
        while !self.jobs_ended {
            match self.jobs.poll_recv(cx) {
                Poll::Ready(Some(job)) => {
                    self.out.extend_from_slice(&job.request);
                    self.waiting.push_back(job.answer);
                    took = true;
                }
                Poll::Ready(None) => self.jobs_ended = true,
                Poll::Pending => break,
            }
        }
        took
    }

    /// Writes what is taken and flushes it; whether anything was written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<bool>> {
        let mut wrote = false;
        while self.written < self.out.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.unflushed = true;
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if wrote => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        if self.unflushed {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(wrote))
    }

    /// Reads, and hands out every whole answer read; `Ok(true)` when anything was read or
    /// answered, `Err` when the connection has ended (in order or not).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, Ending>> {
        let mut progress = false;
        loop {
            match take_answer(&mut self.read, false) {
                Ok(Some(answer)) => {
                    let closes = answer.closes;
                    self.answer(answer)?;
                    progress = true;
                    if closes {
                        return Poll::Ready(Err(Ok(())));
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(Err(e.to_string()))),
            }
            let mut buf = ReadBuf::new(&mut self.scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    // The server closed its side: a body without a length ends here.
                    if let Ok(Some(answer)) = take_answer(&mut self.read, true) {
                        self.answer(answer)?;
                    }
                    return Poll::Ready(Err(Ok(())));
                }
                Poll::Ready(Ok(())) => {
                    self.read.extend_from_slice(buf.filled());
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Err(format!("reading: {e}")))),
                Poll::Pending if progress => return Poll::Ready(Ok(true)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Hands `answer` to the oldest request waiting for one.
    fn answer(&mut self, answer: Answer) -> Result<(), Ending> {
        let Some(waiting) = self.waiting.pop_front() else {
            return Err(Err(format!(
                "the API server answered ({}) a request that was not sent",
                answer.status
            )));
        };
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.answered.store(true, Ordering::Relaxed);
        // The caller may have stopped waiting (its timeout): the answer is dropped.
        let _ = waiting.send(Ok(answer));
        Ok(())
    }

    /// Fails every request still waiting, and every one still queued: the one whose answer was
    /// being read as broken, the rest as not started.
    fn end(&mut self, ended: &Ending) {
        let why = match ended {
            Ok(()) => "closed by the server".to_owned(),
            Err(why) => why.clone(),
        };
        self.jobs.close();
        while let Ok(job) = self.jobs.try_recv() {
            self.waiting.push_back(job.answer);
        }
        let mut front_started = !self.read.is_empty();
        for waiting in self.waiting.drain(..) {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
            let failed = if std::mem::take(&mut front_started) {
                Unanswered::Broken(why.clone())
            } else {
                Unanswered::NotStarted(why.clone())
            };
            let _ = waiting.send(Err(failed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn request(n: usize) -> Bytes {
        Bytes::from(format!(
            "POST /r/{n} HTTP/1.1\r\nhost: test\r\ncontent-length: 2\r\n\r\n{{}}"
        ))
    }

    /// Reads `count` whole requests (each ends with `{}`) from `server`; their paths.
    async fn read_requests(server: &mut tokio::io::DuplexStream, count: usize) -> Vec<String> {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while text.matches("{}").count() < count {
            let n = server.read(&mut buf).await.expect("read");
            assert!(n > 0, "the client closed early");
            text.push_str(std::str::from_utf8(&buf[..n]).expect("text"));
        }
        text.split("POST ")
            .filter_map(|r| r.split(' ').next())
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn requests_go_out_before_earlier_ones_are_answered_and_answers_come_back_in_order() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let connection = Pipelined::start(client);
        let answers: Vec<_> = (0..5)
            .map(|n| connection.send(request(n)).expect("open"))
            .collect();
        assert_eq!(connection.outstanding(), 5);
        // All five arrive before the server answers any.
        let paths = read_requests(&mut server, 5).await;
        assert_eq!(paths, ["/r/0", "/r/1", "/r/2", "/r/3", "/r/4"]);
        // Answered in one write, the last split across two.
        let all: String = (0..5).map(|n| ok(&format!("\"{n}\""))).collect();
        let (first, second) = all.split_at(all.len() - 3);
        server.write_all(first.as_bytes()).await.expect("answer");
        tokio::task::yield_now().await;
        server.write_all(second.as_bytes()).await.expect("answer");
        for (n, answer) in answers.into_iter().enumerate() {
            let answer = answer.await.expect("delivered").expect("answered");
            assert_eq!(answer.body, format!("\"{n}\""));
        }
        assert_eq!(connection.outstanding(), 0);
        assert!(!connection.is_closed());
    }

    #[tokio::test]
    async fn after_an_answer_that_closes_the_rest_are_not_started_and_the_connection_ends() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let connection = Pipelined::start(client);
        let answers: Vec<_> = (0..3)
            .map(|n| connection.send(request(n)).expect("open"))
            .collect();
        read_requests(&mut server, 3).await;
        server
            .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            .await
            .expect("answer");
        let mut answers = answers.into_iter();
        let first = answers.next().expect("one").await.expect("delivered");
        assert_eq!(first.expect("answered").status, 200);
        for answer in answers {
            let failed = answer.await.expect("delivered").expect_err("not answered");
            assert!(matches!(failed, Unanswered::NotStarted(_)), "{failed:?}");
        }
        assert_eq!(connection.outstanding(), 0);
        // The task has ended, so nothing more is taken.
        tokio::task::yield_now().await;
        assert!(connection.is_closed());
        assert!(connection.send(request(9)).is_none());
    }

    #[tokio::test]
    async fn a_connection_that_breaks_mid_answer_fails_that_request_as_broken() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let connection = Pipelined::start(client);
        let first = connection.send(request(0)).expect("open");
        let second = connection.send(request(1)).expect("open");
        read_requests(&mut server, 2).await;
        server
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{\"a\"")
            .await
            .expect("part of an answer");
        drop(server);
        let first = first.await.expect("delivered").expect_err("broken");
        assert!(matches!(first, Unanswered::Broken(_)), "{first:?}");
        let second = second.await.expect("delivered").expect_err("not started");
        assert!(matches!(second, Unanswered::NotStarted(_)), "{second:?}");
    }

    #[tokio::test]
    async fn an_answer_nobody_asked_for_ends_the_connection() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let connection = Pipelined::start(client);
        server.write_all(ok("{}").as_bytes()).await.expect("answer");
        let mut closed = false;
        for _ in 0..100 {
            tokio::task::yield_now().await;
            if connection.is_closed() {
                closed = true;
                break;
            }
        }
        assert!(closed, "the connection was kept");
    }
}
