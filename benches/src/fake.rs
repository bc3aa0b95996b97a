//! An in-process stand-in for a Waymark node, for tests: Catalog.Register records the
//! ids it receives (and fails ids ending in 3 with UNAVAILABLE), Cluster.Status names
//! a configurable leader; everything else is UNIMPLEMENTED.

use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use waymark_proto::pb;

pub struct FakeNode {
    addr: String,
    registered: Arc<Mutex<Vec<String>>>,
    server: JoinHandle<()>,
}

impl FakeNode {
    /// Serves on an ephemeral port. `leader`: the API address Status reports as the
    /// leader; `None` makes this node the leader.
    pub async fn start(leader: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let registered = Arc::new(Mutex::new(Vec::new()));
        let svc = Svc {
            registered: Arc::clone(&registered),
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
            registered,
            server,
        }
    }

    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Ids of the Register calls this node answered, successful or not.
    pub fn registered(&self) -> Vec<String> {
        self.registered.lock().unwrap().clone()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct Svc {
    registered: Arc<Mutex<Vec<String>>>,
    leader: String,
}

#[tonic::async_trait]
impl pb::catalog_server::Catalog for Svc {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let req = req.into_inner();
        self.registered.lock().unwrap().push(req.id.clone());
        if req.id.ends_with('3') {
            return Err(Status::unavailable("fake: ids ending in 3 fail"));
        }
        Ok(Response::new(pb::RegisterResponse {
            instance: None,
            index: 1,
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
        _: Request<pb::ListInstancesRequest>,
    ) -> Result<Response<pb::ListInstancesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Svc {
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
