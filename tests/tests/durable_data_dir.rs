//! A node's data directory survives a power loss: the node creates it (and its database
//! directory) itself, on a filesystem that loses every entry whose directory was not fsynced
//! (`herald-lossyfs`). A message acknowledged before the cut must be there after it. Skipped,
//! saying why, where /dev/fuse cannot be used.

use std::time::Duration;

use herald_api::v1::SubmitRequest;
use herald_lossyfs::{LossyFs, Tear};
use herald_tests::{wait_for, Cluster, Options};

#[tokio::test]
async fn a_new_data_directory_and_an_acknowledged_message_survive_a_power_cut() {
    if let Err(reason) = LossyFs::available() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let mount = tempfile::tempdir().expect("temp dir");
    // Declared before the cluster: the processes are killed before the filesystem unmounts.
    let fs = LossyFs::mount(mount.path()).expect("mount LossyFs");
    // Several levels the node must create: none of them exists yet.
    let root = mount.path().join("var/lib/herald");
    let cluster = Cluster::start(Options {
        nodes: 1,
        data_root: Some(root.clone()),
        ..Default::default()
    });
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let request = SubmitRequest {
        recipients: vec!["13800138000".into()],
        text: "acknowledged before the power cut".into(),
        idempotency_key: "durable-data-dir".into(),
        ..Default::default()
    };
    let id = cluster
        .submit_until_acked(&request, 0, Duration::from_secs(30))
        .await
        .expect("the message is acknowledged");

    cluster.kill_node(1);
    fs.power_cut(Tear::None).expect("power cut");
    let data_dir = &cluster.node(1).data_dir;
    assert!(
        data_dir.join("db").is_dir(),
        "the data directory {} did not survive the power cut",
        data_dir.display()
    );

    cluster.start_node(1);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let found = wait_for(
        "the acknowledged message",
        Duration::from_secs(30),
        || async { cluster.get_message(1, &id).await },
    )
    .await;
    assert_eq!(found.message_id, id);
    drop(cluster);
    assert!(fs.stats().fsyncs > 0);
}
