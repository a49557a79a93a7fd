//! A minimal HTTP/1.1 server for `/metrics` on a tokio `TcpListener`: one request per connection
//! (`Connection: close`), GET and HEAD only. Enough for Prometheus, curl and promtool without
//! pulling an HTTP stack into a tracer.
//!
//! Format: OpenMetrics 1.0 when the client accepts `application/openmetrics-text` (Prometheus
//! does), else the classic text format 0.0.4 (curl, `promtool check metrics` of Prometheus 2.x,
//! which does not parse OpenMetrics info metrics).
use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use super::{encode_openmetrics, to_classic_text};

pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;
/// A client has this long to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 16 * 1024;

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
                    if let Err(e) = handle(stream, &registry).await {
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

/// The parts of a request head we use.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub openmetrics: bool,
}

pub fn parse_head(head: &str) -> Option<Request<'_>> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?;
    let target = first.next()?;
    first.next().filter(|v| v.starts_with("HTTP/"))?;
    let path = target.split('?').next().unwrap_or(target);
    let openmetrics = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("accept")
                && v.to_ascii_lowercase()
                    .contains("application/openmetrics-text")
        })
    });
    Some(Request {
        method,
        path,
        openmetrics,
    })
}

/// Status, content type and body of the answer to `req`.
pub fn respond(req: Option<&Request>, registry: &Registry) -> (&'static str, &'static str, String) {
    let Some(req) = req else {
        return ("400 Bad Request", "text/plain", "bad request\n".into());
    };
    if req.method != "GET" && req.method != "HEAD" {
        return (
            "405 Method Not Allowed",
            "text/plain",
            "only GET and HEAD\n".into(),
        );
    }
    match req.path {
        "/metrics" => {
            let om = encode_openmetrics(registry);
            if req.openmetrics {
                ("200 OK", OPENMETRICS_TYPE, om)
            } else {
                ("200 OK", TEXT_TYPE, to_classic_text(&om))
            }
        }
        "/" => (
            "200 OK",
            "text/plain",
            "fsync-trace: metrics are on /metrics\n".into(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
    }
}

async fn handle(mut stream: TcpStream, registry: &Registry) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream, &mut buf))
        .await
        .map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")
        })??;
    let req = std::str::from_utf8(&buf[..head]).ok().and_then(parse_head);
    let head_only = req.as_ref().is_some_and(|r| r.method == "HEAD");
    let (status, ctype, body) = respond(req.as_ref(), registry);
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(&body);
    }
    tokio::time::timeout(READ_TIMEOUT, stream.write_all(out.as_bytes()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client not reading"))??;
    let _ = stream.shutdown().await;
    Ok(())
}

/// Reads until the end of the request head; returns its length.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the request head",
            ));
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(from + i + 4);
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    }
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

    #[test]
    fn request_heads() {
        let r = parse_head("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n").unwrap();
        assert_eq!(
            r,
            Request {
                method: "GET",
                path: "/metrics",
                openmetrics: true
            }
        );
        let r = parse_head("GET /metrics HTTP/1.0\r\naccept: */*\r\n\r\n").unwrap();
        assert!(!r.openmetrics);
        assert!(parse_head("garbage").is_none());
        let reg = Registry::default();
        assert_eq!(
            respond(
                Some(&Request {
                    method: "POST",
                    path: "/metrics",
                    openmetrics: false
                }),
                &reg
            )
            .0,
            "405 Method Not Allowed"
        );
        assert_eq!(
            respond(
                Some(&Request {
                    method: "GET",
                    path: "/x",
                    openmetrics: false
                }),
                &reg
            )
            .0,
            "404 Not Found"
        );
        let (status, ctype, body) = respond(
            Some(&Request {
                method: "GET",
                path: "/metrics",
                openmetrics: true,
            }),
            &reg,
        );
        assert_eq!((status, ctype), ("200 OK", OPENMETRICS_TYPE));
        assert!(body.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let m = crate::metrics::Metrics::new("tracepoint", 0);
        tokio::spawn(serve(listener, m.registry()));
        let mut s = TcpStream::connect(addr).await.unwrap();
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
