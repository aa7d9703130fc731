//! The alert rules and the dashboard, checked without a cluster: `promtool check rules` and the
//! `promtool test rules` fixtures (each alert fires when it should and not when it should not),
//! and every PromQL expression of the dashboard and the rules parsed and its metric names checked
//! against the documented list of OPERATIONS.md, so no panel or alert watches a metric no node
//! serves. `tests/tests/prometheus.rs` evaluates the same expressions against a real Prometheus.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use herald_tests::ops;

fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {shown}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{text}",
        out.status
    );
    text
}

#[test]
fn promtool_accepts_the_rules_file() {
    let text = run(Command::new(ops::tool("promtool"))
        .arg("check")
        .arg("rules")
        .arg(ops::rules_file()));
    assert!(text.contains("SUCCESS"), "promtool said:\n{text}");
}

#[test]
fn every_alert_is_labelled_and_explained() {
    let rules = ops::rules().expect("the rules file reads");
    let alerts: Vec<_> = rules.iter().filter(|r| r.alert.is_some()).collect();
    assert!(alerts.len() >= 10, "only {} alerts", alerts.len());
    for rule in alerts {
        let name = rule.alert.as_deref().unwrap_or_default();
        let severity = rule.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "alert {name}: severity label {severity:?} (critical or warning)"
        );
        for key in ["summary", "description"] {
            assert!(
                rule.annotations
                    .get(key)
                    .is_some_and(|t| !t.trim().is_empty()),
                "alert {name} has no {key} annotation"
            );
        }
    }
}

/// The alerts the brief asks for, by what they watch: each must exist.
#[test]
fn the_rules_cover_every_failure_an_operator_must_hear_of() {
    let rules = ops::rules().expect("the rules file reads");
    let watched = |metric: &str| {
        rules
            .iter()
            .filter(|r| r.alert.is_some())
            .any(|r| r.expr.contains(metric))
    };
    for metric in [
        "herald_raft_has_leader",
        "herald_raft_leader_changes_total",
        "herald_raft_apply_lag_entries",
        "herald_raft_follower_lag_entries",
        "herald_link_up",
        "herald_queue_oldest_age_seconds{class=\"alarm\"}",
        "herald_delivery_reports_total",
        "herald_raft_log_fsync_duration_seconds_bucket",
        "herald_disk_free_bytes / herald_disk_total_bytes",
        "predict_linear(herald_disk_free_bytes",
        "herald_tls_certificate_expiry_timestamp_seconds",
        "herald_node_draining",
    ] {
        assert!(watched(metric), "no alert watches {metric}");
    }
}

/// Every fixture file passes, and every alert has a test case where it fires and one where it
/// must not.
#[test]
fn promtool_fixtures_fire_each_alert_when_they_should_and_only_then() {
    let dir = ops::chart_dir().join("rules/tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixture in {}", dir.display());

    // alert -> (cases where it must fire, cases where it must not)
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for file in &files {
        let text = run(Command::new(ops::tool("promtool"))
            .current_dir(&dir)
            .arg("test")
            .arg("rules")
            .arg(file));
        assert!(text.contains("SUCCESS"), "{}:\n{text}", file.display());

        let yaml: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(file).expect("readable"))
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for test in yaml["tests"].as_sequence().into_iter().flatten() {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap_or_default().to_string();
                let fires = case["exp_alerts"]
                    .as_sequence()
                    .is_some_and(|a| !a.is_empty());
                let entry = cases.entry(name).or_default();
                if fires {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
        }
    }
    for rule in ops::rules().expect("the rules file reads") {
        let Some(name) = rule.alert else { continue };
        let (fires, silent) = cases.get(&name).copied().unwrap_or_default();
        assert!(fires > 0, "alert {name}: no fixture case where it fires");
        assert!(
            silent > 0,
            "alert {name}: no fixture case where it must not fire"
        );
    }
}

/// Every expression of the dashboard (panels and variables) and of the rules parses as PromQL and
/// names only documented metrics; and the dashboard shows each documented `herald_` family
/// somewhere, so a new metric without a panel is noticed too.
#[test]
fn dashboard_and_rule_expressions_name_only_documented_metrics() {
    let documented = ops::documented_metrics().expect("OPERATIONS.md lists the metrics");
    let vars = ops::Variables::default();
    let dashboard = ops::dashboard_expressions().expect("the dashboard reads");
    assert!(
        dashboard.len() >= 30,
        "only {} panel queries",
        dashboard.len()
    );
    let mut all = dashboard.clone();
    all.extend(ops::dashboard_variable_selectors().expect("variables read"));
    all.extend(ops::rule_expressions().expect("the rules file reads"));

    let mut problems = Vec::new();
    let mut on_dashboard = BTreeSet::new();
    for (i, e) in all.iter().enumerate() {
        match ops::metric_names(&vars.substitute(&e.expr)) {
            Err(err) => problems.push(format!("{}: {:?} does not parse: {err}", e.origin, e.expr)),
            Ok(names) if names.is_empty() => {
                problems.push(format!("{}: {:?} selects no metric", e.origin, e.expr))
            }
            Ok(names) => {
                for name in names {
                    if !documented.covers(&name) {
                        problems.push(format!(
                            "{}: {name} is not in OPERATIONS.md's metric list",
                            e.origin
                        ));
                    }
                    if i < dashboard.len() {
                        on_dashboard.insert(name);
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let shown = ops::Documented {
        families: on_dashboard,
        prefixes: BTreeSet::new(),
    };
    let missing: Vec<_> = documented
        .families
        .iter()
        .filter(|f| f.starts_with("herald_"))
        .filter(|f| {
            !shown.families.iter().any(|s| {
                s == *f
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|x| *s == format!("{f}{x}"))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "documented metrics no dashboard panel shows: {missing:?}"
    );
}

/// The dashboard is what a current Grafana imports: a schema version, a templated datasource
/// used by every panel, and `cluster` and `link` variables filled from label values.
#[test]
fn the_dashboard_is_templated_by_datasource_cluster_and_link() {
    let text = std::fs::read_to_string(ops::dashboard_file()).expect("readable");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert!(json["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let vars: BTreeMap<&str, &serde_json::Value> = json["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?, v)))
        .collect();
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    for name in ["cluster", "link"] {
        let query = vars[name]["query"]["query"].as_str().unwrap_or_default();
        assert!(
            query.starts_with("label_values(") && query.ends_with(&format!(", {name})")),
            "variable {name}: {query:?}"
        );
    }
    let mut ids = BTreeSet::new();
    for panel in json["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(panel["id"].as_u64()),
            "duplicate panel id {}",
            panel["id"]
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                expr.contains("cluster=~\"$cluster\""),
                "panel {}: {expr:?} is not filtered by $cluster",
                panel["title"]
            );
        }
    }
}
