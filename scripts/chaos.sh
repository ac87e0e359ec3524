#!/usr/bin/env bash
# The chaos soak (not in CI): CHAOS_RESTARTS (default 50) kill -9 restarts of the release
# binary against the wire mock with a moving reference, then a final SIGTERM. Checks: every
# venue trade stored once, position equal to the venue's, no venue order the database never
# knew (nor one marked rejected while the venue had it), at most the budget in any one-second
# window as the venue counted it, nothing left open. Prints the figures kept in RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHAOS_RESTARTS="${CHAOS_RESTARTS:-50}"
cargo test --release --test chaos_process soak_kill_9_restarts -- --ignored --nocapture 2>&1 \
  | grep -E "^soak:|test result|panicked|assert" || true
