#!/usr/bin/env bash
# Fuzzes every parser of outside input with cargo-fuzz (libFuzzer), SECONDS_PER_TARGET each
# (default 120), starting from the seeds in fuzz/seeds/. Not part of CI: CI runs the same
# harnesses under proptest (tests/fuzz_parsers.rs). Needs cargo-fuzz; on a stable toolchain the
# nightly flags it passes are allowed with RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
secs="${SECONDS_PER_TARGET:-120}"
targets=(binance_frames deltadefi_rest deltadefi_stream cbor_transaction operation_key config)
cargo fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  echo "== $t (${secs}s)"
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::new_units_added|Done|SUMMARY|ERROR|crash-" || true
done
found=$(find artifacts -type f 2>/dev/null | wc -l)
if [ "$found" -gt 0 ]; then echo "$found crashes found: see fuzz/artifacts"; exit 1; else echo "no crashes"; fi
