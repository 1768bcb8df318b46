# The two commands in the README. Both work on a fresh machine: they build the control plane
# from pinned Go modules on first use (about 11 minutes on 2 cores) and reuse it afterwards.
.PHONY: demo demo-down test unit fuzz crd

demo: ## local control plane, operator, example Penpot reaching Ready
	tests/harness/demo.sh up

demo-down:
	tests/harness/demo.sh down

test: ## fmt, clippy, a 30 s fuzz smoke run, unit tests and the e2e suite
	tests/harness/test.sh

unit: ## unit tests only; e2e tests report that they were skipped
	cargo test

fuzz: ## every fuzz target for FUZZ_SECONDS seconds (default 600)
	tests/harness/fuzz.sh $(or $(FUZZ_SECONDS),600)

crd: ## regenerate crds/penpot.yaml, the chart's copy and deploy/manifests
	cargo run --quiet -- crd > crds/penpot.yaml
	tests/harness/gen-manifests.sh
