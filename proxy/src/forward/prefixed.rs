//! A connection whose first bytes were already read (to tell h2 from HTTP/1.1): they
//! are read again first, then the connection itself.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// `io` with `prefix` read back first.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    consumed: usize,
    io: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, io: S) -> Self {
        Self {
            prefix,
            consumed: 0,
            io,
        }
    }
}

/// Reads from `io` until the bytes read either are all of `preface` or differ from
/// it (or the peer closed). Returns whether they are the preface, and the bytes.
pub async fn sniff<S: AsyncRead + Unpin>(
    io: &mut S,
    preface: &[u8],
) -> std::io::Result<(bool, Vec<u8>)> {
    let mut read = vec![0u8; preface.len()];
    let mut n = 0;
    while n < preface.len() {
        let got = io.read(&mut read[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
        if read[..n] != preface[..n] {
            break;
        }
    }
    read.truncate(n);
    Ok((read == preface, read))
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.consumed < this.prefix.len() {
            let rest = &this.prefix[this.consumed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.consumed += n;
            if this.consumed == this.prefix.len() {
                this.prefix = Vec::new();
                this.consumed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_sniffed_bytes_are_read_again_before_the_rest() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nafter")
            .await
            .unwrap();
        let (h2, read) = sniff(&mut b, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        assert!(h2);
        let mut p = Prefixed::new(read, b);
        let mut all = vec![0u8; 29];
        p.read_exact(&mut all).await.unwrap();
        assert_eq!(&all, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nafter");
    }

    #[tokio::test]
    async fn http1_is_told_apart_at_the_first_differing_byte() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let (h2, read) = sniff(&mut b, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        assert!(!h2);
        assert!(read.len() < 24 && read.starts_with(b"G"), "{read:?}");
        let mut p = Prefixed::new(read, b);
        let mut line = vec![0u8; 16];
        p.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"GET / HTTP/1.1\r\n");
    }
}
