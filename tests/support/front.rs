//! [`Front`]: a listener on a free loopback port whose connections a test's handler serves on a
//! thread with its own tokio runtime, until the front is dropped. The Kafka fronts
//! ([`TlsFront`](super::tls::TlsFront), [`PlainFront`](super::sasl_plain::PlainFront)) are
//! built on it.

use std::future::Future;

use tokio::net::TcpStream;

use super::free_port;

/// Accepts on `port` and hands each connection to its handler. Stops accepting when dropped.
pub struct Front {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Front {
    /// Serves every accepted connection with `serve` (spawned: connections run concurrently).
    pub fn start<F, Fut>(serve: F) -> Front
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let port = free_port();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (client, _) = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(accepted) => accepted,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => return,
                    };
                    tokio::spawn(serve(client));
                }
            });
        });
        Front {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
