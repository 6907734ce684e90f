//! The official management SDK (`@knocklabs/mgmt`, from npm) against a running node: runs the
//! `node --test` suite in `node/tests/sdk/mgmt` (installed by `.ci/test` with `npm ci`).

mod common;

use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knocklabs_mgmt_sdk_manages_workflows_and_channels() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_cluster(root.path(), 1, 4).await;
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/mgmt");
    assert!(
        std::path::Path::new(suite)
            .join("node_modules/@knocklabs/mgmt")
            .exists(),
        "run `npm ci --prefix node/tests/sdk/mgmt` first (.ci/test does)"
    );
    let url = nodes[0].url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--test"])
            .current_dir(suite)
            .env("KNOCK_MGMT_BASE_URL", &url)
            .env("KNOCK_SERVICE_TOKEN", SERVICE)
            .output()
            .expect("run node --test (Node.js 20+)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the @knocklabs/mgmt suite failed");
    assert!(stdout.contains("# pass 3"), "{stdout}");
}
