//! `metalctl visualizer`: a small web page of the fleet by rack. A kube watch keeps an in-memory
//! copy of the Servers; `/api/fleet` renders it as JSON ([`crate::rack::Fleet`]) and the page,
//! self-contained HTML with inline script, polls it every second.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use api::server::Server;
use bytes::Bytes;
use futures::StreamExt as _;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::net::TcpListener;

use crate::rack;
use crate::view::ServerView;

/// The page: markup, style and the polling script in one file.
const PAGE: &str = include_str!("visualizer.html");

/// The fleet as the JSON endpoint serves it.
pub fn fleet(store: &Store<Server>) -> rack::Fleet {
    rack::layout(store.state().iter().map(|s| ServerView::of(s)).collect())
}

fn respond(store: &Store<Server>, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, ctype)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts")
    };
    if method != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"GET only\n".to_vec(),
        );
    }
    match path {
        "/" | "/index.html" => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            PAGE.as_bytes().to_vec(),
        ),
        "/api/fleet" => match serde_json::to_vec(&fleet(store)) {
            Ok(body) => reply(StatusCode::OK, "application/json", body),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                e.to_string().into_bytes(),
            ),
        },
        "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
    }
}

/// Watches the servers matching `selector` and serves the page on `listen` until interrupted.
pub async fn serve(
    client: kube::Client,
    listen: SocketAddr,
    selector: Option<String>,
) -> Result<()> {
    let mut config = watcher::Config::default();
    if let Some(s) = selector {
        config = config.labels(&s);
    }
    let (store, writer) = reflector::store();
    let watch = reflector::reflector(
        writer,
        watcher(Api::<Server>::all(client), config).default_backoff(),
    )
    .touched_objects()
    .for_each(|r| {
        if let Err(e) = r {
            eprintln!("watching servers: {e}");
        }
        std::future::ready(())
    });
    tokio::spawn(watch);
    store
        .wait_until_ready()
        .await
        .context("the server watch ended before its first list")?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let local = listener.local_addr()?;
    println!("metalctl visualizer: serving http://{local}/ (JSON at /api/fleet)");
    for w in fleet(&store).warnings {
        eprintln!("warning: {w}");
    }
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => r.context("accepting a connection")?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let store = store.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let resp = respond(&store, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let (store, _writer) = reflector::store::<Server>();
        let page = respond(&store, &Method::GET, "/");
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            PAGE.contains("/api/fleet"),
            "the page polls the JSON endpoint"
        );
        let json = respond(&store, &Method::GET, "/api/fleet");
        assert_eq!(json.status(), StatusCode::OK);
        assert_eq!(
            respond(&store, &Method::GET, "/nope").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&store, &Method::POST, "/").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
