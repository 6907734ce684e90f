//! Starting a node: bootstrap a new cluster, join an existing one, or restart from disk.
//!
//! ```text
//!  data_dir/node.json exists? ── yes ──► restart: reopen meta + every stored group
//!          │ no
//!          ├── no --join ──► bootstrap: make the cluster CA and keys, initialize meta and all
//!          │                 shard groups with this node as the only voter
//!          └── --join URL ──► POST URL/internal/v1/join (service token): the member records us in
//!                             meta and returns our certificate; the meta leader then adds us as a
//!                             learner, placement moves shard replicas to us
//! ```
//! node.json (id + certificate) is written before any Raft state, so a crash at any point restarts
//! into the same identity; every bootstrap step is idempotent and re-run until meta shows it done.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_raft::transport::{ClusterCa, NodeIdentity, NodeKey};
use herald_raft::{GroupId, RaftNode, RaftTiming, RocksStorage, StorageConfig};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::state_machines::ShardLogic;
use super::wakeups::WakeupsByShard;
use super::{Cluster, ClusterInner};
use crate::backend::{ApiKeys, ChannelRecord};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::meta::{ClusterInfo, MetaCommand, MetaLogic, MetaView};

/// What a node keeps outside RocksDB: who it is, and the bootstrap material until meta has it.
#[derive(Serialize, Deserialize)]
struct NodeFile {
    id: u64,
    identity: NodeIdentity,
    /// Present on the bootstrap node until its first start completed.
    bootstrap: Option<Bootstrap>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Bootstrap {
    info: ClusterInfo,
    keys: ApiKeys,
    ca: ClusterCa,
}

/// Body of `POST /internal/v1/join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub id: u64,
    pub http: String,
    pub peer: String,
    /// Hex of the joining node's public key (an uncompressed P-256 point). Its private key never
    /// leaves the joining node.
    pub public_key: String,
}

/// Reply to a join: the new node's certificate, signed by the cluster CA, and the CA certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinReply {
    pub ca_cert_pem: String,
    pub cert_pem: String,
}

fn random_token(prefix: &str) -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    format!("{prefix}{}", hex::encode(bytes))
}

fn node_file_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("node.json")
}

fn write_node_file(data_dir: &Path, file: &NodeFile) -> Result<()> {
    let tmp = data_dir.join("node.json.tmp");
    let bytes = serde_json::to_vec_pretty(file).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&tmp, bytes)
        .map_err(|e| Error::Internal(format!("write {}: {e}", tmp.display())))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::rename(&tmp, node_file_path(data_dir)).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(())
}

fn read_node_file(data_dir: &Path) -> Result<Option<NodeFile>> {
    let path = node_file_path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Internal(format!("{} is corrupt: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Internal(format!("read {}: {e}", path.display()))),
    }
}

async fn request_join(config: &Config) -> Result<NodeIdentity> {
    let url = config
        .join
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    let token = config.service_token.clone().ok_or_else(|| {
        Error::InvalidParams(
            "joining needs the cluster's service token (HERALD_SERVICE_TOKEN)".into(),
        )
    })?;
    let key = NodeKey::generate().map_err(|e| Error::Internal(e.to_string()))?;
    let body = JoinRequest {
        id: config.id,
        http: config.http_url(),
        peer: config.peer.to_string(),
        public_key: hex::encode(&key.public_key),
    };
    let client = reqwest::Client::new();
    let mut last = String::new();
    for _ in 0..60 {
        let resp = client
            .post(format!("{url}/internal/v1/join"))
            .bearer_auth(&token)
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {
                let reply: JoinReply = r
                    .json()
                    .await
                    .map_err(|e| Error::Internal(format!("join reply: {e}")))?;
                return Ok(key.into_identity(reply.ca_cert_pem, reply.cert_pem));
            }
            Ok(r) if r.status().is_client_error() => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                return Err(Error::InvalidParams(format!(
                    "join refused ({status}): {text}"
                )));
            }
            Ok(r) => last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::NotReady(format!(
        "could not join through {url}: {last}"
    )))
}

impl Cluster {
    /// Start this node (bootstrap, join or restart, as the data dir and config say).
    pub async fn start(config: Config) -> Result<Cluster> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::Internal(format!("create {}: {e}", config.data_dir.display())))?;
        let file = match read_node_file(&config.data_dir)? {
            Some(f) if f.id != config.id => {
                return Err(Error::InvalidParams(format!(
                    "data dir belongs to node {}, not node {}",
                    f.id, config.id
                )))
            }
            Some(f) => f,
            None if config.join.is_none() => {
                let ca = ClusterCa::generate().map_err(|e| Error::Internal(e.to_string()))?;
                let identity = ca
                    .issue(config.id)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                let keys = ApiKeys {
                    secret_key: config
                        .secret_key
                        .clone()
                        .unwrap_or_else(|| random_token("sk_")),
                    public_key: config
                        .public_key
                        .clone()
                        .unwrap_or_else(|| random_token("pk_")),
                    service_token: config
                        .service_token
                        .clone()
                        .unwrap_or_else(|| random_token("st_")),
                };
                let info = ClusterInfo {
                    shards: config.shards,
                    replication: config.replication,
                    created_ms: super::now_ms(),
                };
                let file = NodeFile {
                    id: config.id,
                    identity,
                    bootstrap: Some(Bootstrap { info, keys, ca }),
                };
                write_node_file(&config.data_dir, &file)?;
                file
            }
            None => {
                let identity = request_join(&config).await?;
                let file = NodeFile {
                    id: config.id,
                    identity,
                    bootstrap: None,
                };
                write_node_file(&config.data_dir, &file)?;
                file
            }
        };

        let storage = RocksStorage::open(
            &config.data_dir.join("db"),
            StorageConfig {
                sync_wal: config.sync_wal,
                wal_sync_interval: std::time::Duration::from_micros(config.wal_sync_interval_us),
                merge_rule: herald_shard::merge_rule,
            },
        )
        .map_err(|e| Error::Internal(format!("open storage: {e}")))?;
        let timing = RaftTiming {
            heartbeat_ms: config.heartbeat_ms,
            election_min_ms: config.election_timeout().start.as_millis() as u64,
            election_max_ms: config.election_timeout().end.as_millis() as u64,
            snapshot_every: config.snapshot_every,
            keep_after_snapshot: RaftTiming::default()
                .keep_after_snapshot
                .min(config.snapshot_every),
            ..RaftTiming::default()
        };
        let raft = RaftNode::start(
            config.id,
            storage.clone(),
            config.peer,
            &file.identity,
            timing,
        )
        .await
        .map_err(|e| Error::Internal(format!("start raft node: {e}")))?;
        let meta = raft
            .open_group(GroupId::META, Arc::new(MetaLogic))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let wakeups = Arc::new(WakeupsByShard::default());
        for group in storage
            .stored_groups()
            .map_err(|e| Error::Internal(e.to_string()))?
        {
            if let Some(shard) = group.as_shard() {
                let logic = ShardLogic::new(wakeups.get(shard));
                raft.open_group(group, Arc::new(logic))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
            }
        }
        let view = MetaView::new(meta.reader.clone());
        let cluster = Cluster {
            inner: Arc::new(ClusterInner {
                config: config.clone(),
                raft,
                meta,
                view,
                executors: Mutex::new(HashMap::new()),
                workflows: Arc::default(),
                wakeups,
                providers:
                    Arc::new(
                        crate::delivery::Providers::try_new(
                            crate::delivery::ProvidersConfig::default(),
                        )
                        .map_err(|e| Error::Internal(format!("delivery providers: {e}")))?,
                    ),
                leader_hints: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
            }),
        };
        cluster
            .inner
            .raft
            .set_app_handler(Arc::new(super::NodeRpc(Arc::downgrade(&cluster.inner))));

        if let Some(boot) = &file.bootstrap {
            cluster.bootstrap(boot).await?;
            let done = NodeFile {
                bootstrap: None,
                ..file
            };
            write_node_file(&config.data_dir, &done)?;
        }
        super::placement::spawn(cluster.clone());
        super::duties::spawn(cluster.clone());
        super::stalls::spawn(cluster.clone());
        Ok(cluster)
    }

    /// Initialize meta and every shard group with this node as the only voter. Idempotent.
    async fn bootstrap(&self, boot: &Bootstrap) -> Result<()> {
        let me = self.node_id();
        let members = BTreeMap::from([(
            me,
            BasicNode {
                addr: self.inner.config.peer.to_string(),
            },
        )]);
        let meta = &self.inner.meta.raft;
        // "Not allowed" means already initialized: a restart in the middle of a bootstrap.
        let _ = meta.initialize(members.clone()).await;
        meta.wait(Some(Duration::from_secs(30)))
            .current_leader(me, "bootstrap: meta leader")
            .await
            .map_err(|e| Error::Internal(format!("meta group did not elect this node: {e}")))?;
        if self.inner.view.info().is_none() {
            let cmd = MetaCommand::Bootstrap {
                info: boot.info.clone(),
                keys: boot.keys.clone(),
                ca: boot.ca.clone(),
            };
            match self.meta_write(cmd).await {
                Ok(()) | Err(Error::InvalidParams(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let c = &self.inner.config;
        self.meta_write(MetaCommand::AddNode {
            id: me,
            http: c.http_url(),
            peer: c.peer.to_string(),
        })
        .await?;
        if self.inner.view.channels().is_empty() {
            for channel in default_channels(&self.inner.config, crate::cluster::now_ms()) {
                let channel_json =
                    serde_json::to_string(&channel).map_err(|e| Error::Internal(e.to_string()))?;
                self.meta_write(MetaCommand::PutChannel { channel_json })
                    .await?;
            }
        }
        for shard in 0..boot.info.shards {
            let g = self
                .inner
                .raft
                .open_group(GroupId::shard(shard), self.shard_logic(shard))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            let _ = g.raft.initialize(members.clone()).await;
        }
        if self.inner.config.secret_key.is_none() || self.inner.config.service_token.is_none() {
            // Printed once, at the bootstrap that generated them.
            println!("herald: generated keys for this cluster (store them now):");
            println!("  HERALD_SECRET_KEY={}", boot.keys.secret_key);
            println!("  HERALD_PUBLIC_KEY={}", boot.keys.public_key);
            println!("  HERALD_SERVICE_TOKEN={}", boot.keys.service_token);
        }
        Ok(())
    }

    /// Serve a join: issue the node's certificate and record it as a member.
    pub async fn admit(&self, request: JoinRequest) -> Result<JoinReply> {
        if request.id == 0 {
            return Err(Error::InvalidParams("node id must be >= 1".into()));
        }
        if request.peer.parse::<std::net::SocketAddr>().is_err() {
            return Err(Error::InvalidParams(format!(
                "peer {:?} is not IP:PORT",
                request.peer
            )));
        }
        let ca = self
            .inner
            .view
            .ca()
            .ok_or_else(|| Error::NotReady("meta not caught up".into()))?;
        let public_key = hex::decode(&request.public_key)
            .map_err(|_| Error::InvalidParams("public_key must be hex".into()))?;
        let cert_pem = ca
            .certify(request.id, &public_key)
            .map_err(|e| Error::InvalidParams(e.to_string()))?;
        self.meta_write(MetaCommand::AddNode {
            id: request.id,
            http: request.http,
            peer: request.peer,
        })
        .await?;
        Ok(JoinReply {
            ca_cert_pem: ca.cert_pem().to_string(),
            cert_pem,
        })
    }

    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }
}

/// The channels every new cluster starts with: `in-app` (in_app_feed), `email` (SMTP from the
/// config) and `webhook` (http). Ids are random UUIDs, fixed once written.
fn default_channels(config: &Config, now_ms: u64) -> Vec<ChannelRecord> {
    let channel =
        |key: &str, name: &str, channel_type: &str, provider: &str, settings| ChannelRecord {
            id: uuid::Uuid::new_v4().to_string(),
            key: key.into(),
            name: name.into(),
            channel_type: channel_type.into(),
            provider: provider.into(),
            settings,
            sandbox: false,
            created_ms: now_ms,
            updated_ms: now_ms,
        };
    vec![
        channel(
            "in-app",
            "In-app feed",
            "in_app_feed",
            "knock",
            serde_json::json!({}),
        ),
        channel(
            "email",
            "Email (SMTP)",
            "email",
            "smtp",
            serde_json::json!({
                "host": config.smtp_host,
                "port": config.smtp_port,
                "from_address": config.email_from,
            }),
        ),
        channel(
            "webhook",
            "Webhook",
            "http",
            "webhook",
            serde_json::json!({}),
        ),
    ]
}
