//! The instance's registration: a lease kept alive (failing over between registry
//! nodes), the instance registered under it with the status its checks give now, each
//! change of status written when it happens (with the check output), and a new lease
//! and registration when the lease is lost. Draining marks the instance critical and
//! waits until that is committed; finishing revokes the lease, which deregisters it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use waymark_client::{
    catalog, Backoff, CallPolicy, Client, ClientError, KeepAliveEvent, LeaseKeeper,
};
use waymark_proto::pb;

use crate::health::{Health, Status};
use crate::metrics::ProxyMetrics;

/// Status output written while draining.
const DRAINING: &str = "draining: the proxy is shutting down";

/// What the registration task is asked to do.
enum Request {
    /// Mark the instance critical; answer with the index it was committed at.
    Drain(oneshot::Sender<Result<u64, String>>),
    /// Revoke the lease (deregistering the instance) and stop.
    Finish(oneshot::Sender<()>),
}

/// Handle on the registration task.
pub struct Registration {
    requests: mpsc::Sender<Request>,
    task: JoinHandle<()>,
}

impl Registration {
    pub fn start(
        client: Client,
        request: pb::RegisterRequest,
        ttl: Duration,
        health: watch::Receiver<Health>,
        metrics: Arc<ProxyMetrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(
            Registrar {
                client,
                request,
                ttl,
                health,
                metrics,
                requests: rx,
            }
            .run(),
        );
        Self { requests: tx, task }
    }

    /// Marks the instance critical and waits until the registry has committed it.
    pub async fn drain(&self) -> Result<u64, String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Drain(tx))
            .await
            .map_err(|_| "the registration task has stopped".to_string())?;
        rx.await
            .map_err(|_| "the registration task has stopped".to_string())?
    }

    /// Revokes the lease (the instance leaves the catalog) and stops.
    pub async fn finish(self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Finish(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

struct Registrar {
    client: Client,
    request: pb::RegisterRequest,
    ttl: Duration,
    health: watch::Receiver<Health>,
    metrics: Arc<ProxyMetrics>,
    requests: mpsc::Receiver<Request>,
}

/// How one registered period ended.
enum End {
    /// Register again under a new lease.
    Again,
    Finished(Option<oneshot::Sender<()>>),
}

impl Registrar {
    async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut draining = false;
        loop {
            let keeper = match self.register(draining).await {
                Ok(k) => {
                    backoff.reset();
                    k
                }
                Err(e) => {
                    tracing::warn!(error = %e, "registering the instance failed; retrying");
                    tokio::select! {
                        _ = backoff.wait() => continue,
                        request = self.requests.recv() => match request {
                            Some(Request::Drain(reply)) => {
                                draining = true;
                                let _ = reply.send(Err(format!("not registered: {e}")));
                                continue;
                            }
                            Some(Request::Finish(reply)) => { let _ = reply.send(()); return; }
                            None => return,
                        },
                    }
                }
            };
            match self.registered(keeper, &mut draining).await {
                End::Again => continue,
                End::Finished(reply) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                }
            }
        }
    }

    /// Creates a lease and registers the instance under it, with the status the checks
    /// give now (critical while draining).
    async fn register(&mut self, draining: bool) -> Result<LeaseKeeper, ClientError> {
        let metrics = self.metrics.clone();
        let keeper = LeaseKeeper::create(&self.client, self.ttl, move |event| match event {
            KeepAliveEvent::Granted { .. } => metrics.registration.lease_renewals.inc(),
            KeepAliveEvent::Reconnecting { reason, addr, .. } => {
                tracing::warn!(%reason, next = %addr, "lease keep-alive stream lost; reopening");
            }
        })
        .await?;
        let health = self.health.borrow_and_update().clone();
        let (status, output) = if draining {
            (Status::Critical, DRAINING.to_string())
        } else {
            (health.status, health.output)
        };
        let request = pb::RegisterRequest {
            lease_id: keeper.lease_id(),
            initial_status: wire(status) as i32,
            ..self.request.clone()
        };
        let registered = self
            .client
            .call(idempotent(&self.client), |ch| {
                let request = request.clone();
                async move { catalog(ch).register(request).await }
            })
            .await?;
        let m = &self.metrics.registration;
        m.registrations.inc();
        m.registered.set(1);
        m.lease_id.set(keeper.lease_id() as i64);
        m.index.set(registered.index as i64);
        m.reported_status.set(status as i64);
        tracing::info!(
            service = %request.service,
            id = %request.id,
            lease_id = keeper.lease_id(),
            index = registered.index,
            status = status.name(),
            "registered"
        );
        // The registry has the status; give it the check output too.
        if status != Status::Passing {
            let _ = self.update_health(status, &output).await;
        }
        Ok(keeper)
    }

    /// Reports health changes and serves drain/finish until the lease is lost.
    async fn registered(&mut self, mut keeper: LeaseKeeper, draining: &mut bool) -> End {
        // With no checks configured nothing ever sends: the channel is closed at once,
        // and polling it again would spin.
        let mut checks_running = true;
        loop {
            tokio::select! {
                lost = keeper.lost() => {
                    tracing::warn!(error = %lost, "lease lost; registering again");
                    self.metrics.registration.leases_lost.inc();
                    self.metrics.registration.registered.set(0);
                    return End::Again;
                }
                changed = self.health.changed(), if !*draining && checks_running => {
                    if changed.is_err() {
                        checks_running = false;
                        continue;
                    }
                    let health = self.health.borrow_and_update().clone();
                    match self.report(&health).await {
                        Ok(()) => {}
                        Err(e) if is_not_found(&e) => {
                            tracing::warn!("the instance is gone from the catalog; registering again");
                            drop(keeper);
                            return End::Again;
                        }
                        Err(e) => tracing::warn!(error = %e, "reporting health failed"),
                    }
                }
                request = self.requests.recv() => match request {
                    Some(Request::Drain(reply)) => {
                        *draining = true;
                        let result = self
                            .update_health(Status::Critical, DRAINING)
                            .await
                            .map_err(|e| e.to_string());
                        let _ = reply.send(result);
                    }
                    Some(Request::Finish(reply)) => {
                        match keeper.revoke().await {
                            Ok(_) => tracing::info!("lease revoked; the instance is deregistered"),
                            Err(e) => tracing::warn!(error = %e, "revoking the lease failed; it expires after its TTL"),
                        }
                        self.metrics.registration.registered.set(0);
                        return End::Finished(Some(reply));
                    }
                    None => return End::Finished(None),
                },
            }
        }
    }

    /// Writes a status change, retrying until it is committed or the checks change
    /// their minds (then the newer status is written instead).
    async fn report(&mut self, health: &Health) -> Result<(), ClientError> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match self.update_health(health.status, &health.output).await {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, status = health.status.name(), "writing the health status failed; retrying");
                    backoff.wait().await;
                    if self.health.has_changed().unwrap_or(false) {
                        // A newer status supersedes this one; the select loop sends it.
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn update_health(&self, status: Status, output: &str) -> Result<u64, ClientError> {
        let request = pb::UpdateHealthRequest {
            service: self.request.service.clone(),
            id: self.request.id.clone(),
            status: wire(status) as i32,
            output: output.to_string(),
        };
        let response = self
            .client
            .call(idempotent(&self.client), |ch| {
                let request = request.clone();
                async move { catalog(ch).update_health(request).await }
            })
            .await?;
        let m = &self.metrics.registration;
        m.health_reports.inc();
        m.index.set(response.index as i64);
        m.reported_status.set(status as i64);
        tracing::info!(status = status.name(), index = response.index, %output, "health reported");
        Ok(response.index)
    }
}

/// Registering the same instance, or setting the same status, twice is harmless.
fn idempotent(client: &Client) -> CallPolicy {
    CallPolicy {
        idempotent: true,
        ..CallPolicy::read(client.endpoints().len())
    }
}

fn is_not_found(e: &ClientError) -> bool {
    e.status()
        .is_some_and(|s| s.code() == tonic::Code::NotFound)
}

fn wire(status: Status) -> pb::HealthStatus {
    match status {
        Status::Passing => pb::HealthStatus::Passing,
        Status::Warning => pb::HealthStatus::Warning,
        Status::Critical => pb::HealthStatus::Critical,
    }
}
