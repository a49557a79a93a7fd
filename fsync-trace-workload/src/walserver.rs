//! `wal-server`: a tiny database server for the write-ahead-log contract (`--wal`). It forks a
//! client that sends N requests over a socket; for each, the server appends a commit record to
//! `wal/log` (and, with `--data`, a row to `data/table`, never synced before the reply), and
//! replies in the order `--order` says: sync the log then reply (the contract kept), or reply
//! then sync (broken: N acks flagged), or reply and never sync the requests (broken, never
//! durable). Exact syscalls: one write(2) per record, one fdatasync per request, one reply call.
use std::path::Path;

use clap::ValueEnum;

use super::{
    close_or_die, create, dirfsync, fail, fdatasync_or_die, join, os_fail, record,
    write_exact_once, Res,
};

/// When the server makes the log durable relative to its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Order {
    /// append, fdatasync, reply (the contract kept)
    SyncThenReply,
    /// append, reply, fdatasync (every reply flagged)
    ReplyThenSync,
    /// append, reply; the log is synced never (every reply flagged, never durable)
    ReplyNeverSync,
}

/// The socket between client and server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// socketpair(AF_UNIX, SOCK_STREAM)
    Unix,
    /// TCP over 127.0.0.1
    Tcp,
    /// UDP over 127.0.0.1 (connected sockets)
    Udp,
}

/// The call the server replies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Reply {
    /// write(2)
    Write,
    /// send(2) (sendto)
    Send,
    /// sendmsg(2)
    Sendmsg,
}

/// Options of the `wal-server` scenario.
#[derive(Clone, Copy, Debug)]
pub struct WalServer {
    pub requests: usize,
    pub order: Order,
    pub transport: Transport,
    pub reply: Reply,
    pub data: bool,
    pub settle_ms: u64,
}

const RECORD_BYTES: usize = 64;

/// Runs the server in `dir` (creates `wal/` and `data/` in it).
pub fn wal_server(dir: &Path, o: WalServer) -> Res<()> {
    let wal_dir = join(dir, "wal");
    let data_dir = join(dir, "data");
    for d in [&wal_dir, &data_dir] {
        std::fs::create_dir_all(d)
            .map_err(|e| fail(format!("mkdir {}", d.display()), e.to_string()))?;
    }
    let log_path = join(&wal_dir, "log");
    let log = create(&log_path)?;
    // A header made durable before serving: the tracer learns the log's name from this first
    // write and marks it as a WAL; `settle_ms` gives it time to, so the first request counts.
    write_exact_once(log, &record(RECORD_BYTES, 0), &log_path)?;
    fdatasync_or_die(log, &log_path)?;
    let table_path = join(&data_dir, "table");
    let table = if o.data {
        let fd = create(&table_path)?;
        write_exact_once(fd, &record(RECORD_BYTES, 0), &table_path)?;
        fdatasync_or_die(fd, &table_path)?;
        Some(fd)
    } else {
        None
    };
    // The new entries made durable too: the only finding left to a trace is the contract's.
    for d in [&wal_dir, &data_dir, &dir.to_path_buf()] {
        dirfsync(d)?;
    }
    std::thread::sleep(std::time::Duration::from_millis(o.settle_ms));
    let (server, client) = connect(o.transport)?;
    // SAFETY: single-threaded here (the sleep above ran on this thread); the child only runs
    // `client` and leaves through _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_fail("fork"));
    }
    if pid == 0 {
        // SAFETY: closing our copy of the server's socket.
        unsafe { libc::close(server) };
        let code = match run_client(client, o.requests) {
            Ok(()) => 0,
            Err(e) => {
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!("workload: wal-server: client: {e}\n").as_bytes(),
                );
                1
            }
        };
        // SAFETY: ends the child without running the parent's cleanup.
        unsafe { libc::_exit(code) }
    }
    // SAFETY: our copy of the client's socket.
    unsafe { libc::close(client) };
    for i in 0..o.requests {
        let mut req = [0u8; 16];
        recv_exact(server, &mut req)?;
        write_exact_once(log, &record(RECORD_BYTES, i + 1), &log_path)?;
        if let Some(fd) = table {
            write_exact_once(fd, &record(RECORD_BYTES, i + 1), &table_path)?;
        }
        match o.order {
            Order::SyncThenReply => {
                fdatasync_or_die(log, &log_path)?;
                reply(server, o.reply, &req)?;
            }
            Order::ReplyThenSync => {
                reply(server, o.reply, &req)?;
                fdatasync_or_die(log, &log_path)?;
            }
            Order::ReplyNeverSync => reply(server, o.reply, &req)?,
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &raw mut status, 0) } != pid {
        return Err(os_fail("waitpid"));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(fail("client", format!("failed (wait status {status:#x})")));
    }
    // The data file is made durable at the end (after the replies), so it carries no finding.
    if let Some(fd) = table {
        fdatasync_or_die(fd, &table_path)?;
        close_or_die(fd, &table_path)?;
    }
    close_or_die(log, &log_path)?;
    // SAFETY: our socket.
    unsafe { libc::close(server) };
    Ok(())
}

/// The client: N requests of 16 bytes, each answered before the next.
fn run_client(sock: libc::c_int, requests: usize) -> Res<()> {
    for i in 0..requests {
        let mut req = [b'q'; 16];
        req[..8].copy_from_slice(&(i as u64).to_le_bytes());
        // SAFETY: `req` is valid for its length.
        let n = unsafe { libc::send(sock, req.as_ptr().cast(), req.len(), 0) };
        if n != req.len() as isize {
            return Err(os_fail("client send"));
        }
        let mut resp = [0u8; 16];
        recv_exact(sock, &mut resp)?;
        if resp != req {
            return Err(fail("client", "reply does not echo the request"));
        }
    }
    Ok(())
}

fn recv_exact(sock: libc::c_int, buf: &mut [u8]) -> Res<()> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the remaining part of `buf` is valid for writes.
        let n = unsafe { libc::recv(sock, buf[got..].as_mut_ptr().cast(), buf.len() - got, 0) };
        if n <= 0 {
            return Err(if n == 0 {
                fail("recv", "peer closed")
            } else {
                os_fail("recv")
            });
        }
        got += n as usize;
    }
    Ok(())
}

/// One reply call echoing the request.
fn reply(sock: libc::c_int, how: Reply, msg: &[u8; 16]) -> Res<()> {
    // SAFETY: `msg` is valid for its length; the iovec and msghdr point at it only for the call.
    let n = unsafe {
        match how {
            Reply::Write => libc::write(sock, msg.as_ptr().cast(), msg.len()),
            Reply::Send => libc::send(sock, msg.as_ptr().cast(), msg.len(), 0),
            Reply::Sendmsg => {
                let mut iov = libc::iovec {
                    iov_base: msg.as_ptr().cast_mut().cast(),
                    iov_len: msg.len(),
                };
                let mut hdr: libc::msghdr = std::mem::zeroed();
                hdr.msg_iov = &raw mut iov;
                hdr.msg_iovlen = 1;
                libc::sendmsg(sock, &raw const hdr, 0)
            }
        }
    };
    if n != msg.len() as isize {
        return Err(os_fail("reply"));
    }
    Ok(())
}

/// A connected (server, client) pair of sockets.
fn connect(t: Transport) -> Res<(libc::c_int, libc::c_int)> {
    match t {
        Transport::Unix => {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for two descriptors.
            if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) }
                != 0
            {
                return Err(os_fail("socketpair"));
            }
            Ok((fds[0], fds[1]))
        }
        Transport::Tcp => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| fail("tcp listen", e.to_string()))?;
            let addr = listener
                .local_addr()
                .map_err(|e| fail("tcp listen", e.to_string()))?;
            let client = std::net::TcpStream::connect(addr)
                .map_err(|e| fail("tcp connect", e.to_string()))?;
            let (server, _) = listener
                .accept()
                .map_err(|e| fail("tcp accept", e.to_string()))?;
            Ok((into_fd(server), into_fd(client)))
        }
        Transport::Udp => {
            let a = std::net::UdpSocket::bind("127.0.0.1:0")
                .map_err(|e| fail("udp bind", e.to_string()))?;
            let b = std::net::UdpSocket::bind("127.0.0.1:0")
                .map_err(|e| fail("udp bind", e.to_string()))?;
            let (aa, ba) = (
                a.local_addr().map_err(|e| fail("udp", e.to_string()))?,
                b.local_addr().map_err(|e| fail("udp", e.to_string()))?,
            );
            a.connect(ba)
                .map_err(|e| fail("udp connect", e.to_string()))?;
            b.connect(aa)
                .map_err(|e| fail("udp connect", e.to_string()))?;
            Ok((into_fd(a), into_fd(b)))
        }
    }
}

fn into_fd(s: impl std::os::fd::IntoRawFd) -> libc::c_int {
    s.into_raw_fd()
}
