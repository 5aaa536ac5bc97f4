//! A TCP proxy to the test server that a test can cut and restore, standing
//! in for a server that goes away and comes back.

use std::net::SocketAddr;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Forwards connections on a local port to the server while up.
pub struct Proxy {
    port: u16,
    target: SocketAddr,
    /// The database URL it proxies, rewritten to go through the proxy.
    url: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy (up) to the server and database of `url`.
    pub async fn to(url: &str) -> Proxy {
        let options = PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
        let target = tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await
            .expect("resolve the server")
            .next()
            .expect("an address");
        let mut proxy = Proxy {
            port: 0,
            target,
            url: url.to_owned(),
            task: None,
        };
        proxy.up().await;
        proxy
    }

    /// The proxied database's URL through the proxy, with `connect_timeout`
    /// (seconds) bounding how long a call waits while the proxy is down.
    pub fn url(&self, connect_timeout: u64) -> String {
        let options = PgConnectOptions::from_str(&self.url).expect("a PostgreSQL URL");
        let database = options.get_database().expect("the URL names a database");
        format!(
            "postgres://{}@127.0.0.1:{}/{database}?connect_timeout={connect_timeout}",
            options.get_username(),
            self.port
        )
    }

    /// Listens (on the same port as before, if any) and forwards connections.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the proxy port");
        self.port = listener.local_addr().expect("address").port();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Owned here, so aborting this task closes every connection too.
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        tokio::io::copy_bidirectional(&mut client, &mut server)
                            .await
                            .ok();
                    }
                });
            }
        }));
    }

    /// Closes the port and every connection through it: new connections are
    /// refused, open ones see the other end go away.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            task.await.ok();
        }
    }
}
