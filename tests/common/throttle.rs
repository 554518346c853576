//! A TCP proxy on loopback that slows one direction down: a registry behind it serves blobs at
//! a given rate, so a test can catch a copy in the middle.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Throttle {
    host: String,
    stop: Arc<AtomicBool>,
}

impl Throttle {
    /// Forwards 127.0.0.1:<free port> to `upstream` (host:port); what `upstream` sends back
    /// arrives at `bytes_per_second`.
    pub fn start(upstream: &str, bytes_per_second: usize) -> Throttle {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the throttling proxy");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let host = listener.local_addr().expect("its address").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, upstream) = (Arc::clone(&stop), upstream.to_owned());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let upstream = upstream.clone();
                        std::thread::spawn(move || relay(client, &upstream, bytes_per_second));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Throttle { host, stop }
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

fn relay(client: TcpStream, upstream: &str, rate: usize) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Requests go up at full speed.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    // Answers come back in tenth-of-a-second slices.
    let (mut s_read, mut c_write) = (server, client);
    let mut buf = vec![0u8; (rate / 10).max(1)];
    loop {
        match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let _ = c_write.shutdown(Shutdown::Write);
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
