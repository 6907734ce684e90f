//! openraft's own storage conformance suite against the RocksDB log store and state machine.

use std::sync::Arc;

use herald_raft::storage::{GroupBatch, RocksLogStore, RocksStateMachine, StateMachineLogic};
use herald_raft::types::{GroupId, StorageError, TypeConfig};
use herald_raft::{RocksStorage, StorageConfig};
use openraft::testing::{StoreBuilder, Suite};

/// Echoes payloads back and records them, so applied entries have visible effects.
struct Echo;

impl StateMachineLogic for Echo {
    fn apply(&self, state: &mut GroupBatch<'_>, payload: &[u8]) -> Vec<u8> {
        state.put(payload, payload);
        payload.to_vec()
    }
}

struct Builder;

impl StoreBuilder<TypeConfig, RocksLogStore, RocksStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, RocksLogStore, RocksStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage =
            RocksStorage::open(dir.path(), StorageConfig::default()).expect("open rocksdb");
        // A non-zero group, so the group prefix is exercised (and a neighbour group must not leak in).
        let group = GroupId::shard(4);
        let neighbour = storage.log_store(GroupId::shard(5));
        drop(neighbour);
        let log = storage.log_store(group);
        let sm = storage
            .state_machine(group, Arc::new(Echo))
            .expect("state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_rocksdb() {
    Suite::test_all(Builder).expect("openraft storage suite");
}
