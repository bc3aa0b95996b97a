//! `[limits]` on a running cluster: a caller over its request rate is refused
//! RESOURCE_EXHAUSTED (retry here, nothing applied) while another token is not; a
//! caller with its watch streams all open cannot open one more until one closes; a
//! request over `max_request_bytes` is refused; refusals are counted in the metrics.

mod common;

use common::watch::{next, watch_request};
use common::*;
use tonic::{Code, Request};
use waymark_proto::errors::{Applied, ErrorDetail, Reason, Retry};
use waymark_proto::pb;
use waymark_registry::limits::LimitsConfig;

fn with_token<T>(msg: T, secret: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("x-waymark-token", secret.parse().unwrap());
    req
}

fn limited(node: &waymark_registry::node::Node, limit: &str) -> u64 {
    let mut text = String::new();
    node.metrics.render(&mut text);
    let series = format!("waymark_requests_limited_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn assert_exhausted(status: &tonic::Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let detail = ErrorDetail::from_status(status).expect("an ErrorDetail");
    assert_eq!(
        (detail.reason, detail.retry, detail.applied),
        (Reason::ResourceExhausted, Retry::Here, Applied::No)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_over_its_rate_is_refused_and_others_are_not() {
    let cluster = TestCluster::start(1, |c| {
        // One request a second, two at once: fifty calls in a row cannot all fit.
        c.limits = LimitsConfig {
            requests_per_second_per_token: 1,
            request_burst: 2,
            ..LimitsConfig::default()
        };
    })
    .await;
    cluster.wait_for_leader().await;
    let node = &cluster.node(1).node;
    let mut catalog = cluster.catalog(1).await;
    let mut refusal = None;
    for i in 0..50 {
        let r = registration("web", &format!("web-{i}"), 8080);
        if let Err(status) = catalog.register(with_token(r, "token-a")).await {
            refusal = Some((i, status));
            break;
        }
    }
    let (refused_at, status) = refusal.expect("fifty calls at a rate of one a second");
    assert_exhausted(&status);
    assert!(status.message().contains("rate limit"), "{status:?}");
    assert!(limited(node, "rate") >= 1);
    // Another token has its own allowance, and reads what was written: the refused
    // registration is not there.
    let ids = catalog
        .list_instances(with_token(
            pb::ListInstancesRequest {
                service: "web".into(),
                read: consistent(),
                ..Default::default()
            },
            "token-b",
        ))
        .await
        .expect("another token is not limited by the first")
        .into_inner()
        .instances
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<_>>();
    assert!(!ids.contains(&format!("web-{refused_at}")), "{ids:?}");
    assert_eq!(ids.len(), refused_at, "{ids:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_streams_per_token_and_the_request_size_are_bounded() {
    let cluster = TestCluster::start(1, |c| {
        c.limits = LimitsConfig {
            watch_streams_per_token: 2,
            max_request_bytes: 2048,
            ..LimitsConfig::default()
        };
    })
    .await;
    cluster.wait_for_leader().await;
    let node = &cluster.node(1).node;
    let mut catalog = cluster.catalog(1).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = catalog
            .watch(with_token(watch_request(&["web"], 0), "token-a"))
            .await
            .expect("a watch within the limit")
            .into_inner();
        next(&mut stream).await;
        open.push(stream);
    }
    let third = catalog
        .watch(with_token(watch_request(&["web"], 0), "token-a"))
        .await
        .expect_err("a third watch for the same token");
    assert_exhausted(&third);
    assert_eq!(limited(node, "watch_streams"), 1);
    // Another token may watch.
    let mut other = catalog
        .watch(with_token(watch_request(&["web"], 0), "token-b"))
        .await
        .expect("another token's watch")
        .into_inner();
    next(&mut other).await;
    // Closing one frees its place once the server has seen it go.
    open.pop();
    wait_for("a freed watch place", || {
        let mut catalog = catalog.clone();
        async move {
            let mut stream = catalog
                .watch(with_token(watch_request(&["web"], 0), "token-a"))
                .await
                .ok()?
                .into_inner();
            next(&mut stream).await;
            Some(())
        }
    })
    .await;

    // A request bigger than max_request_bytes is not decoded.
    let mut big = registration("web", "web-1", 8080);
    big.tags = (0..40).map(|i| format!("tag-{i:0>60}")).collect();
    let status = catalog
        .register(big)
        .await
        .expect_err("a register over max_request_bytes");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    cluster.shutdown().await;
}
