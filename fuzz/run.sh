#!/usr/bin/env bash
# Runs every fuzz target (or the ones named after SECONDS) for SECONDS
# (default 600) each, from the seed corpus, prints executions and execs/s per
# target, and fails (exit 1) naming the target and the crash file when one
# crashes (or cannot be built or run).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain is made to
# accept the sanitizer flags with RUSTC_BOOTSTRAP=1. FUZZ_FLAGS are passed
# to `cargo fuzz run` (e.g. FUZZ_FLAGS=-O: no debug assertions, faster, and
# a separate build).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
cargo run -q --release --example fuzz_seeds
shift || true
targets=("$@")
[ ${#targets[@]} -ne 0 ] || targets=(gist_decode nslp_decode session_auth_decode early_verify node_core)
failed=()
for t in "${targets[@]}"; do
  mkdir -p fuzz/corpus/$t fuzz/artifacts/$t
  log=fuzz/artifacts/$t/last-run.log
  echo "== $t for ${secs}s"
  status=0
  RUSTC_BOOTSTRAP=1 cargo fuzz run ${FUZZ_FLAGS:-} --fuzz-dir fuzz "$t" fuzz/corpus/$t fuzz/seeds/$t -- \
    -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "stat::number_of_executed_units|stat::peak_rss|SUMMARY|panicked" "$log" || true
  execs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -1 || true)
  echo "$t: ${execs:-?} executions in ${secs}s ($(( ${execs:-0} / (secs > 0 ? secs : 1) )) execs/s)"
  if [ "$status" -ne 0 ]; then
    crash=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | cut -d' ' -f5 || true)
    echo "!! $t crashed (exit $status); crash file: ${crash:-none written, see $log}" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz targets that crashed: ${failed[*]} (reproduce: cargo fuzz run --fuzz-dir fuzz <target> <crash file>)" >&2
  exit 1
fi
echo "no crash"
