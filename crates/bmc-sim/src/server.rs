//! Listening sockets and connections of the BMCs.
//!
//! Each BMC has its own listener on its own loopback address. While a BMC is down (restart,
//! `refuse` outage) its listener is closed, so connections are refused, and its open connections
//! are dropped. A reset fault closes the connection with `SO_LINGER 0`, which sends a TCP RST.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::bmc::Bmc;
use crate::error::SimError;

/// Per-connection flags shared between the connection and its request handlers.
#[derive(Default)]
pub(crate) struct ConnCtx {
    /// Close with a TCP RST instead of a FIN.
    pub reset: AtomicBool,
    /// This connection asked the BMC to restart: let it finish its answer.
    pub exempt: AtomicBool,
}

/// A TCP stream that resets the connection when dropped if asked to.
struct ResetIo {
    inner: TcpStream,
    ctx: Arc<ConnCtx>,
}

impl Drop for ResetIo {
    fn drop(&mut self) {
        if self.ctx.reset.load(Ordering::Relaxed) {
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ResetIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Binds a listening socket (`SO_REUSEADDR`, non-blocking).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Binds every address on one port. Port 0: the first address picks a free port, the others take
/// the same number; if one of them has it taken, everything is released and another port tried.
pub(crate) fn bind_all(
    ips: &[Ipv4Addr],
    port: u16,
) -> Result<(u16, Vec<std::net::TcpListener>), SimError> {
    const ATTEMPTS: usize = 32;
    let bind_one = |ip: Ipv4Addr, port: u16| {
        let addr = SocketAddr::V4(SocketAddrV4::new(ip, port));
        bind(addr).map_err(|source| SimError::Bind { addr, source })
    };
    if port != 0 {
        let listeners = ips
            .iter()
            .map(|ip| bind_one(*ip, port))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((port, listeners));
    }
    for _ in 0..ATTEMPTS {
        let first = bind_one(ips[0], 0)?;
        let chosen = first
            .local_addr()
            .map_err(|source| SimError::Bind {
                addr: SocketAddr::from((ips[0], 0)),
                source,
            })?
            .port();
        let mut listeners = Vec::with_capacity(ips.len());
        listeners.push(first);
        let mut clash = false;
        for ip in &ips[1..] {
            match bind_one(*ip, chosen) {
                Ok(l) => listeners.push(l),
                Err(SimError::Bind { source, .. }) if source.kind() == io::ErrorKind::AddrInUse => {
                    clash = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !clash {
            return Ok((chosen, listeners));
        }
    }
    Err(SimError::NoCommonPort {
        count: ips.len(),
        attempts: ATTEMPTS,
    })
}

/// Accepts connections for one BMC while it is up, for as long as the simulator runs.
pub(crate) async fn run_listener(bmc: Arc<Bmc>, first: TcpListener) {
    let shutdown = bmc.shared.shutdown.clone();
    let mut up = bmc.up.subscribe();
    let mut listener = Some(first);
    let addr = SocketAddr::V4(SocketAddrV4::new(bmc.ip, bmc.port));
    loop {
        if !*up.borrow_and_update() {
            listener = None;
            tokio::select! {
                r = up.changed() => if r.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match bind(addr).and_then(TcpListener::from_std) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(bmc = bmc.index, %addr, error = %e, "cannot listen again; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            },
        };
        loop {
            tokio::select! {
                r = l.accept() => match r {
                    Ok((stream, _)) => {
                        tokio::spawn(serve(Arc::clone(&bmc), stream));
                    }
                    Err(e) => {
                        tracing::debug!(bmc = bmc.index, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                r = up.changed() => {
                    if r.is_err() {
                        return;
                    }
                    if !*up.borrow() {
                        break;
                    }
                }
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

struct ConnGauge(Arc<Bmc>);

impl Drop for ConnGauge {
    fn drop(&mut self) {
        self.0.shared.metrics.connections.dec();
    }
}

async fn serve(bmc: Arc<Bmc>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    bmc.shared.metrics.connections.inc();
    let _gauge = ConnGauge(Arc::clone(&bmc));
    let ctx = Arc::new(ConnCtx::default());
    let io = ResetIo {
        inner: stream,
        ctx: Arc::clone(&ctx),
    };
    let svc = {
        let bmc = Arc::clone(&bmc);
        let ctx = Arc::clone(&ctx);
        service_fn(move |req| crate::redfish::handle(Arc::clone(&bmc), Arc::clone(&ctx), req))
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(Some(Duration::from_secs(120)));
    match &bmc.shared.tls {
        Some(tls) => {
            let acceptor = match bmc.acceptor.get() {
                Some(a) => a.clone(),
                None => match tls.acceptor(bmc.ip) {
                    Ok(a) => bmc.acceptor.get_or_init(|| a).clone(),
                    Err(e) => {
                        tracing::error!(bmc = bmc.index, error = %e, "cannot make TLS certificate");
                        return;
                    }
                },
            };
            let tls_stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(io)).await {
                    Ok(Ok(s)) => s,
                    _ => return,
                };
            drive(
                &bmc,
                &ctx,
                builder.serve_connection(TokioIo::new(tls_stream), svc),
            )
            .await;
        }
        None => drive(&bmc, &ctx, builder.serve_connection(TokioIo::new(io), svc)).await,
    }
}

/// Runs a connection until it ends, the BMC goes down, or the simulator stops.
async fn drive<F: Future>(bmc: &Bmc, ctx: &ConnCtx, conn: F) {
    let shutdown = bmc.shared.shutdown.clone();
    let mut up = bmc.up.subscribe();
    tokio::pin!(conn);
    let went_down = tokio::select! {
        _ = &mut conn => false,
        down = async { up.wait_for(|u| !*u).await.is_ok() } => down,
        _ = shutdown.cancelled() => false,
    };
    if went_down && ctx.exempt.load(Ordering::Relaxed) {
        // The connection that restarted the BMC gets its answer (sent with Connection: close).
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut conn).await;
    }
}
