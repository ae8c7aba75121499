//! A TCP fault proxy between the SDK and the emulator, on 127.0.0.1: it passes traffic
//! through, or resets connections before a request reaches the emulator, or lets a request
//! through and loses its answer (the write lands, the caller never hears), or swallows
//! everything for a while (a blackhole). Faults are drawn per chunk, from a seeded generator.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How faulty the network is right now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Chance that a request chunk resets both connections instead of going through.
    pub reset: f64,
    /// Chance that an answer chunk is dropped, with both connections reset.
    pub lose_answer: f64,
    /// Until when nothing goes through and nothing comes back.
    pub blackhole_until: Option<Instant>,
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct FaultStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests reset before reaching the emulator.
    pub resets: AtomicU64,
    /// Answers lost after the emulator handled the request.
    pub lost_answers: AtomicU64,
    /// Chunks swallowed by a blackhole.
    pub blackholed: AtomicU64,
}

impl FaultStats {
    /// Faults injected in all.
    pub fn injected(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
            + self.lost_answers.load(Ordering::Relaxed)
            + self.blackholed.load(Ordering::Relaxed)
    }
}

/// A running proxy.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    /// Where clients connect: `http://127.0.0.1:<port>`.
    pub endpoint: String,
    faults: Arc<Mutex<Faults>>,
    rng: Arc<Mutex<fastrand::Rng>>,
    /// What it did.
    pub stats: Arc<FaultStats>,
}

enum Step {
    Pass,
    Reset,
    Swallow,
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:<port>`), faultless until told otherwise.
    pub async fn start(upstream: &str, seed: u64) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .expect("an http://host:port upstream");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let proxy = Self {
            endpoint,
            faults: Arc::default(),
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
            stats: Arc::default(),
        };
        let accepting = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accepting.stats.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(accepting.clone().carry(client, upstream));
            }
        });
        proxy
    }

    /// Sets the faults from now on.
    pub fn set(&self, faults: Faults) {
        *self.faults.lock().expect("faults") = faults;
    }

    /// Passes everything from now on.
    pub fn heal(&self) {
        self.set(Faults::default());
    }

    fn step(&self, answer: bool) -> Step {
        let faults = *self.faults.lock().expect("faults");
        if faults
            .blackhole_until
            .is_some_and(|until| Instant::now() < until)
        {
            self.stats.blackholed.fetch_add(1, Ordering::Relaxed);
            return Step::Swallow;
        }
        let chance = if answer {
            faults.lose_answer
        } else {
            faults.reset
        };
        if chance > 0.0 && self.rng.lock().expect("rng").f64() < chance {
            let counter = if answer {
                &self.stats.lost_answers
            } else {
                &self.stats.resets
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Step::Reset;
        }
        Step::Pass
    }

    async fn carry(self, client: TcpStream, upstream: SocketAddr) {
        let Ok(server) = TcpStream::connect(upstream).await else {
            return;
        };
        // Closing either side is then a reset (RST), as when a network drops a connection.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let requests = {
            let proxy = self.clone();
            async move {
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let n = client_read.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    match proxy.step(false) {
                        Step::Pass => {
                            if server_write.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                        Step::Reset => return,
                        Step::Swallow => {
                            proxy.hold_while_blackholed().await;
                            return;
                        }
                    }
                }
            }
        };
        let answers = {
            let proxy = self.clone();
            async move {
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let n = server_read.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    match proxy.step(true) {
                        Step::Pass => {
                            if client_write.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                        Step::Reset => return,
                        Step::Swallow => {
                            proxy.hold_while_blackholed().await;
                            return;
                        }
                    }
                }
            }
        };
        // Whichever side ends first ends both: a reset drops every half at once.
        tokio::select! {
            () = requests => {}
            () = answers => {}
        }
    }

    /// A blackholed connection stays open, silent, until the blackhole ends; then it closes.
    async fn hold_while_blackholed(&self) {
        loop {
            let until = self.faults.lock().expect("faults").blackhole_until;
            match until {
                Some(until) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return,
            }
        }
    }
}
