//! The Helm chart `charts/herald`, checked without a Kubernetes cluster: `helm lint --strict`,
//! `helm template` through `kubernetes-validate --strict` (the schemas of a pinned Kubernetes
//! version), and the rendered objects read back for what running Herald on Kubernetes needs:
//! parallel start and one-pod-at-a-time updates, a disruption budget that keeps the Raft
//! majority, readiness apart from liveness, a drain before stop within the grace period, volumes,
//! passwords only from Secrets, the alert rules and the dashboard, explicit bootstrap.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};

use herald_tests::ops;
use serde::Deserialize as _;
use serde_norway::Value;

/// The Kubernetes version whose schemas the rendered manifests are validated against (one that
/// kubernetes-validate ships; the chart needs >= 1.28 for the pod-index label).
const KUBERNETES_VERSION: &str = "1.34.0";

/// Values that switch every optional part of the chart on.
const FULL_VALUES: &str = r#"
links:
  - name: mobile
    protocol: cmpp
    address: "gw.example.com:7890"
    account: "900001"
    secretRef: {name: carrier-passwords, key: mobile}
    serviceId: HERALD
    srcId: "10690001"
    connections: 2
    options: {signature: "【国网】", signature-added-by: carrier, signature-position: prefix}
  - name: international
    protocol: smpp
    address: "smsc.example.com:2775"
    account: herald
    secretRef: {name: carrier-passwords, key: international}
    options: {bind: transceiver}
auth:
  apiKeySecret: herald-operator-key
  adminKeySha256: ["0000000000000000000000000000000000000000000000000000000000000000"]
policy: |
  [classes.alarm]
  weight = 10
serviceMonitor:
  enabled: true
"#;

fn helm(args: &[&str], values: Option<&str>) -> String {
    let mut cmd = Command::new(ops::tool("helm"));
    cmd.args(args).arg(ops::chart_dir());
    let file = values.map(|v| {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(v.as_bytes()).expect("write values");
        f
    });
    if let Some(f) = &file {
        cmd.arg("--values").arg(f.path());
    }
    let out = cmd.output().expect("running helm");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn render(extra: &[&str], values: Option<&str>) -> (String, Vec<Value>) {
    let mut args = vec!["template", "herald", "--namespace", "sms"];
    args.extend_from_slice(extra);
    let text = helm(&args, values);
    let docs = serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect();
    (text, docs)
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found = kind(docs, k);
    assert_eq!(found.len(), 1, "expected one {k}, got {}", found.len());
    found[0]
}

fn container(docs: &[Value]) -> &Value {
    &one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[test]
fn helm_lint_strict_passes() {
    let out = helm(&["lint", "--strict"], None);
    assert!(out.contains("0 chart(s) failed"), "{out}");
    let out = helm(&["lint", "--strict"], Some(FULL_VALUES));
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

/// Every rendered object of the built-in kinds passes strict schema validation; the Prometheus
/// Operator's kinds (no schema there) are checked by the tests below.
#[test]
fn rendered_manifests_pass_strict_kubernetes_validation() {
    for (name, values) in [("defaults", None), ("full", Some(FULL_VALUES))] {
        for extra in [&[][..], &["--is-upgrade"][..]] {
            let (text, docs) = render(extra, values);
            let mut child = Command::new(ops::tool("kubernetes-validate"))
                .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION, "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("running kubernetes-validate");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("feeding kubernetes-validate");
            let out = child.wait_with_output().expect("kubernetes-validate ends");
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success(),
                "{name} {extra:?}: kubernetes-validate failed:\n{report}"
            );
            let passed = report.matches(" passed for resource ").count();
            let custom = docs
                .iter()
                .filter(|d| str_of(&d["apiVersion"]).starts_with("monitoring.coreos.com/"))
                .count();
            assert_eq!(
                passed + custom,
                docs.len(),
                "{name} {extra:?}: not every object was validated:\n{report}"
            );
        }
    }
}

#[test]
fn nodes_start_in_parallel_and_update_one_at_a_time() {
    let (_, docs) = render(&[], None);
    let sts = one(&docs, "StatefulSet");
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "RollingUpdate");
    let rolling = &sts["spec"]["updateStrategy"]["rollingUpdate"];
    assert!(rolling["maxUnavailable"].is_null() || rolling["maxUnavailable"] == 1);
    assert!(rolling["partition"].is_null() || rolling["partition"] == 0);
    assert_eq!(sts["spec"]["replicas"], 3);

    // Stable identities: a headless service that also lists unready pods (a node is ready only
    // once it reaches its peers), and a client service.
    let peers_name = str_of(&sts["spec"]["serviceName"]);
    let services = kind(&docs, "Service");
    let headless = services
        .iter()
        .find(|s| s["metadata"]["name"] == peers_name)
        .expect("the StatefulSet's headless service");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let client = services
        .iter()
        .find(|s| s["metadata"]["name"] != peers_name)
        .expect("a client service");
    let ports: BTreeSet<&str> = client["spec"]["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| str_of(&p["name"]))
        .collect();
    assert_eq!(ports, BTreeSet::from(["grpc", "http"]));
}

/// The budget never lets voluntary disruptions take the majority, for every cluster size the
/// chart takes; 3 and 5 nodes lose one pod at a time.
#[test]
fn the_disruption_budget_keeps_a_majority() {
    for replicas in [1u64, 3, 5, 7, 9] {
        let set = format!("replicas={replicas}");
        let (_, docs) = render(&["--set", &set], None);
        let pdb = one(&docs, "PodDisruptionBudget");
        let max = pdb["spec"]["maxUnavailable"]
            .as_u64()
            .expect("maxUnavailable as a number");
        let majority = replicas / 2 + 1;
        if replicas > 1 {
            assert!(
                replicas - max >= majority,
                "{replicas} nodes: {max} unavailable leaves less than {majority}"
            );
        }
        if replicas == 3 || replicas == 5 {
            assert_eq!(max, 1, "{replicas} nodes");
        }
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"],
            one(&docs, "StatefulSet")["spec"]["selector"]["matchLabels"]
        );
    }
}

#[test]
fn readiness_and_liveness_are_separate_http_probes() {
    for (tls, scheme) in [("true", "HTTPS"), ("false", "HTTP")] {
        let set = format!("tls.enabled={tls}");
        let (_, docs) = render(&["--set", &set], None);
        let c = container(&docs);
        let readiness = &c["readinessProbe"]["httpGet"];
        let liveness = &c["livenessProbe"]["httpGet"];
        assert_eq!(readiness["path"], "/readyz");
        assert_eq!(liveness["path"], "/livez");
        assert_ne!(
            liveness["path"], "/readyz",
            "liveness must not depend on quorum"
        );
        for probe in [readiness, liveness] {
            assert_eq!(probe["scheme"], scheme, "tls.enabled={tls}");
            assert_eq!(probe["port"], "http");
        }
    }
}

/// A stopping pod drains first (its preStop hook), and its grace period covers the node's drain
/// (the node config's shutdown-drain-timeout-ms) with a margin.
#[test]
fn a_stopping_pod_drains_within_its_grace_period() {
    for timeout in [15u64, 40] {
        let set = format!("drain.timeoutSeconds={timeout}");
        let (_, docs) = render(&["--set", &set], Some(FULL_VALUES));
        let sts = one(&docs, "StatefulSet");
        let grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("terminationGracePeriodSeconds");
        let pre_stop = container(&docs)["lifecycle"]["preStop"]["exec"]["command"]
            .as_sequence()
            .expect("a preStop exec hook")
            .iter()
            .map(str_of)
            .collect::<Vec<_>>()
            .join(" ");
        // The hook starts the node's own drain (SIGTERM to the node, the container's first
        // process) and waits for it to exit.
        assert!(pre_stop.contains("kill -TERM 1"), "{pre_stop}");
        assert!(pre_stop.contains("while kill -0 1"), "{pre_stop}");
        for (name, config) in node_configs(&docs) {
            let ms = config["shutdown-drain-timeout-ms"]
                .as_integer()
                .unwrap_or_else(|| panic!("{name}: no shutdown-drain-timeout-ms"));
            assert_eq!(ms as u64, timeout * 1000, "{name}");
            assert!(
                grace >= timeout + 10,
                "grace {grace}s does not cover a shutdown drain of {timeout}s and the exit"
            );
        }
    }
}

#[test]
fn every_node_keeps_its_data_on_a_persistent_volume() {
    let (_, docs) = render(&[], None);
    let sts = one(&docs, "StatefulSet");
    let claims = sts["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .expect("volumeClaimTemplates");
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert!(claim["spec"]["resources"]["requests"]["storage"]
        .as_str()
        .is_some());
    let mount = container(&docs)["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == claim["metadata"]["name"])
        .expect("the claim is mounted");
    let mount_path = str_of(&mount["mountPath"]).to_string();
    for (name, config) in node_configs(&docs) {
        let data_dir = config["data-dir"].as_str().expect("data-dir");
        assert!(
            data_dir.starts_with(&format!("{mount_path}/")),
            "{name}: data-dir {data_dir} is not on the volume at {mount_path}"
        );
    }
}

/// Carrier passwords reach the node as files from Secrets: no ConfigMap holds one, each link's
/// `secret-file` is a mounted key of the Secret the values name.
#[test]
fn carrier_passwords_come_from_secrets_never_from_config_maps() {
    let (text, docs) = render(&[], Some(FULL_VALUES));
    assert!(!text.contains("secret = "), "an inline secret was rendered");
    let c = container(&docs);
    let volumes = one(&docs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes")
        .clone();
    let configs = node_configs(&docs);
    assert_eq!(configs.len(), 3);
    for (name, config) in configs {
        let links = config["links"].as_array().expect("links");
        assert_eq!(links.len(), 2, "{name}");
        for link in links {
            assert!(link.get("secret").is_none(), "{name}: inline secret");
            let file = link["secret-file"].as_str().expect("secret-file");
            let (dir, key_file) = file.rsplit_once('/').expect("a path");
            let mount = c["volumeMounts"]
                .as_sequence()
                .expect("mounts")
                .iter()
                .find(|m| m["mountPath"] == dir)
                .unwrap_or_else(|| panic!("{name}: {file} is on no mounted volume"));
            let volume = volumes
                .iter()
                .find(|v| v["name"] == mount["name"])
                .expect("the mounted volume");
            let link_name = link["name"].as_str().expect("name");
            assert_eq!(volume["secret"]["secretName"], "carrier-passwords");
            let item = &volume["secret"]["items"][0];
            assert_eq!(
                item["key"], link_name,
                "{name}: the Secret key of {link_name}"
            );
            assert_eq!(item["path"], key_file);
        }
    }
    for cm in kind(&docs, "ConfigMap") {
        for (_, value) in cm["data"].as_mapping().into_iter().flatten() {
            let value = str_of(value);
            assert!(!value.contains("BEGIN PRIVATE KEY"), "a key in a ConfigMap");
        }
    }
    // The TLS files come from a Secret too.
    assert!(volumes
        .iter()
        .any(|v| v["secret"]["secretName"] == "herald-tls"));
}

/// The PrometheusRule is the rules file as it is: every alert, with the same expression.
#[test]
fn the_prometheus_rule_carries_every_alert_of_the_rules_file() {
    let (_, docs) = render(&[], None);
    let rule = one(&docs, "PrometheusRule");
    let rendered: Vec<(String, String)> = rule["spec"]["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .map(|r| {
            (
                str_of(&r["alert"]).to_string(),
                str_of(&r["expr"]).to_string(),
            )
        })
        .collect();
    let file = ops::rules().expect("rules file");
    assert_eq!(rendered.len(), file.len());
    for r in file {
        let alert = r.alert.expect("alerting rules only");
        assert!(
            rendered.contains(&(alert.clone(), r.expr.clone())),
            "{alert} missing or changed in the PrometheusRule"
        );
    }
}

#[test]
fn the_dashboard_config_map_is_the_dashboard_file() {
    let (_, docs) = render(&[], None);
    let cm = kind(&docs, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("a ConfigMap labelled for Grafana's sidecar");
    let rendered: serde_json::Value =
        serde_json::from_str(str_of(&cm["data"]["herald.json"])).expect("JSON");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ops::dashboard_file()).expect("file"))
            .expect("JSON");
    assert_eq!(rendered, file);
}

/// The optional ServiceMonitor scrapes each pod once (the headless service), over TLS with the
/// cluster's CA, and gives every target the `cluster` label the dashboard and alerts use.
#[test]
fn the_service_monitor_labels_targets_with_the_cluster() {
    let (_, docs) = render(&[], None);
    assert!(
        kind(&docs, "ServiceMonitor").is_empty(),
        "optional: off by default"
    );
    let (_, docs) = render(&["--set", "tls.cluster=payments"], Some(FULL_VALUES));
    let sm = one(&docs, "ServiceMonitor");
    let selector = &sm["spec"]["selector"]["matchLabels"];
    let matching: Vec<_> = kind(&docs, "Service")
        .into_iter()
        .filter(|s| {
            selector
                .as_mapping()
                .expect("labels")
                .iter()
                .all(|(k, v)| &s["metadata"]["labels"][k] == v)
        })
        .collect();
    assert_eq!(matching.len(), 1, "one service scraped");
    assert_eq!(matching[0]["spec"]["clusterIP"], "None");
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(endpoint["tlsConfig"]["ca"]["secret"]["key"], "ca.pem");
    let relabel = endpoint["relabelings"]
        .as_sequence()
        .expect("relabelings")
        .iter()
        .find(|r| r["targetLabel"] == "cluster")
        .expect("a cluster target label");
    assert_eq!(relabel["replacement"], "payments");
}

/// `helm install` founds the cluster (`--bootstrap` on the founding pods); `helm upgrade` never
/// renders it, so a pod that lost its volume waits to be added instead of founding another.
#[test]
fn bootstrap_is_rendered_by_install_only() {
    let args = |docs: &[Value]| -> Vec<String> {
        container(docs)["args"]
            .as_sequence()
            .expect("args")
            .iter()
            .map(|a| str_of(a).to_string())
            .collect()
    };
    let (_, docs) = render(&[], None);
    assert!(args(&docs).contains(&"--bootstrap".to_string()));
    let (_, docs) = render(&["--is-upgrade"], None);
    assert!(!args(&docs).contains(&"--bootstrap".to_string()));
    let (_, docs) = render(&["--set", "bootstrap=false"], None);
    assert!(!args(&docs).contains(&"--bootstrap".to_string()));
}

/// Each pod's node config is a config the node accepts, naming its own id, every peer at its
/// stable address, and its own certificate.
#[test]
fn every_rendered_node_config_is_one_the_node_accepts() {
    let (_, docs) = render(&["--set", "replicas=5"], Some(FULL_VALUES));
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).expect("mkdir");
    let configs = node_configs(&docs);
    assert_eq!(configs.len(), 5);
    for (index, (name, config)) in configs.into_iter().enumerate() {
        let mut config = config;
        // The files the pod mounts live elsewhere here: point at copies in the temp dir.
        for link in config["links"].as_array_mut().expect("links") {
            let path = secrets.join(link["name"].as_str().expect("name"));
            std::fs::write(&path, "password\n").expect("write");
            link["secret-file"] = toml::Value::String(path.display().to_string());
        }
        let path = dir.path().join(&name);
        std::fs::write(&path, toml::to_string(&config).expect("TOML")).expect("write");
        let parsed = herald_node::config::NodeConfig::parse(&path)
            .unwrap_or_else(|e| panic!("{name} is refused: {e:#}"));
        assert_eq!(parsed.node_id, index as u64 + 1, "{name}");
        assert_eq!(parsed.peers.len(), 5);
        for peer in &parsed.peers {
            assert!(
                peer.raft
                    .starts_with(&format!("herald-{}.herald-peers.sms.svc.", peer.id - 1)),
                "{name}: peer {} at {}",
                peer.id,
                peer.raft
            );
        }
        let tls = parsed.tls.expect("[tls]");
        assert!(
            tls.cert.ends_with(format!("node-{}.pem", index + 1)),
            "{name}"
        );
    }
}

/// The node configs of the ConfigMap, by key, in pod order.
fn node_configs(docs: &[Value]) -> Vec<(String, toml::Table)> {
    let cm = kind(docs, "ConfigMap")
        .into_iter()
        .find(|c| {
            c["data"]
                .as_mapping()
                .is_some_and(|d| d.contains_key("node-0.toml"))
        })
        .expect("the node config ConfigMap");
    let mut out: Vec<(usize, String, toml::Table)> = cm["data"]
        .as_mapping()
        .expect("data")
        .iter()
        .filter_map(|(k, v)| {
            let key = str_of(k);
            let index = key
                .strip_prefix("node-")?
                .strip_suffix(".toml")?
                .parse()
                .ok()?;
            let table = str_of(v)
                .parse::<toml::Table>()
                .unwrap_or_else(|e| panic!("{key} is not TOML: {e}"));
            Some((index, key.to_string(), table))
        })
        .collect();
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, k, t)| (k, t)).collect()
}
