//! Recipient -> slot -> shard hashing and shard -> node placement. Pure functions.
//!
//! ```text
//! recipient_key --xxh3_64 % 4096--> slot --contiguous ranges--> shard --rendezvous top-R--> nodes
//! ```
//!
//! - [`slot_of`] never changes for a key: slots are the unit the slot table could later remap.
//! - [`shard_of_slot`] splits the 4096 slots into `shard_count` contiguous ranges.
//! - [`rendezvous_replicas`] ranks nodes by a hash of `(shard, node)`: adding or removing a node only
//!   moves the shards whose top-R set changes, and every node computes the same answer.

use xxhash_rust::xxh3::xxh3_64;

use crate::ShardId;

/// Number of hash slots; fixed for the life of a cluster.
pub const SLOT_COUNT: u16 = 4096;

/// The slot of a recipient key (`user id`, or `collection/id` for objects and tenants).
pub fn slot_of(recipient_key: &str) -> u16 {
    (xxh3_64(recipient_key.as_bytes()) % SLOT_COUNT as u64) as u16
}

/// The shard owning `slot` when the cluster has `shard_count` shards (contiguous ranges).
/// `shard_count == 0` is treated as 1.
pub fn shard_of_slot(slot: u16, shard_count: u32) -> ShardId {
    let n = shard_count.max(1) as u64;
    let slot = (slot % SLOT_COUNT) as u64;
    (slot * n / SLOT_COUNT as u64) as ShardId
}

fn weight(shard: ShardId, node: u64) -> u64 {
    let mut buf = [0u8; 12];
    buf[..4].copy_from_slice(&shard.to_be_bytes());
    buf[4..].copy_from_slice(&node.to_be_bytes());
    xxh3_64(&buf)
}

/// The `r` nodes holding `shard`: the top-`r` by highest random weight of `(shard, node)`, sorted by
/// weight (highest first; the first is the preferred leader). Duplicate node ids count once.
pub fn rendezvous_replicas(shard: ShardId, nodes: &[u64], r: usize) -> Vec<u64> {
    let mut ranked: Vec<(u64, u64)> = nodes.iter().map(|&n| (weight(shard, n), n)).collect();
    // Highest weight first; ties (practically impossible) broken by node id for determinism.
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.dedup_by_key(|(_, n)| *n);
    ranked.into_iter().take(r).map(|(_, n)| n).collect()
}

/// The node that should lead each shard `0..shard_count`: of a shard's replicas (rendezvous order),
/// the one that leads the fewest shards so far, ties going to the higher-ranked replica. Leadership
/// then spreads evenly: when every node holds every shard, counts differ by at most one.
///
/// Deterministic in its inputs, so every node computes the same answer from the same membership.
pub fn preferred_leaders(shard_count: u32, nodes: &[u64], r: usize) -> Vec<u64> {
    let mut led: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
    (0..shard_count)
        .filter_map(|shard| {
            let replicas = rendezvous_replicas(shard, nodes, r);
            // `min_by_key` keeps the first of equal keys: the higher-ranked replica.
            let leader = *replicas
                .iter()
                .min_by_key(|n| led.get(n).copied().unwrap_or(0))?;
            *led.entry(leader).or_default() += 1;
            Some(leader)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_stable_and_in_range() {
        assert_eq!(slot_of("user-1"), slot_of("user-1"));
        assert_eq!(slot_of("user-1"), (xxh3_64(b"user-1") % 4096) as u16);
        for i in 0..1000 {
            assert!(slot_of(&format!("u{i}")) < SLOT_COUNT);
        }
    }

    #[test]
    fn slots_spread_evenly_over_shards() {
        let shards = 64u32;
        let mut counts = vec![0u32; shards as usize];
        let n = 64_000;
        for i in 0..n {
            counts[shard_of_slot(slot_of(&format!("user-{i}")), shards) as usize] += 1;
        }
        let expected = n / shards;
        for c in counts {
            assert!(
                c > expected * 8 / 10 && c < expected * 12 / 10,
                "{c} vs {expected}"
            );
        }
    }

    #[test]
    fn shard_ranges_are_contiguous_and_cover_all_shards() {
        for shards in [1u32, 3, 7, 64, 4096] {
            let mut prev = 0;
            let mut seen = std::collections::BTreeSet::new();
            for slot in 0..SLOT_COUNT {
                let s = shard_of_slot(slot, shards);
                assert!(s >= prev && s < shards);
                prev = s;
                seen.insert(s);
            }
            assert_eq!(seen.len() as u32, shards);
        }
        assert_eq!(shard_of_slot(100, 0), 0);
    }

    #[test]
    fn rendezvous_is_deterministic_and_distinct() {
        let nodes = [1, 2, 3, 4, 5];
        let a = rendezvous_replicas(7, &nodes, 3);
        assert_eq!(a, rendezvous_replicas(7, &[5, 4, 3, 2, 1], 3));
        assert_eq!(a.len(), 3);
        let set: std::collections::BTreeSet<_> = a.iter().collect();
        assert_eq!(set.len(), 3);
        assert_eq!(rendezvous_replicas(7, &[1, 1, 2], 3).len(), 2);
        assert_eq!(rendezvous_replicas(7, &nodes, 9).len(), 5);
    }

    #[test]
    fn a_join_moves_only_shards_whose_top_r_changes() {
        let before_nodes: Vec<u64> = (1..=5).collect();
        let mut after_nodes = before_nodes.clone();
        after_nodes.push(6);
        let mut moved = 0;
        for shard in 0..256 {
            let before = rendezvous_replicas(shard, &before_nodes, 3);
            let after = rendezvous_replicas(shard, &after_nodes, 3);
            if before != after {
                moved += 1;
                // The only change is the new node entering and one old node leaving.
                assert!(after.contains(&6));
                let kept = before.iter().filter(|n| after.contains(n)).count();
                assert_eq!(kept, 2);
            } else {
                assert!(!after.contains(&6));
            }
        }
        // The new node should take about r/N = 3/6 of the shards.
        assert!(
            moved > 256 * 3 / 10 && moved < 256 * 7 / 10,
            "moved {moved}"
        );
    }

    #[test]
    fn a_leave_moves_only_shards_that_held_the_node() {
        let nodes: Vec<u64> = (1..=6).collect();
        let remaining: Vec<u64> = (1..=5).collect();
        for shard in 0..256 {
            let before = rendezvous_replicas(shard, &nodes, 3);
            let after = rendezvous_replicas(shard, &remaining, 3);
            if !before.contains(&6) {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn preferred_leaders_spread_evenly_over_full_replica_sets() {
        let leaders = preferred_leaders(64, &[1, 2, 3], 3);
        assert_eq!(leaders.len(), 64);
        let count = |n: u64| leaders.iter().filter(|l| **l == n).count();
        let mut counts = [count(1), count(2), count(3)];
        counts.sort_unstable();
        assert_eq!(counts, [21, 21, 22]);
    }

    #[test]
    fn preferred_leader_is_a_replica_and_stable() {
        let nodes = [1, 2, 3, 4, 5, 6, 7];
        let leaders = preferred_leaders(256, &nodes, 3);
        for (shard, leader) in leaders.iter().enumerate() {
            assert!(rendezvous_replicas(shard as u32, &nodes, 3).contains(leader));
        }
        assert_eq!(leaders, preferred_leaders(256, &[7, 6, 5, 4, 3, 2, 1], 3));
        let max = nodes
            .iter()
            .map(|n| leaders.iter().filter(|l| *l == n).count())
            .max();
        let min = nodes
            .iter()
            .map(|n| leaders.iter().filter(|l| *l == n).count())
            .min();
        assert!(max.unwrap() - min.unwrap() <= 2, "{min:?}..{max:?}");
    }

    #[test]
    fn preferred_leaders_of_one_node_and_of_none() {
        assert_eq!(preferred_leaders(4, &[9], 3), vec![9; 4]);
        assert!(preferred_leaders(4, &[], 3).is_empty());
    }
}
