//! Partition shapes: which nodes may not talk to which. Each is a symmetric relation
//! over nodes 1..=n, given as the set of peers each node must drop.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;

/// For node `i` (index `i - 1`): the peers it cannot reach.
pub type Blocked = Vec<BTreeSet<u32>>;

/// The partition shapes the nemesis picks from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One node (the leader, when known) alone; the rest together.
    IsolateLeader,
    /// A random majority and the minority that is left.
    MajorityMinority,
    /// Two majorities that overlap in one node, the "bridge": it alone sees everyone.
    Bridge,
    /// Every node sees itself and its neighbours on a ring, a majority that is
    /// different for every node (needs 5 nodes; with 3 every node would see all).
    Ring,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::IsolateLeader,
        Shape::MajorityMinority,
        Shape::Bridge,
        Shape::Ring,
    ];

    /// The shapes that are distinct on `nodes` nodes: with fewer than 5 a ring would
    /// only be a bridge again, which would make bridges twice as likely.
    pub fn for_nodes(nodes: u32) -> &'static [Shape] {
        if nodes >= 5 {
            &Self::ALL
        } else {
            &Self::ALL[..3]
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shape::IsolateLeader => "isolate-leader",
            Shape::MajorityMinority => "majority-minority",
            Shape::Bridge => "bridge",
            Shape::Ring => "ring",
        }
    }
}

/// The cut for `shape` over `nodes` nodes. `leader` is used by `IsolateLeader` (a random
/// node when unknown); `rng` orders the nodes, so the same seed gives the same cuts.
pub fn blocked(shape: Shape, nodes: u32, leader: Option<u32>, rng: &mut impl Rng) -> Blocked {
    let mut order: Vec<u32> = (1..=nodes).collect();
    order.shuffle(rng);
    match shape {
        Shape::IsolateLeader => {
            let alone = leader.unwrap_or(order[0]);
            let rest: Vec<u32> = (1..=nodes).filter(|&n| n != alone).collect();
            between(nodes, &[alone], &rest)
        }
        Shape::MajorityMinority => {
            let minority = (nodes as usize - 1) / 2;
            between(nodes, &order[..minority], &order[minority..])
        }
        Shape::Bridge => {
            // order = [a.., bridge, ..b]: the bridge node is in both halves.
            let half = nodes as usize / 2;
            let (left, right) = (&order[..half], &order[half + 1..]);
            between(nodes, left, right)
        }
        Shape::Ring if nodes >= 5 => {
            let n = order.len();
            // Each node sees itself and `reach` neighbours either way: the smallest
            // reach that still makes a majority (5 nodes: 1, so 3 of 5).
            let reach = (n / 2).div_ceil(2);
            let mut cut = vec![BTreeSet::new(); nodes as usize];
            for (i, &a) in order.iter().enumerate() {
                for (j, &b) in order.iter().enumerate() {
                    let d = i.abs_diff(j).min(n - i.abs_diff(j));
                    if d > reach {
                        cut[(a - 1) as usize].insert(b);
                    }
                }
            }
            cut
        }
        // With fewer than 5 nodes a ring of majorities is no partition at all; a
        // bridge is the closest shape that still splits something.
        Shape::Ring => blocked(Shape::Bridge, nodes, leader, rng),
    }
}

/// Every node of `a` cut from every node of `b`.
fn between(nodes: u32, a: &[u32], b: &[u32]) -> Blocked {
    let mut cut = vec![BTreeSet::new(); nodes as usize];
    for &x in a {
        for &y in b {
            if x != y {
                cut[(x - 1) as usize].insert(y);
                cut[(y - 1) as usize].insert(x);
            }
        }
    }
    cut
}

/// "1 | 2 3"-style text for the history: who can reach whom.
pub fn describe(cut: &Blocked) -> String {
    cut.iter()
        .enumerate()
        .filter(|(_, peers)| !peers.is_empty())
        .map(|(i, peers)| {
            let peers: Vec<String> = peers.iter().map(u32::to_string).collect();
            format!("n{}-x-{{{}}}", i + 1, peers.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn reachable(cut: &Blocked, a: u32) -> usize {
        cut.len() - cut[(a - 1) as usize].len()
    }

    #[test]
    fn cuts_are_symmetric() {
        let mut rng = StdRng::seed_from_u64(7);
        for shape in Shape::ALL {
            for nodes in [3, 5] {
                let cut = blocked(shape, nodes, Some(2), &mut rng);
                for a in 1..=nodes {
                    for &b in &cut[(a - 1) as usize] {
                        assert!(cut[(b - 1) as usize].contains(&a), "{shape:?} {nodes}");
                    }
                }
            }
        }
    }

    #[test]
    fn isolate_leader_cuts_exactly_the_leader() {
        let mut rng = StdRng::seed_from_u64(1);
        let cut = blocked(Shape::IsolateLeader, 5, Some(3), &mut rng);
        assert_eq!(cut[2], BTreeSet::from([1, 2, 4, 5]));
        assert_eq!(cut[0], BTreeSet::from([3]));
    }

    #[test]
    fn majority_minority_leaves_one_majority() {
        let mut rng = StdRng::seed_from_u64(3);
        let cut = blocked(Shape::MajorityMinority, 5, None, &mut rng);
        let majorities = (1..=5).filter(|&n| reachable(&cut, n) >= 3).count();
        assert_eq!(majorities, 3);
    }

    #[test]
    fn bridge_node_sees_everyone_and_halves_see_a_majority() {
        let mut rng = StdRng::seed_from_u64(5);
        let cut = blocked(Shape::Bridge, 5, None, &mut rng);
        assert_eq!((1..=5).filter(|&n| reachable(&cut, n) == 5).count(), 1);
        assert!((1..=5).all(|n| reachable(&cut, n) >= 3));
    }

    #[test]
    fn ring_gives_every_node_a_different_majority() {
        let mut rng = StdRng::seed_from_u64(9);
        let cut = blocked(Shape::Ring, 5, None, &mut rng);
        assert!((1..=5).all(|n| reachable(&cut, n) == 3));
        let distinct: BTreeSet<_> = cut.iter().collect();
        assert_eq!(distinct.len(), 5);
    }
}
