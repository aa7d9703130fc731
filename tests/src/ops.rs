//! What the operator artefacts under `charts/herald` (the Grafana dashboard, the alert rules, the
//! Helm chart) look like to a test: their expressions as PromQL, the metric names those name, the
//! documented metric list of OPERATIONS.md, and where the external tools (promtool, prometheus,
//! helm, kubernetes-validate) are. It drives no tool itself and starts no node; the tests in
//! `tests/tests/monitoring.rs`, `chart.rs` and `prometheus.rs` do.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// The Helm chart's folder.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/herald")
}

/// The plain Prometheus rules file (the chart's PrometheusRule is rendered from it).
pub fn rules_file() -> PathBuf {
    chart_dir().join("rules/herald-alerts.yaml")
}

/// The Grafana dashboard.
pub fn dashboard_file() -> PathBuf {
    chart_dir().join("dashboards/herald.json")
}

/// An external tool: `$HERALD_<NAME>` (upper case, `-` as `_`), else `.tools/bin/NAME` or
/// `.tools/venv/bin/NAME` (where `scripts/install-tools` puts them), else NAME on the PATH.
/// Panics, saying what installs it, when none exists: a test that needs the tool must not pass
/// without running it.
pub fn tool(name: &str) -> PathBuf {
    let var = format!("HERALD_{}", name.to_uppercase().replace('-', "_"));
    if let Ok(path) = std::env::var(&var) {
        return PathBuf::from(path);
    }
    let root = repo_root();
    for local in [
        root.join(".tools/bin").join(name),
        root.join(".tools/venv/bin").join(name),
    ] {
        if local.is_file() {
            return local;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{name} is not installed: scripts/install-deps (prometheus, promtool) and \
         scripts/install-tools (helm, kubernetes-validate) install it, as scripts/test does; \
         or set {var}"
    )
}

/// One PromQL expression of a dashboard panel or a rule, and where it comes from (for messages).
#[derive(Debug, Clone)]
pub struct Expression {
    pub origin: String,
    pub expr: String,
}

/// Values for the dashboard's template variables when an expression is evaluated or parsed
/// outside Grafana.
#[derive(Debug, Clone)]
pub struct Variables {
    /// `$cluster` (a regex in the dashboard's `=~` matchers).
    pub cluster: String,
    /// `$link` (`.*` is what the dashboard's "All" sends).
    pub link: String,
    /// Grafana's `$__rate_interval` and `$__interval`.
    pub rate_interval: String,
}

impl Default for Variables {
    fn default() -> Self {
        Variables {
            cluster: ".*".into(),
            link: ".*".into(),
            rate_interval: "5m".into(),
        }
    }
}

impl Variables {
    /// The expression as Grafana would send it to Prometheus.
    pub fn substitute(&self, expr: &str) -> String {
        expr.replace("$__rate_interval", &self.rate_interval)
            .replace("$__interval", &self.rate_interval)
            .replace("${cluster}", &self.cluster)
            .replace("$cluster", &self.cluster)
            .replace("${link}", &self.link)
            .replace("$link", &self.link)
    }
}

/// Every panel query of the dashboard (rows' nested panels included), untouched.
pub fn dashboard_expressions() -> anyhow::Result<Vec<Expression>> {
    let path = dashboard_file();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))?;
    let mut out = Vec::new();
    fn panels(list: &serde_json::Value, out: &mut Vec<Expression>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(Expression {
                        origin: format!(
                            "dashboard panel {title:?} query {}",
                            target["refId"].as_str().unwrap_or("?")
                        ),
                        expr: expr.to_string(),
                    });
                }
            }
            panels(&panel["panels"], out);
        }
    }
    panels(&json["panels"], &mut out);
    Ok(out)
}

/// The dashboard's template variable queries (`label_values(SELECTOR, label)`): the selectors,
/// as PromQL expressions.
pub fn dashboard_variable_selectors() -> anyhow::Result<Vec<Expression>> {
    let path = dashboard_file();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut out = Vec::new();
    for var in json["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or_else(|| var["query"].as_str())
            .unwrap_or_default();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .map(|(selector, _label)| selector.trim().to_string())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "dashboard variable {}: query {query:?} is not label_values(SELECTOR, LABEL)",
                    var["name"]
                )
            })?;
        out.push(Expression {
            origin: format!("dashboard variable {}", var["name"]),
            expr: inner,
        });
    }
    Ok(out)
}

/// A rule of a Prometheus rules file: its name (alert or record) and expression, and for alerts
/// their labels and annotations.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Rule {
    pub alert: Option<String>,
    pub record: Option<String>,
    pub expr: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, serde::Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, serde::Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

/// Every rule of the rules file.
pub fn rules() -> anyhow::Result<Vec<Rule>> {
    let path = rules_file();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let file: RuleFile =
        serde_norway::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(file.groups.into_iter().flat_map(|g| g.rules).collect())
}

/// The rules' expressions.
pub fn rule_expressions() -> anyhow::Result<Vec<Expression>> {
    Ok(rules()?
        .into_iter()
        .map(|r| Expression {
            origin: format!(
                "rule {}",
                r.alert.or(r.record).unwrap_or_else(|| "(unnamed)".into())
            ),
            expr: r.expr,
        })
        .collect())
}

/// The metric names an expression selects (`up{…}`, `rate(x_total[5m])`, `{__name__="x"}`),
/// found by parsing it as PromQL: function names, keywords, label names and values, grouping
/// labels and string literals are not metrics, whatever they look like.
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let ast = parser::parse(expr)?;
    struct Names(BTreeSet<String>);
    impl Names {
        fn selector(&mut self, vs: &parser::VectorSelector) {
            if let Some(name) = &vs.name {
                self.0.insert(name.clone());
            }
            for m in &vs.matchers.matchers {
                if m.name == "__name__" {
                    self.0.insert(m.value.clone());
                }
            }
        }
    }
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            match expr {
                Expr::VectorSelector(vs) => self.selector(vs),
                Expr::MatrixSelector(ms) => self.selector(&ms.vs),
                _ => {}
            }
            Ok(true)
        }
    }
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &ast)?;
    Ok(names.0)
}

/// The documented metric families: the first backticked name of every table row of
/// OPERATIONS.md that is a metric name (`herald_…`, and `process_*` when the process
/// collector's family is documented that way).
pub fn documented_metrics() -> anyhow::Result<Documented> {
    let path = repo_root().join("OPERATIONS.md");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let mut families = BTreeSet::new();
    let mut prefixes = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            continue;
        }
        let first_cell = line.trim_start_matches('|').split('|').next().unwrap_or("");
        for token in first_cell.split('`').skip(1).step_by(2) {
            let token = token.trim();
            if let Some(prefix) = token.strip_suffix('*') {
                if !prefix.is_empty() && prefix.chars().all(is_metric_char) {
                    prefixes.insert(prefix.to_string());
                }
            } else if !token.is_empty() && token.chars().all(is_metric_char) && token.contains('_')
            {
                families.insert(token.to_string());
            }
        }
    }
    anyhow::ensure!(
        !families.is_empty(),
        "{} documents no metric (a table whose rows start with a `metric_name`)",
        path.display()
    );
    Ok(Documented { families, prefixes })
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':'
}

/// The documented metric families, and the documented families by prefix (`process_*`).
#[derive(Debug, Clone)]
pub struct Documented {
    pub families: BTreeSet<String>,
    pub prefixes: BTreeSet<String>,
}

impl Documented {
    /// Whether a series name belongs to a documented family: its own name, or a histogram's
    /// (or summary's) `_bucket`, `_sum` and `_count` series of a documented family.
    pub fn covers(&self, series: &str) -> bool {
        if self.families.contains(series) || self.prefixes.iter().any(|p| series.starts_with(p)) {
            return true;
        }
        ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            series
                .strip_suffix(suffix)
                .is_some_and(|family| self.families.contains(family))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skip_functions_keywords_labels_and_strings() {
        let names = metric_names(
            r#"histogram_quantile(0.99, sum by (le, link) (rate(herald_link_submit_rtt_seconds_bucket{link=~"up|rate", cluster="sum"}[5m])))
               / on (link) group_left max without (instance) (herald_link_up offset 5m)
               or label_replace(vector(1), "dst", "herald_not_a_metric", "src", ".*")
               unless {__name__="herald_node_draining"}"#,
        )
        .expect("parses");
        let expected: BTreeSet<String> = [
            "herald_link_submit_rtt_seconds_bucket",
            "herald_link_up",
            "herald_node_draining",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_broken_expression_is_an_error() {
        assert!(metric_names("sum by (le (rate(x[5m]))").is_err());
    }

    #[test]
    fn histogram_series_map_to_their_family() {
        let doc = Documented {
            families: ["herald_submit_duration_seconds".to_string()].into(),
            prefixes: ["process_".to_string()].into(),
        };
        assert!(doc.covers("herald_submit_duration_seconds_bucket"));
        assert!(doc.covers("herald_submit_duration_seconds_count"));
        assert!(doc.covers("process_cpu_seconds_total"));
        assert!(!doc.covers("herald_submit_duration_second_bucket"));
        assert!(!doc.covers("herald_queue_messages"));
    }

    #[test]
    fn variables_are_substituted_as_grafana_does() {
        let v = Variables {
            cluster: "dev".into(),
            link: ".*".into(),
            rate_interval: "30s".into(),
        };
        assert_eq!(
            v.substitute(r#"rate(x{cluster=~"$cluster",link=~"${link}"}[$__rate_interval])"#),
            r#"rate(x{cluster=~"dev",link=~".*"}[30s])"#
        );
    }
}
