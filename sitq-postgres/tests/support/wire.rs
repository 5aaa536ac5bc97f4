//! A TCP proxy to the test server that reads the PostgreSQL protocol going
//! by and counts statements and round trips, so tests can say how many of
//! each a call costs.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// What clients sent through the proxy so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Statements executed: `Bind` (extended protocol) and `Query` (simple).
    pub statements: u64,
    /// Round trips that executed statements: a `Sync` after a `Bind`, or a `Query`.
    pub statement_round_trips: u64,
    /// Round trips that only prepared a statement (`Parse`, no `Bind`).
    pub prepares: u64,
    /// Round trips with nothing in them: a bare `Sync`, sqlx's ping.
    pub pings: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, earlier: Counts) -> Counts {
        Counts {
            statements: self.statements - earlier.statements,
            statement_round_trips: self.statement_round_trips - earlier.statement_round_trips,
            prepares: self.prepares - earlier.prepares,
            pings: self.pings - earlier.pings,
        }
    }
}

/// Forwards connections on a local port to the server, counting.
pub struct CountingProxy {
    port: u16,
    database: String,
    user: String,
    counts: Arc<Mutex<Counts>>,
    task: JoinHandle<()>,
}

impl CountingProxy {
    /// A proxy to the server and database of `url`.
    pub async fn to(url: &str) -> CountingProxy {
        let options = PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
        let target: SocketAddr = tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await
            .expect("resolve the server")
            .next()
            .expect("an address");
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the proxy port");
        let port = listener.local_addr().expect("address").port();
        let counts = Arc::new(Mutex::new(Counts::default()));
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let counts = shared.clone();
                connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        forward(client, server, counts).await;
                    }
                });
            }
        });
        CountingProxy {
            port,
            database: options.get_database().expect("a database").to_owned(),
            user: options.get_username().to_owned(),
            counts,
            task,
        }
    }

    /// The database's URL through the proxy. Without TLS, so that every
    /// message is readable.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}?sslmode=disable",
            self.user, self.port, self.database
        )
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until either side closes, reading the client's messages.
async fn forward(client: TcpStream, server: TcpStream, counts: Arc<Mutex<Counts>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut reader = MessageReader::default();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            {
                let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                reader.feed(&buffer[..read], &mut counts);
            }
            if server_write.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        tokio::io::copy(&mut server_read, &mut client_write)
            .await
            .ok();
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

/// Splits the client's byte stream into messages: first the untyped
/// startup message, then (type byte, length, body) frames.
#[derive(Default)]
struct MessageReader {
    buffer: Vec<u8>,
    started: bool,
    bound: bool,
    parsed: bool,
}

impl MessageReader {
    fn feed(&mut self, bytes: &[u8], counts: &mut Counts) {
        self.buffer.extend_from_slice(bytes);
        loop {
            let header = if self.started { 5 } else { 4 };
            if self.buffer.len() < header {
                return;
            }
            let at = header - 4;
            let length = u32::from_be_bytes([
                self.buffer[at],
                self.buffer[at + 1],
                self.buffer[at + 2],
                self.buffer[at + 3],
            ]);
            let total = at + usize::try_from(length).expect("a length");
            if self.buffer.len() < total {
                return;
            }
            if self.started {
                self.message(self.buffer[0], counts);
            }
            self.started = true;
            self.buffer.drain(..total);
        }
    }

    fn message(&mut self, kind: u8, counts: &mut Counts) {
        match kind {
            b'P' => self.parsed = true,
            b'B' => {
                self.bound = true;
                counts.statements += 1;
            }
            b'Q' => {
                counts.statements += 1;
                counts.statement_round_trips += 1;
            }
            b'S' => {
                if self.bound {
                    counts.statement_round_trips += 1;
                } else if self.parsed {
                    counts.prepares += 1;
                } else {
                    counts.pings += 1;
                }
                self.bound = false;
                self.parsed = false;
            }
            _ => {}
        }
    }
}
