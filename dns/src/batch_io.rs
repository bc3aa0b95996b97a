//! Batched datagram I/O for the UDP serving loop: on Linux `recvmmsg`/`sendmmsg` move
//! up to `BATCH` datagrams per system call (for small DNS packets the kernel crossing,
//! not the copy, is most of the cost); elsewhere one datagram per call. On blocking
//! sockets: a receive waits for the first datagram (or the socket's read timeout) and
//! then takes whatever else is already queued.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;
/// Receive buffer per datagram: what hickory's own UDP stream reads. A larger query
/// arrives cut and fails to decode (FORMERR), as it does there.
pub(crate) const DATAGRAM_MAX: usize = 4096;

/// Receive buffers for one batch, reused from call to call.
pub(crate) struct RecvBatch {
    buffers: Vec<[u8; DATAGRAM_MAX]>,
    lens: [usize; BATCH],
    peers: [Option<SocketAddr>; BATCH],
    count: usize,
}

impl RecvBatch {
    pub(crate) fn new() -> Self {
        Self {
            buffers: vec![[0; DATAGRAM_MAX]; BATCH],
            lens: [0; BATCH],
            peers: [None; BATCH],
            count: 0,
        }
    }

    /// The datagrams of the last `recv`, with their senders (`None` for an address
    /// family we cannot answer).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> {
        (0..self.count).map(|i| (&self.buffers[i][..self.lens[i]], self.peers[i]))
    }

    /// Receives at least one and up to `BATCH` datagrams; fails with `WouldBlock` (or
    /// `TimedOut`) when the socket's read timeout passes first.
    #[cfg(target_os = "linux")]
    pub(crate) fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;

        self.count = 0;
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovecs[i].iov_base = self.buffers[i].as_mut_ptr().cast();
            iovecs[i].iov_len = DATAGRAM_MAX;
            let header = &mut headers[i].msg_hdr;
            header.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &mut iovecs[i];
            header.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live buffer, iovec and address storage of
        // the sizes given, all outliving the call; the kernel writes at most that much.
        let received = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                // Block for the first datagram only, then take what is queued.
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        let received = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
        for i in 0..received {
            self.lens[i] = (headers[i].msg_len as usize).min(DATAGRAM_MAX);
            self.peers[i] = socket_addr(&names[i]);
        }
        self.count = received;
        Ok(received)
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        let (len, peer) = socket.recv_from(&mut self.buffers[0])?;
        self.lens[0] = len;
        self.peers[0] = Some(peer);
        self.count = 1;
        Ok(1)
    }
}

/// The sender address the kernel wrote, for IPv4 and IPv6 (`None` otherwise).
#[cfg(target_os = "linux")]
fn socket_addr(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

    match libc::c_int::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for any address.
            let v4 =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddrV4::new(ip, u16::from_be(v4.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            let port = u16::from_be(v6.sin6_port);
            Some(SocketAddrV6::new(ip, port, v6.sin6_flowinfo, v6.sin6_scope_id).into())
        }
        _ => None,
    }
}

/// Sends the first datagrams of `out` (at most `BATCH`) and returns how many went, or
/// fails with the error of the first one.
#[cfg(target_os = "linux")]
pub(crate) fn send(socket: &UdpSocket, out: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    use socket2::SockAddr;

    let count = out.len().min(BATCH);
    let names: Vec<SockAddr> = out[..count]
        .iter()
        .map(|(_, peer)| SockAddr::from(*peer))
        .collect();
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..count {
        // sendmmsg only reads the data; the *mut is the C signature.
        iovecs[i].iov_base = out[i].0.as_ptr().cast_mut().cast();
        iovecs[i].iov_len = out[i].0.len();
        let header = &mut headers[i].msg_hdr;
        header.msg_name = names[i].as_ptr().cast_mut().cast();
        header.msg_namelen = names[i].len();
        header.msg_iov = &mut iovecs[i];
        header.msg_iovlen = 1;
    }
    // SAFETY: every header points at live data, iovecs and addresses that outlive the
    // call; the kernel only reads them.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            count as libc::c_uint,
            0,
        )
    };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn send(socket: &UdpSocket, out: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    match out.first() {
        Some((data, peer)) => socket.send_to(data, peer).map(|_| 1),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_out_and_comes_back_with_its_senders() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        server
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .expect("timeout");
        let server_addr = server.local_addr().expect("addr");
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let client_addr = client.local_addr().expect("addr");
        let mut batch = RecvBatch::new();
        let quiet = batch.recv(&server).expect_err("nothing sent yet");
        assert!(
            matches!(
                quiet.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{quiet}"
        );
        for k in 0..5u8 {
            client.send_to(&[k; 20], server_addr).expect("send");
        }
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut got = Vec::new();
        while got.len() < 5 {
            batch.recv(&server).expect("the datagrams sent");
            got.extend(batch.iter().map(|(d, p)| (d.to_vec(), p)));
        }
        for (k, (data, peer)) in got.iter().enumerate() {
            assert_eq!(data, &vec![k as u8; 20]);
            assert_eq!(*peer, Some(client_addr));
        }
        let replies: Vec<(Vec<u8>, SocketAddr)> =
            (0..3u8).map(|k| (vec![k; 7], client_addr)).collect();
        let mut sent = 0;
        while sent < replies.len() {
            sent += send(&server, &replies[sent..]).expect("send");
        }
        let mut buf = [0; 64];
        for k in 0..3u8 {
            let (len, from) = client.recv_from(&mut buf).expect("recv");
            assert_eq!(&buf[..len], &[k; 7]);
            assert_eq!(from, server_addr);
        }
    }
}
