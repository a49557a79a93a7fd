//! The `/metrics` endpoint: hyper's HTTP/1.1 server on the tracer's tokio runtime, GET and
//! HEAD only, one request per connection, at most `MAX_CONNECTIONS` at once.
//!
//! Format: OpenMetrics 1.0 when the client accepts `application/openmetrics-text` (Prometheus
//! does), else the classic text format 0.0.4 (curl, `promtool check metrics` of Prometheus 2.x,
//! which does not parse OpenMetrics info metrics).
use std::{
    convert::Infallible,
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use http_body_util::Full;
use hyper::{body::Bytes, header, server::conn::http1, service::service_fn, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::Semaphore};

use super::{encode_openmetrics, to_classic_text};

pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;
/// A client has this long to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses `--metrics ADDR`: `PORT` (meaning 127.0.0.1:PORT), `IP:PORT`, `[IPv6]:PORT` or
/// `localhost:PORT`. All interfaces only when written out (`0.0.0.0:PORT`, `[::]:PORT`).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{s:?}: bad port"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if s.starts_with(':') {
        return Err(format!(
            "{s:?}: give the address to listen on: 127.0.0.1{s} (this host only) or 0.0.0.0{s} (all interfaces)"
        ));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!("{s:?} is not PORT, IP:PORT or [IPv6]:PORT (e.g. 9464 or 127.0.0.1:9464)")
    })
}

/// Binds before tracing starts, so a taken port is an error up front.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves until the runtime shuts down. Must be spawned on a multi-thread runtime so scrapes
/// are answered while the event loop is busy.
pub async fn serve(listener: std::net::TcpListener, registry: Arc<Registry>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("metrics endpoint: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let registry = registry.clone();
                        async move { Ok::<_, Infallible>(answer(&req, &registry)) }
                    });
                    let served = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(READ_TIMEOUT)
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    if let Err(e) = served {
                        log::debug!("metrics request: {e}");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("metrics endpoint: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The parts of a request we use.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub openmetrics: bool,
}

impl<'a> Request<'a> {
    pub fn of<B>(req: &'a hyper::Request<B>) -> Self {
        let openmetrics = req.headers().get_all(header::ACCEPT).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.to_ascii_lowercase()
                    .contains("application/openmetrics-text")
            })
        });
        Request {
            method: req.method().as_str(),
            path: req.uri().path(),
            openmetrics,
        }
    }
}

/// Status, content type and body of the answer to `req`.
pub fn respond(req: &Request, registry: &Registry) -> (StatusCode, &'static str, String) {
    if req.method != "GET" && req.method != "HEAD" {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD\n".into(),
        );
    }
    match req.path {
        "/metrics" => {
            let om = encode_openmetrics(registry);
            if req.openmetrics {
                (StatusCode::OK, OPENMETRICS_TYPE, om)
            } else {
                (StatusCode::OK, TEXT_TYPE, to_classic_text(&om))
            }
        }
        "/" => (
            StatusCode::OK,
            "text/plain",
            "fsync-trace: metrics are on /metrics\n".into(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
    }
}

/// [`respond`] as an HTTP response (hyper leaves out the body of a HEAD answer).
fn answer<B>(req: &hyper::Request<B>, registry: &Registry) -> hyper::Response<Full<Bytes>> {
    let (status, ctype, body) = respond(&Request::of(req), registry);
    let mut res = hyper::Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            parse_addr("localhost:9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            parse_addr("0.0.0.0:9464").unwrap(),
            "0.0.0.0:9464".parse().unwrap()
        );
        assert_eq!(
            parse_addr("10.1.2.3:80").unwrap(),
            "10.1.2.3:80".parse().unwrap()
        );
        assert_eq!(
            parse_addr("[::1]:9464").unwrap(),
            "[::1]:9464".parse().unwrap()
        );
        // ":PORT" means "all interfaces" elsewhere: refused rather than guessed.
        assert!(parse_addr(":9464").unwrap_err().contains("0.0.0.0:9464"));
        assert!(parse_addr("70000").is_err());
        assert!(parse_addr("example.com:80").is_err());
    }

    fn request(method: &str, uri: &str, accept: Option<&str>) -> hyper::Request<()> {
        let mut b = hyper::Request::builder().method(method).uri(uri);
        if let Some(a) = accept {
            b = b.header("accept", a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn requests() {
        let req = request(
            "GET",
            "/metrics?x=1",
            Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        );
        assert_eq!(
            Request::of(&req),
            Request {
                method: "GET",
                path: "/metrics",
                openmetrics: true
            }
        );
        let req = request("GET", "/metrics", Some("*/*"));
        assert!(!Request::of(&req).openmetrics);
        let reg = Registry::default();
        let status = |m: &str, p: &str| {
            respond(
                &Request {
                    method: m,
                    path: p,
                    openmetrics: false,
                },
                &reg,
            )
            .0
        };
        assert_eq!(status("POST", "/metrics"), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(status("GET", "/x"), StatusCode::NOT_FOUND);
        let (status, ctype, body) = respond(
            &Request {
                method: "GET",
                path: "/metrics",
                openmetrics: true,
            },
            &reg,
        );
        assert_eq!((status, ctype), (StatusCode::OK, OPENMETRICS_TYPE));
        assert!(body.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let m = crate::metrics::Metrics::new("tracepoint", 0);
        tokio::spawn(serve(listener, m.registry()));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text\r\n\r\n",
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("fsync_trace_build_info{"), "{out}");
        assert!(out.ends_with("# EOF\n"));
    }
}
