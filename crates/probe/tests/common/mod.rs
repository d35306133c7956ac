//! A tiny registry stand-in for the probe's own tests: records every request, answers from a script.

#![allow(dead_code, missing_docs)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub body: serde_json::Value,
}

/// The fake registry.
#[derive(Clone, Default)]
pub struct Fake {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Status codes to answer with, in order; 201 when exhausted.
    pub script: Arc<Mutex<VecDeque<u16>>>,
}

impl Fake {
    pub async fn start(script: &[u16]) -> (Self, SocketAddr) {
        let fake = Fake {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let f = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let f = f.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let f = f.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let authorization = req
                                .headers()
                                .get("authorization")
                                .map(|v| v.to_str().unwrap().to_string());
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let body =
                                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                            f.seen.lock().unwrap().push(Seen {
                                path,
                                authorization,
                                body,
                            });
                            let status = f.script.lock().unwrap().pop_front().unwrap_or(201);
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .status(StatusCode::from_u16(status).unwrap())
                                    .body(Full::new(Bytes::from_static(b"scripted")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (fake, addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub fn fixture_tree() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tree")
}
