//! `waymark register`: one Register call; or, with `--ttl`, a lease created first,
//! the instance registered under it, and the lease kept alive (`waymark-client`'s
//! `LeaseKeeper`) until Ctrl-C or SIGTERM, which revoke it (so the instance leaves, or
//! turns critical, at once).

use std::time::Duration;

use serde_json::json;
use waymark_client::{catalog, duration_to_ms, KeepAliveEvent, LeaseKeeper};
use waymark_proto::pb;

use super::client::write;
use super::output::{self, emit, ms_text};
use super::parse::collect_meta;
use super::signals::StopSignals;
use super::{ClientOpts, LeaseExpiry, RegisterArgs, UsageError};

/// `--weight` sets the passing weight; this is the warning weight that goes with it.
const DEFAULT_WARNING_WEIGHT: u32 = 1;

pub(super) async fn run(args: RegisterArgs) -> anyhow::Result<()> {
    let request = build_request(&args)?;
    match args.ttl {
        None => register_once(&args.client, request).await,
        Some(ttl) => register_with_lease(&args.client, request, ttl).await,
    }
}

/// The Register request from the flags, without a lease yet.
fn build_request(args: &RegisterArgs) -> anyhow::Result<pb::RegisterRequest> {
    let meta = collect_meta(args.meta.clone()).map_err(UsageError)?;
    let on_lease_expiry = match args.on_lease_expiry {
        None => pb::LeaseExpiryAction::Unspecified,
        Some(LeaseExpiry::Remove) => pb::LeaseExpiryAction::Remove,
        Some(LeaseExpiry::MarkCritical) => pb::LeaseExpiryAction::MarkCritical,
    };
    Ok(pb::RegisterRequest {
        service: args.service.clone(),
        id: args.id.clone(),
        address: args.address.clone(),
        port: u32::from(args.port),
        tags: args.tags.clone(),
        meta,
        weights: args.weight.map(|passing| pb::Weights {
            passing,
            warning: DEFAULT_WARNING_WEIGHT,
        }),
        lease_id: 0,
        on_lease_expiry: on_lease_expiry as i32,
        deregister_critical_after_ms: args.deregister_critical_after.map_or(0, duration_to_ms),
        expected_modify_index: args.cas,
        initial_status: args
            .initial_status
            .map_or(pb::HealthStatus::Unspecified, |s| s.wire()) as i32,
    })
}

/// `registered web/web-1 at 10.0.0.1 port 8080 (index 12)`.
fn registered_text(request: &pb::RegisterRequest, resp: &pb::RegisterResponse) -> String {
    match &resp.instance {
        Some(i) => format!(
            "registered {}/{} at {} port {} (index {})",
            i.service, i.id, i.address, i.port, resp.index
        ),
        None => format!(
            "registered {}/{} (index {})",
            request.service, request.id, resp.index
        ),
    }
}

async fn register_once(opts: &ClientOpts, request: pb::RegisterRequest) -> anyhow::Result<()> {
    let resp = write(opts, |ch| {
        let request = request.clone();
        async move { catalog(ch).register(request).await }
    })
    .await?;
    emit(
        opts.json,
        || json!({ "instance": resp.instance.as_ref().map(output::instance_json), "index": resp.index }),
        || registered_text(&request, &resp),
    );
    Ok(())
}

async fn register_with_lease(
    opts: &ClientOpts,
    request: pb::RegisterRequest,
    ttl: Duration,
) -> anyhow::Result<()> {
    // Installed first, so a Ctrl-C from here on cleans up instead of killing us.
    let mut stop = StopSignals::install()?;
    let client = opts.client();
    let on_event = |event: KeepAliveEvent| {
        if let KeepAliveEvent::Reconnecting {
            reason,
            addr,
            delay,
        } = event
        {
            eprintln!(
                "note: keeping the lease alive: {reason}; reconnecting to {addr} in {} ms",
                delay.as_millis()
            );
        }
    };

    let mut keeper = tokio::select! {
        r = LeaseKeeper::create(&client, ttl, on_event) => r?,
        // Nothing registered yet; a lease created anyway just expires.
        _ = stop.recv() => return Ok(()),
    };
    let lease_id = keeper.lease_id();

    let registered = tokio::select! {
        r = keeper.register(request.clone()) => r,
        _ = stop.recv() => return revoke(keeper, opts, &request).await,
    };
    let resp = match registered {
        Ok(r) => r,
        Err(e) => {
            // Do not leave an unused lease behind; it would expire anyway.
            if let Err(re) = keeper.revoke().await {
                eprintln!("note: could not revoke the unused lease {lease_id}: {re}");
            }
            return Err(e.into());
        }
    };
    let granted_ms = duration_to_ms(keeper.ttl());
    emit(
        opts.json,
        || {
            json!({
                "instance": resp.instance.as_ref().map(output::instance_json),
                "index": resp.index,
                "lease": { "id": lease_id, "ttl_ms": granted_ms },
            })
        },
        || {
            format!(
                "{}\nunder lease {lease_id} (ttl {}), kept alive until Ctrl-C",
                registered_text(&request, &resp),
                ms_text(granted_ms)
            )
        },
    );

    tokio::select! {
        e = keeper.lost() => Err(e.into()),
        _ = stop.recv() => revoke(keeper, opts, &request).await,
    }
}

/// Revokes the lease on the way out and says what became of the instance.
async fn revoke(
    keeper: LeaseKeeper,
    opts: &ClientOpts,
    request: &pb::RegisterRequest,
) -> anyhow::Result<()> {
    let lease_id = keeper.lease_id();
    let resp = keeper
        .revoke()
        .await
        .map_err(|e| anyhow::Error::new(e).context(format!("revoking lease {lease_id}")))?;
    let text = revoked_text(lease_id, request, &resp);
    // stdout carries one JSON document with --json; this goes beside it.
    if opts.json {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    Ok(())
}

fn revoked_text(
    lease_id: u64,
    request: &pb::RegisterRequest,
    resp: &pb::RevokeLeaseResponse,
) -> String {
    let key = format!("{}/{}", request.service, request.id);
    if !resp.revoked {
        return format!("lease {lease_id} was already gone (index {})", resp.index);
    }
    let fate = if request.on_lease_expiry == pb::LeaseExpiryAction::MarkCritical as i32 {
        "marked critical"
    } else {
        "deregistered"
    };
    format!(
        "revoked lease {lease_id} (index {}): {key} {fate}",
        resp.index
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_says_what_happened() {
        let mut request = pb::RegisterRequest {
            service: "web".into(),
            id: "web-1".into(),
            ..Default::default()
        };
        let done = pb::RevokeLeaseResponse {
            revoked: true,
            index: 60,
        };
        assert_eq!(
            revoked_text(7, &request, &done),
            "revoked lease 7 (index 60): web/web-1 deregistered"
        );
        request.on_lease_expiry = pb::LeaseExpiryAction::MarkCritical as i32;
        assert_eq!(
            revoked_text(7, &request, &done),
            "revoked lease 7 (index 60): web/web-1 marked critical"
        );
        let gone = pb::RevokeLeaseResponse {
            revoked: false,
            index: 61,
        };
        assert_eq!(
            revoked_text(7, &request, &gone),
            "lease 7 was already gone (index 61)"
        );
    }
}
