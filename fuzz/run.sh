#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, from the seed corpus.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain is made to
# accept the sanitizer flags with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
cargo run -q --example fuzz_seeds
for t in gist_decode nslp_decode session_auth_decode early_verify; do
  mkdir -p fuzz/corpus/$t
  echo "== $t for ${secs}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz "$t" fuzz/corpus/$t fuzz/seeds/$t -- \
    -max_total_time="$secs" -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|stat::peak_rss|Done|SUMMARY|panicked|ERROR" || true
done
