//! The PrometheusRule the operator renders, checked by Prometheus's own `promtool check rules`
//! with every lint fatal: its expressions must parse, its `for` durations and label and
//! annotation templates must be valid, and no rule may be a duplicate. Two more runs show the
//! check can fail: a broken expression and a duplicated rule must both be rejected.
//!
//! promtool is built from its pinned module by tests/harness/build.sh into
//! `$PENPOT_E2E_BIN` (as in tests/harness/lib.sh). Skipped with a note when it is missing,
//! unless PENPOT_E2E_REQUIRED=1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use penpot_operator::crd::{Penpot, PenpotSpec};
use penpot_operator::render::monitoring::prometheus_rule;
use penpot_operator::render::version::Version;
use penpot_operator::render::{meta, penpot_version};
use serde_json::Value;

/// An environment variable the way the harness reads it (`${VAR:-default}`: empty is unset).
fn env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `$PENPOT_E2E_BIN/promtool`, with tests/harness/lib.sh's defaults; `None` (after a note)
/// when it is not built, and a failure instead when PENPOT_E2E_REQUIRED=1.
fn promtool() -> Option<PathBuf> {
    let bin = env("PENPOT_E2E_BIN").unwrap_or_else(|| {
        let cache = env("PENPOT_E2E_CACHE").unwrap_or_else(|| {
            let xdg = env("XDG_CACHE_HOME")
                .unwrap_or_else(|| env("HOME").expect("HOME or XDG_CACHE_HOME is set").join(".cache"));
            xdg.join("penpot-operator-e2e")
        });
        cache.join("bin")
    });
    let promtool = bin.join("promtool");
    if promtool.is_file() {
        return Some(promtool);
    }
    assert!(
        std::env::var("PENPOT_E2E_REQUIRED").as_deref() != Ok("1"),
        "PENPOT_E2E_REQUIRED=1 but {} is missing: run tests/harness/build.sh",
        promtool.display()
    );
    eprintln!("skipped: {} is missing (tests/harness/build.sh builds it)", promtool.display());
    None
}

/// The rendered PrometheusRule's `.spec` (a rule file: `groups:`) for a Penpot at `version`.
fn rule_spec(version: Version) -> Value {
    let spec = PenpotSpec {
        public_uri: Some("https://penpot.local/".into()),
        replicas: 1,
        version: Some(version.to_string()),
        ..Default::default()
    };
    let mut penpot = Penpot::new("penpot", spec);
    penpot.metadata.namespace = Some("test".into());
    let version = penpot_version(&penpot);
    let version_str = version.to_string();
    let rule = prometheus_rule(&meta(&penpot, &version_str), version, &BTreeMap::new());
    assert_eq!(rule.types.as_ref().map(|t| t.kind.as_str()), Some("PrometheusRule"));
    let spec = rule.data["spec"].clone();
    assert!(spec["groups"].is_array(), "the PrometheusRule's spec has no groups: {spec}");
    spec
}

fn rule_count(spec: &Value) -> usize {
    spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["rules"].as_array().expect("every group has rules").len())
        .sum()
}

fn write_rules(dir: &Path, name: &str, spec: &Value) -> PathBuf {
    let path = dir.join(name);
    let yaml = serde_saphyr::to_string(spec).expect("the rule spec serialises to YAML");
    let back: Value = serde_saphyr::from_str(&yaml).expect("the rule file reads back");
    assert_eq!(&back, spec, "the rule file is not the rendered spec:\n{yaml}");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `promtool check rules --lint=all --lint-fatal FILE` (lint findings exit 3).
fn check_rules(promtool: &Path, file: &Path) -> Output {
    Command::new(promtool)
        .args(["check", "rules", "--lint=all", "--lint-fatal"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()))
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn rendered_rules_pass_promtool_with_every_lint() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Both RPC metric names: before and after Penpot 2.15.2 renamed the histogram.
    for version in [Version::new(2, 15, 1), Version::CURRENT] {
        let spec = rule_spec(version);
        let rules = rule_count(&spec);
        assert!(rules > 0, "no rules rendered for {version}");
        let file = write_rules(dir.path(), &format!("penpot-{version}.yaml"), &spec);
        let out = check_rules(&promtool, &file);
        let report = describe(&out);
        eprintln!("promtool check rules on the rules rendered for {version}: {report}");
        assert!(out.status.success(), "promtool rejects the rules rendered for {version}: {report}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("SUCCESS: {rules} rules found")),
            "promtool did not find the {rules} rendered rules for {version}: {report}"
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("FAILED"), "{report}");
    }
}

#[test]
fn promtool_rejects_a_broken_expression() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut spec = rule_spec(Version::CURRENT);
    let rule = &mut spec["groups"][0]["rules"][0];
    let alert = rule["alert"].as_str().unwrap().to_string();
    rule["expr"] = "rate(".into();
    let file = write_rules(dir.path(), "broken.yaml", &spec);
    let out = check_rules(&promtool, &file);
    let report = describe(&out);
    assert!(!out.status.success(), "promtool accepted `rate(`: {report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not parse expression"), "{report}");
    assert!(stderr.contains("unclosed left parenthesis"), "{report}");
    assert!(stderr.contains(&format!("{alert:?}")), "the error does not name {alert}: {report}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SUCCESS"), "{report}");
}

#[test]
fn promtool_lint_rejects_a_duplicate_rule() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut spec = rule_spec(Version::CURRENT);
    let rules = spec["groups"][0]["rules"].as_array_mut().unwrap();
    let first = rules[0].clone();
    let alert = first["alert"].as_str().unwrap().to_string();
    rules.push(first);
    let file = write_rules(dir.path(), "duplicate.yaml", &spec);
    let out = check_rules(&promtool, &file);
    let report = describe(&out);
    assert_eq!(out.status.code(), Some(3), "lint findings exit 3 with --lint-fatal: {report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("duplicate rule"), "{report}");
    assert!(stderr.contains(&format!("Metric: {alert}")), "the finding does not name {alert}: {report}");
}
