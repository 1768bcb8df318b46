//! `penpot-operator render` on arbitrary text: YAML parsing, the CRD schema check, relation
//! parsing, the render and the status. No input may panic; whatever renders must read back as
//! the YAML stream it claims to be.

#![no_main]

use libfuzzer_sys::fuzz_target;
use penpot_operator::cli::render::{Assume, render_with};
use serde_json::Value;

fuzz_target!(|text: &str| {
    let inputs = [("fuzz.yaml".to_string(), text.to_string())];
    let assume = Assume { prometheus_operator: true, ..Assume::default() };
    let Ok(out) = render_with(&inputs, &assume, || "k".repeat(64)) else { return };
    let docs: Vec<Value> = serde_saphyr::from_multiple(&out).expect("render output is a YAML stream");
    let last = docs.last().expect("render prints at least the Penpot");
    assert_eq!(last["kind"], "Penpot", "the Penpot with its status comes last");
});
