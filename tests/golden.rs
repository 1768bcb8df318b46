//! Golden files: what `penpot-operator render` prints for the shipped examples, byte for byte.
//! A change to the render shows up as a diff of these files in review. After a deliberate
//! change, regenerate them with `UPDATE_GOLDEN=1 cargo test --test golden` and read the diff.

use std::path::PathBuf;

use penpot_operator::cli::render::{Assume, render_with};

/// A fixed secret key, so the output does not change between runs.
const KEY: &str = "golden-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz";

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn check(example: &str, prometheus_operator: bool, golden: &str) {
    let input = std::fs::read_to_string(path(example)).unwrap_or_else(|e| panic!("{example}: {e}"));
    let assume = Assume { prometheus_operator, ..Assume::default() };
    let out = render_with(&[(example.to_string(), input)], &assume, || KEY.to_string())
        .unwrap_or_else(|e| panic!("{example} does not render: {e}"));
    let golden_path = path(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &out).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden_path).unwrap_or_default();
    if out != want {
        let line = out
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(out.lines().count().min(want.lines().count()));
        panic!(
            "`render` of {example} differs from {golden} from line {}:\n  now:    {:?}\n  golden: {:?}\nIf the change is meant, run UPDATE_GOLDEN=1 cargo test --test golden and review the diff.",
            line + 1,
            out.lines().nth(line).unwrap_or("<end>"),
            want.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

#[test]
fn docs_example() {
    check("docs/examples/penpot.yaml", false, "tests/golden/docs-example.yaml");
}

#[test]
fn docs_example_with_the_prometheus_operator() {
    check("docs/examples/penpot.yaml", true, "tests/golden/docs-example-prometheus.yaml");
}

#[test]
fn kustomize_example() {
    check("deploy/examples/penpot/penpot.yaml", false, "tests/golden/kustomize-example.yaml");
}
