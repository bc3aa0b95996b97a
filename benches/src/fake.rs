//! An in-process stand-in for a Waymark node, for tests. Catalog.Register records the
//! ids it receives, fails ids ending in 3 with UNAVAILABLE, and stores the others;
//! ListInstances lists a service and records the read options it was given; Watch sends
//! a snapshot of the service, then one Changes message per Register of it (as the real
//! server does); Cluster.Status names a configurable leader. Everything else is
//! UNIMPLEMENTED.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use waymark_proto::pb;

use crate::conn::{Backend, ClientOpts};

/// A service the fake refuses to watch.
pub const UNWATCHABLE: &str = "unwatchable";

/// Connection options for tests: waymark backend, no leader targeting.
pub fn opts(endpoints: Vec<String>, clients: u32, conns: u32) -> ClientOpts {
    ClientOpts {
        backend: Backend::Waymark,
        endpoints,
        clients,
        conns,
        target_leader: false,
        dial_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        token: None,
        ca_file: None,
    }
}

/// The catalog: instances by (service, id), the index of the last change, and the
/// changes as they happen (index, instance) for the watchers.
struct State {
    instances: BTreeMap<(String, String), pb::Instance>,
    index: u64,
    changes: broadcast::Sender<(u64, pb::Instance)>,
}

#[derive(Clone)]
struct Shared {
    registered: Arc<Mutex<Vec<String>>>,
    list_reads: Arc<Mutex<Vec<(i32, bool)>>>,
    state: Arc<Mutex<State>>,
    /// When set, every Register is also delivered a second time to watchers (to test
    /// duplicate counting).
    duplicate_events: bool,
}

pub struct FakeNode {
    addr: String,
    shared: Shared,
    server: JoinHandle<()>,
}

impl FakeNode {
    /// Serves on an ephemeral port. `leader`: the API address Status reports as the
    /// leader; `None` makes this node the leader.
    pub async fn start(leader: Option<String>) -> Self {
        Self::start_with(leader, false).await
    }

    /// Like `start`; with `duplicate_events`, watchers get every change twice.
    pub async fn start_with(leader: Option<String>, duplicate_events: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Shared {
            registered: Arc::default(),
            list_reads: Arc::default(),
            state: Arc::new(Mutex::new(State {
                instances: BTreeMap::new(),
                index: 0,
                changes: broadcast::channel(1 << 16).0,
            })),
            duplicate_events,
        };
        let svc = Svc {
            shared: shared.clone(),
            leader: leader.unwrap_or_else(|| addr.clone()),
        };
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(pb::catalog_server::CatalogServer::new(svc.clone()))
                .add_service(pb::cluster_server::ClusterServer::new(svc))
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        Self {
            addr,
            shared,
            server,
        }
    }

    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Ids of the Register calls this node answered, successful or not.
    pub fn registered(&self) -> Vec<String> {
        self.shared.registered.lock().unwrap().clone()
    }

    /// Stores an instance directly (as a successful Register would).
    pub fn put(&self, service: &str, id: &str) {
        self.shared.apply(pb::Instance {
            service: service.into(),
            id: id.into(),
            ..Default::default()
        });
    }

    /// (consistency, passing_only) of every ListInstances call so far.
    pub fn list_reads(&self) -> Vec<(i32, bool)> {
        self.shared.list_reads.lock().unwrap().clone()
    }

    pub fn clear_list_reads(&self) {
        self.shared.list_reads.lock().unwrap().clear();
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    fn apply(&self, mut instance: pb::Instance) -> u64 {
        let mut st = self.state.lock().unwrap();
        st.index += 1;
        let index = st.index;
        instance.modify_index = index;
        st.instances.insert(
            (instance.service.clone(), instance.id.clone()),
            instance.clone(),
        );
        let _ = st.changes.send((index, instance.clone()));
        if self.duplicate_events {
            let _ = st.changes.send((index, instance));
        }
        index
    }
}

#[derive(Clone)]
struct Svc {
    shared: Shared,
    leader: String,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<waymark_proto::WatchFrame, Status>> + Send>>;

#[tonic::async_trait]
impl pb::catalog_server::Catalog for Svc {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let req = req.into_inner();
        self.shared.registered.lock().unwrap().push(req.id.clone());
        if req.id.ends_with('3') {
            return Err(Status::unavailable("fake: ids ending in 3 fail"));
        }
        let index = self.shared.apply(pb::Instance {
            service: req.service,
            id: req.id,
            address: req.address,
            port: req.port,
            tags: req.tags,
            meta: req.meta,
            ..Default::default()
        });
        Ok(Response::new(pb::RegisterResponse {
            instance: None,
            index,
        }))
    }

    async fn deregister(
        &self,
        _: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_instance(
        &self,
        _: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_services(
        &self,
        _: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_instances(
        &self,
        req: Request<pb::ListInstancesRequest>,
    ) -> Result<Response<pb::ListInstancesResponse>, Status> {
        let req = req.into_inner();
        let consistency = req.read.map_or(0, |r| r.consistency);
        self.shared
            .list_reads
            .lock()
            .unwrap()
            .push((consistency, req.passing_only));
        let st = self.shared.state.lock().unwrap();
        let instances = st
            .instances
            .values()
            .filter(|i| i.service == req.service)
            .cloned()
            .collect();
        Ok(Response::new(pb::ListInstancesResponse {
            instances,
            more: false,
            meta: Some(pb::ResponseMeta {
                index: st.index,
                consistency,
                ..Default::default()
            }),
        }))
    }

    async fn update_health(
        &self,
        _: Request<pb::UpdateHealthRequest>,
    ) -> Result<Response<pb::UpdateHealthResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type StreamInstancesStream =
        Pin<Box<dyn Stream<Item = Result<pb::ListInstancesResponse, Status>> + Send>>;

    async fn stream_instances(
        &self,
        _req: Request<pb::ListInstancesRequest>,
    ) -> Result<Response<Self::StreamInstancesStream>, Status> {
        Err(Status::unimplemented("fake: no StreamInstances"))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = req.into_inner();
        if req.from_index != 0 || req.all || req.services.is_empty() {
            return Err(Status::unimplemented(
                "fake: only services=[..] from_index=0",
            ));
        }
        if req.services.iter().any(|s| s == UNWATCHABLE) {
            return Err(Status::failed_precondition(
                "fake: this service cannot be watched",
            ));
        }
        let services = req.services;
        // Snapshot and subscription under one lock: no change is missed or doubled.
        let (snapshot, rx) = {
            let st = self.shared.state.lock().unwrap();
            let instances: Vec<pb::Instance> = st
                .instances
                .values()
                .filter(|i| services.contains(&i.service))
                .cloned()
                .collect();
            let snapshot = pb::WatchResponse {
                index: st.index,
                event: Some(pb::watch_response::Event::Snapshot(pb::WatchSnapshot {
                    instances,
                    ..Default::default()
                })),
            };
            (snapshot, st.changes.subscribe())
        };
        let changes = futures::stream::unfold(rx, move |mut rx| {
            let services = services.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok((index, instance)) if services.contains(&instance.service) => {
                            let msg = pb::WatchResponse {
                                index,
                                event: Some(pb::watch_response::Event::Changes(pb::WatchChanges {
                                    changes: vec![pb::RecordChange {
                                        change: Some(pb::record_change::Change::Upsert(instance)),
                                    }],
                                })),
                            };
                            return Some((Ok(msg.into()), rx));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            return Some((Err(Status::data_loss("fake: watcher lagged")), rx))
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        let stream =
            futures::StreamExt::chain(futures::stream::iter([Ok(snapshot.into())]), changes);
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Svc {
    type SaveSnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotChunk, Status>> + Send>>;

    async fn save_snapshot(
        &self,
        _: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<Self::SaveSnapshotStream>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn members(
        &self,
        _: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn add_member(
        &self,
        _: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn remove_member(
        &self,
        _: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(pb::StatusResponse {
            leader_api_addr: self.leader.clone(),
            ..Default::default()
        }))
    }
}
