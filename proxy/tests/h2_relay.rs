//! h2 relayed stream by stream: a real h2 client, a client proxy, and a real h2
//! server of the test's own (the h2 crate on both ends). Bodies larger than every
//! flow-control window on the way go through intact both ways with their trailers;
//! a reset on either side reaches the other; a draining proxy sends GOAWAY and
//! finishes the stream in flight.

mod common;

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, Request, Response};
use tokio::net::{TcpListener, TcpStream};

/// Larger than the proxy's windows (1 MiB toward the app, 2 MiB per stream and 5 MiB
/// per connection toward endpoints) and than h2's 64 KiB default.
const BODY_BYTES: usize = 6 << 20;

/// What the test's server saw.
#[derive(Default)]
struct Seen {
    /// `/hang` requests that arrived.
    hanging: AtomicU64,
    /// `/hang` requests the proxy then reset.
    reset: AtomicU64,
    /// Tells `/reset-midway` the app has its first data: reset now.
    reset_now: tokio::sync::Notify,
    /// `/hold` requests that arrived.
    holding: AtomicU64,
    /// Tells `/hold` to answer.
    release: tokio::sync::Notify,
}

/// `/echo`: the request body back, then trailer `x-echo-bytes`; `/hang`: never
/// answers, counts the reset that ends it; `/reset-midway`: 64 KiB of body, then
/// RST_STREAM(INTERNAL_ERROR) once the app has data (a reset before the proxy has
/// the response headers is answered 502 instead); `/hold`: answers `held` when told.
async fn start_server(seen: Arc<Seen>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((req, respond))) = conn.accept().await {
                    tokio::spawn(serve(req, respond, seen.clone()));
                }
            });
        }
    });
    port
}

async fn serve(
    req: Request<RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    seen: Arc<Seen>,
) {
    match req.uri().path() {
        "/echo" => {
            let body = read_all(req.into_body()).await.unwrap();
            let mut out = respond.send_response(Response::new(()), false).unwrap();
            send_all(&mut out, Bytes::from(body.clone())).await;
            let mut trailers = HeaderMap::new();
            trailers.insert("x-echo-bytes", body.len().into());
            out.send_trailers(trailers).unwrap();
        }
        "/hang" => {
            seen.hanging.fetch_add(1, Ordering::SeqCst);
            let _ = poll_fn(|cx| respond.poll_reset(cx)).await;
            seen.reset.fetch_add(1, Ordering::SeqCst);
        }
        "/reset-midway" => {
            let mut out = respond.send_response(Response::new(()), false).unwrap();
            send_all(&mut out, Bytes::from(vec![7u8; 64 << 10])).await;
            seen.reset_now.notified().await;
            out.send_reset(Reason::INTERNAL_ERROR);
        }
        "/hold" => {
            seen.holding.fetch_add(1, Ordering::SeqCst);
            seen.release.notified().await;
            let mut out = respond.send_response(Response::new(()), false).unwrap();
            out.send_data(Bytes::from_static(b"held"), true).unwrap();
        }
        _ => {
            let mut resp = Response::new(());
            *resp.status_mut() = http::StatusCode::NOT_FOUND;
            respond.send_response(resp, true).unwrap();
        }
    }
}

/// Sends `data` as the peer's window allows (not ending the stream).
async fn send_all(to: &mut SendStream<Bytes>, mut data: Bytes) {
    while !data.is_empty() {
        to.reserve_capacity(data.len());
        let granted = poll_fn(|cx| to.poll_capacity(cx))
            .await
            .expect("stream open")
            .expect("capacity");
        let part = data.split_to(granted.min(data.len()));
        to.send_data(part, false).unwrap();
    }
}

/// The whole body, giving the window back as it is read.
async fn read_all(mut body: RecvStream) -> Result<Vec<u8>, h2::Error> {
    let mut all = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len()).unwrap();
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

/// An h2 connection to the proxy's upstream listener.
async fn h2_client(listen: &str) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(listen).await.unwrap();
    let (sender, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.ready().await.unwrap()
}

fn request(method: &str, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://api{path}"))
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_bodies_trailers_resets_and_drain_go_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let seen = Arc::new(Seen::default());
    let port = start_server(seen.clone()).await;
    let (mut proxy, _admin, listen) =
        client_proxy_to_own_server(&registry, dir.path(), "api-h2", port).await;
    let mut client = h2_client(&listen).await;

    // A body bigger than every window, both ways, and the trailers after it.
    let sent: Vec<u8> = (0..BODY_BYTES).map(|i| (i % 251) as u8).collect();
    let (response, mut body) = client
        .send_request(request("POST", "/echo"), false)
        .unwrap();
    let upload = {
        let sent = Bytes::from(sent.clone());
        async move {
            send_all(&mut body, sent).await;
            body.send_data(Bytes::new(), true).unwrap();
        }
    };
    let (response, ()) = tokio::join!(response, upload);
    let response = response.expect("echo response");
    assert_eq!(response.status(), 200);
    let mut echoed_body = response.into_body();
    let mut echoed = Vec::new();
    while let Some(chunk) = echoed_body.data().await {
        let chunk = chunk.expect("echo body");
        echoed_body
            .flow_control()
            .release_capacity(chunk.len())
            .unwrap();
        echoed.extend_from_slice(&chunk);
    }
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "the echoed body differs from the one sent");
    let trailers = echoed_body.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers["x-echo-bytes"], BODY_BYTES.to_string().as_str());

    // The app gives up on a request: the reset reaches the server.
    let (pending, _body) = client.send_request(request("GET", "/hang"), true).unwrap();
    wait_for("the /hang request to reach the server", || async {
        (seen.hanging.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    drop(pending);
    drop(_body);
    wait_for("the app's reset to reach the server", || async {
        (seen.reset.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;

    // The server resets mid-body: the app sees the reset with its reason, not a
    // clean (truncated) end.
    let (response, _) = client
        .send_request(request("GET", "/reset-midway"), true)
        .unwrap();
    let response = response.await.expect("response headers");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.data().await.expect("data").expect("first data");
    body.flow_control().release_capacity(first.len()).unwrap();
    seen.reset_now.notify_one();
    let ended = read_all(body).await;
    let e = ended.expect_err("a reset, not a clean end");
    assert_eq!(e.reason(), Some(Reason::INTERNAL_ERROR), "{e}");

    // The connection still serves new streams after all that.
    let (response, _) = client
        .send_request(request("GET", "/nothing"), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 404);

    // SIGTERM drains the proxy: after the grace period the app gets a GOAWAY (no new
    // streams), a stream in flight still completes, then the proxy exits.
    let (held, _) = client.send_request(request("GET", "/hold"), true).unwrap();
    wait_for("the held request to reach the server", || async {
        (seen.holding.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    proxy.signal(nix::sys::signal::Signal::SIGTERM);
    wait_for("a GOAWAY from the draining proxy", || {
        let c = client.clone();
        async move { c.ready().await.is_err().then_some(()) }
    })
    .await;
    seen.release.notify_one();
    let held = held.await.expect("the stream in flight completes");
    assert_eq!(held.status(), 200);
    assert_eq!(read_all(held.into_body()).await.unwrap(), b"held");
    let exit = proxy.wait_exit().await;
    assert!(exit.success(), "the proxy exited with {exit:?}");
}
