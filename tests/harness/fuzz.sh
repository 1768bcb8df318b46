#!/usr/bin/env bash
# Fuzzes the relation parsers and the render path with cargo fuzz (libFuzzer + AddressSanitizer).
#
#   fuzz.sh [SECONDS]    run every target for SECONDS each (default 30: the CI smoke run)
#
# Installs the pinned nightly toolchain and cargo-fuzz when missing. The corpus grows in
# fuzz/corpus/<target> (ignored by git), next to the committed seeds in fuzz/seeds/<target>.
# A crash stops the run, leaves the input in fuzz/artifacts/<target>/ and fails the script;
# replay it with `cargo +$FUZZ_TOOLCHAIN fuzz run <target> <file>`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"

seconds="${1:-30}"
toolchain="${FUZZ_TOOLCHAIN:-nightly-2026-10-30}"
cargo_fuzz_version=0.13.2
target_dir="${FUZZ_TARGET_DIR:-$root/fuzz/target}"

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  log "installing Rust $toolchain (cargo fuzz needs nightly for its sanitizer flags)"
  rustup toolchain install "$toolchain" --profile minimal >/dev/null
fi
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  log "installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" --quiet
fi

cd "$root/fuzz"
targets=$(cargo +"$toolchain" fuzz list --fuzz-dir .)
log "building fuzz targets: $(echo "$targets" | tr '\n' ' ')"
cargo +"$toolchain" fuzz build --fuzz-dir . -O --target-dir "$target_dir" 2>&1 | grep -v '^\s*Compiling' || true
for t in $targets; do
  mkdir -p "corpus/$t" "seeds/$t"
  log "fuzzing $t for ${seconds}s"
  # -rss_limit_mb: a parser that balloons on a small input is a bug too.
  out="$target_dir/fuzz-$t.log"
  status=0
  cargo +"$toolchain" fuzz run --fuzz-dir . -O --target-dir "$target_dir" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=16384 -print_final_stats=1 >"$out" 2>&1 || status=$?
  if [[ $status != 0 ]]; then
    tail -n 60 "$out" >&2
    die "fuzz target $t failed; the input is in fuzz/artifacts/$t/"
  fi
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$out" || true
done
log "fuzzing: no target crashed"
