//! A loopback TCP proxy in front of a real server that a test can cut and
//! restore: a database going away (every connection dropped, new ones
//! refused) and coming back, for one service only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

pub struct CutProxy {
    port: u16,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    cut: AtomicBool,
    links: Mutex<Vec<AbortHandle>>,
}

impl CutProxy {
    /// Forwards a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.cut.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let link = tokio::spawn(forward(client, target));
                shared.links.lock().unwrap().push(link.abort_handle());
            }
        });
        Self {
            port,
            state,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every open connection and refuses new ones until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for link in self.state.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr) {
    if let Ok(mut server) = TcpStream::connect(target).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}
