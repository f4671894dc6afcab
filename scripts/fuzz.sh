#!/usr/bin/env bash
# Runs every cargo-fuzz target for $1 seconds each (default 60).
# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP lets the stable
# toolchain accept them, so no second toolchain has to be downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
for target in decode_frame replica_frames updates; do
  mkdir -p "fuzz/corpus/$target"
  # Seed the corpus with known crashers and the target's own seeds (the
  # updates target's: map ops racing removes, in its input format).
  cp core/tests/fuzz-crashers/* "fuzz/corpus/$target/" 2>/dev/null || true
  cp fuzz/seeds/"$target"/* "fuzz/corpus/$target/" 2>/dev/null || true
  (cd fuzz && cargo fuzz run "$target" -- -max_total_time="$secs" -max_len=4096)
done
