//! The accepted connections of the gRPC servers, wrapped so that the DATA frames many
//! streams send at about the same time leave in a few large writes instead of one
//! system call (and one TCP segment) each.
//!
//! Two things made h2 (under tonic and hyper) write every watch event separately:
//! - h2 copies a DATA frame into its write buffer only when the payload is under a
//!   threshold: 256 bytes on a connection that supports vectored writes (a
//!   `TcpStream` does), 1 KiB on one that does not. A larger frame is held aside and
//!   written with the buffer by one `writev`, and no further frame is buffered until
//!   that write is done. A watch event (one instance record) is 300–900 bytes.
//! - Even when copied, a frame is written at once: a stream's task hands the frame to
//!   the connection and wakes the connection's task, and tokio runs a task woken by
//!   the running task next, so the connection flushes after every stream's frame.
//!
//! With 10,000 watchers that was one `writev` per watcher per event, about 40 % of a
//! node's CPU during the fan-out (`benches/results/watch-compare.md`). This wrapper
//! reports "not vectored" (frames under 1 KiB are copied, cheaply) and buffers writes
//! itself; a flush is deferred by one turn of the scheduler (the task wakes itself and
//! goes behind the tasks already queued), and again while the last turn brought more
//! bytes, up to `FLUSH_AT` buffered. Frames other streams queue meanwhile go out in
//! the same write. When nothing else is queued the deferral costs one extra poll of
//! the connection's task, not a timer.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use crate::metrics::Metrics;
use crate::tls::incoming::Port;

/// Buffered bytes at which a flush writes at once instead of deferring.
const FLUSH_AT: usize = 32 * 1024;
/// A write at least this large, arriving with nothing buffered, goes straight through
/// (a big snapshot message is not copied).
const WRITE_THROUGH_AT: usize = 16 * 1024;

/// A server-side connection that coalesces small writes (see the module docs).
pub struct CoalescingIo<T> {
    inner: T,
    /// Counts the writes to `inner` (`waymark_grpc_connection_writes_total`).
    metrics: Arc<Metrics>,
    port: Port,
    /// Bytes accepted and not yet written to `inner`, from `written` on.
    buffer: Vec<u8>,
    written: usize,
    /// `buffer.len()` when the last flush was deferred; `None` when none is, or the
    /// buffer has been written out since.
    deferred_at: Option<usize>,
}

impl<T> CoalescingIo<T> {
    pub fn new(inner: T, metrics: Arc<Metrics>, port: Port) -> Self {
        Self {
            inner,
            metrics,
            port,
            buffer: Vec::new(),
            written: 0,
            deferred_at: None,
        }
    }

    fn pending(&self) -> usize {
        self.buffer.len() - self.written
    }
}

impl<T: AsyncWrite + Unpin> CoalescingIo<T> {
    /// Writes everything buffered to the inner connection, which ends any deferral.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buffer.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buffer[self.written..]))?;
            self.metrics.grpc_write(self.port);
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buffer.clear();
        self.deferred_at = None;
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: Connected> Connected for CoalescingIo<T> {
    type ConnectInfo = T::ConnectInfo;

    /// The inner connection's info, unchanged: `Request::remote_addr` and the TLS
    /// peer certificates are found exactly as without the wrapper.
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending() + data.len() > FLUSH_AT {
            ready!(this.poll_drain(cx))?;
        }
        if this.pending() == 0 && data.len() >= WRITE_THROUGH_AT {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
            this.metrics.grpc_write(this.port);
            return Poll::Ready(Ok(n));
        }
        this.buffer.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    /// Not called by h2 once `is_write_vectored` is false; correct for any other
    /// caller: takes the first non-empty slice.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = slices.iter().find(|s| !s.is_empty()).map_or(&[][..], |s| s);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let buffered = this.pending();
        // Defer while the last turn brought more bytes (other streams are still
        // adding frames) and the buffer is not full yet.
        let still_growing = this.deferred_at.is_none_or(|at| buffered > at);
        if buffered > 0 && buffered < FLUSH_AT && still_growing {
            this.deferred_at = Some(buffered);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncWriteExt;

    /// An inner connection that records each write it is given.
    #[derive(Default, Clone)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            d: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.lock().unwrap().push(d.to_vec());
            Poll::Ready(Ok(d.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn coalescing(inner: &Recorder) -> CoalescingIo<Recorder> {
        CoalescingIo::new(inner.clone(), Arc::new(Metrics::default()), Port::Api)
    }

    #[tokio::test]
    async fn small_writes_leave_together_at_the_flush_and_in_order() {
        let inner = Recorder::default();
        let mut io = coalescing(&inner);
        for i in 0..10u8 {
            io.write_all(&[i; 100]).await.unwrap();
        }
        assert!(
            inner.writes.lock().unwrap().is_empty(),
            "nothing written before a flush"
        );
        io.flush().await.unwrap();
        let writes = inner.writes.lock().unwrap();
        assert_eq!(writes.len(), 1, "one write for ten small ones");
        assert_eq!(io.metrics.grpc_writes(Port::Api).get(), 1);
        let expected: Vec<u8> = (0..10u8).flat_map(|i| [i; 100]).collect();
        assert_eq!(writes[0], expected);
    }

    #[tokio::test]
    async fn a_flush_yields_once_then_writes_when_nothing_more_arrives() {
        let inner = Recorder::default();
        let mut io = coalescing(&inner);
        io.write_all(b"frame").await.unwrap();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            Pin::new(&mut io).poll_flush(&mut cx).is_pending(),
            "first flush defers"
        );
        assert!(inner.writes.lock().unwrap().is_empty());
        // Bytes added during the deferral extend it by one more turn.
        io.write_all(b" and more").await.unwrap();
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_pending());
        assert!(
            Pin::new(&mut io).poll_flush(&mut cx).is_ready(),
            "no growth: written"
        );
        assert_eq!(
            *inner.writes.lock().unwrap(),
            vec![b"frame and more".to_vec()]
        );
    }

    #[tokio::test]
    async fn a_buffer_written_out_because_full_starts_a_new_deferral() {
        let inner = Recorder::default();
        let mut io = coalescing(&inner);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        io.write_all(&[1u8; 15_000]).await.unwrap();
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_pending());
        // Enough to pass FLUSH_AT: the buffer is written out by a write, not a flush.
        for _ in 0..(FLUSH_AT - 15_000) / 1000 + 1 {
            io.write_all(&[2u8; 1000]).await.unwrap();
        }
        assert_eq!(inner.writes.lock().unwrap().len(), 1);
        // Fewer bytes buffered than at the old deferral: still a fresh burst, so its
        // flush is deferred once too.
        io.write_all(&[3u8; 100]).await.unwrap();
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_pending());
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        assert_eq!(inner.writes.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_full_buffer_and_a_large_write_go_out_without_waiting_for_a_flush() {
        let inner = Recorder::default();
        let mut io = coalescing(&inner);
        let big = vec![7u8; WRITE_THROUGH_AT];
        io.write_all(&big).await.unwrap();
        assert_eq!(
            inner.writes.lock().unwrap().len(),
            1,
            "a large write is not copied"
        );
        for _ in 0..FLUSH_AT / 1000 + 1 {
            io.write_all(&[1u8; 1000]).await.unwrap();
        }
        let writes = inner.writes.lock().unwrap();
        assert_eq!(
            writes.len(),
            2,
            "the buffer was written when it would pass FLUSH_AT"
        );
        assert!(writes[1].len() <= FLUSH_AT);
    }

    #[test]
    fn h2_is_told_the_connection_has_no_vectored_writes() {
        assert!(!coalescing(&Recorder::default()).is_write_vectored());
    }
}
