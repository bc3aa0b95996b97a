//! Finding the leader: the one rule for reading it from a node's status, and asking
//! the nodes in turn until one names it.

use std::time::Duration;

use tokio::time::Instant;
use waymark_proto::pb;

use crate::client::{cluster, Client};
use crate::endpoints::display_addr;
use crate::error::ClientError;

/// The leader's API address as a node reports it: `leader_api_addr`, or the address of
/// the member whose id is `leader_id`.
pub fn leader_addr(status: &pb::StatusResponse) -> Option<String> {
    if !status.leader_api_addr.is_empty() {
        return Some(status.leader_api_addr.clone());
    }
    let id = status.leader_id?;
    status
        .members
        .iter()
        .find(|m| m.node_id == id && !m.api_addr.is_empty())
        .map(|m| m.api_addr.clone())
}

/// Asks the nodes in turn (Cluster.Status) until one names a leader, for up to `wait`.
pub async fn find_leader(client: &Client, wait: Duration) -> Result<String, ClientError> {
    let deadline = Instant::now() + wait;
    let mut last_problem = String::from("no node answered");
    loop {
        for i in 0..client.endpoints().len() {
            let uri = client.endpoints().get(i).to_string();
            let answer = match client.channel(i).await {
                Ok(ch) => cluster(ch)
                    .status(pb::StatusRequest {})
                    .await
                    .map_err(|s| ClientError::rpc(&uri, s)),
                Err(e) => Err(e),
            };
            match answer {
                Ok(reply) => {
                    let status = reply.into_inner();
                    match leader_addr(&status) {
                        Some(addr) => return Ok(addr),
                        None => {
                            last_problem = format!(
                                "{} (node {}) knows no leader",
                                display_addr(&uri),
                                status.node_id
                            )
                        }
                    }
                }
                Err(e) => last_problem = crate::error::chain_text(&e),
            }
        }
        if Instant::now() >= deadline {
            return Err(ClientError::GaveUp(format!(
                "no leader found within {wait:?}: {last_problem}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_address_comes_from_the_field_or_the_member_list() {
        let mut s = pb::StatusResponse {
            leader_api_addr: "x:1".into(),
            ..Default::default()
        };
        assert_eq!(leader_addr(&s).as_deref(), Some("x:1"));

        s.leader_api_addr.clear();
        assert_eq!(leader_addr(&s), None);

        s.leader_id = Some(2);
        s.members = vec![
            pb::Member {
                node_id: 1,
                api_addr: "a:1".into(),
                ..Default::default()
            },
            pb::Member {
                node_id: 2,
                api_addr: "b:2".into(),
                ..Default::default()
            },
        ];
        assert_eq!(leader_addr(&s).as_deref(), Some("b:2"));

        s.leader_id = Some(9);
        assert_eq!(leader_addr(&s), None);
    }
}
