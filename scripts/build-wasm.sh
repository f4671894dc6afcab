#!/usr/bin/env bash
# Builds the npm package `minidote` into bindings-wasm/pkg:
#   1. wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock,
#      installed once into the cache (with the host toolchain);
#   2. a wasm32 toolchain (scripts/wasm-toolchain.sh: rustup's target, or
#      Debian's rustc-web with -Zbuild-std);
#   3. `cargo build --profile wasm` of minidote-wasm (own target dir);
#   4. wasm-bindgen --target web, then the JS wrapper, declarations,
#      package.json and README from bindings-wasm/js;
# No wasm-opt: binaryen's -Oz makes this module smaller but compress worse
# (BENCHMARKS.md, "Bundle size"); the name section is dropped instead.
# Prints the .wasm size, raw and gzipped. A second run takes seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
CACHE="${MINIDOTE_CACHE:-$HOME/.cache/minidote}"
mkdir -p "$CACHE/bin"
log() { printf 'build-wasm: %s\n' "$*" >&2; }

WB_VERSION=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$WB_VERSION" ] || { log "no wasm-bindgen in Cargo.lock"; exit 1; }
WB="$CACHE/bin/wasm-bindgen"
if ! [ -x "$WB" ] || [ "$("$WB" --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ]; then
  log "installing wasm-bindgen-cli $WB_VERSION into $CACHE (once; a few minutes)"
  # No --locked: the registry mirror lacks one of its pinned dependencies.
  cargo install --quiet --force --root "$CACHE" wasm-bindgen-cli --version "=$WB_VERSION" </dev/null >&2
fi

ENV_FILE=$(scripts/wasm-toolchain.sh </dev/null)
# shellcheck disable=SC1090
. "$ENV_FILE"
export CARGO_TARGET_DIR="$ROOT/target/wasm"
# shellcheck disable=SC2086
cargo build --quiet --profile wasm --target wasm32-unknown-unknown $MINIDOTE_WASM_BUILD_STD -p minidote-wasm </dev/null
RAW="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/minidote_wasm.wasm"

PKG="$ROOT/bindings-wasm/pkg"
rm -rf "$PKG.tmp"
mkdir -p "$PKG.tmp/wasm"
# MINIDOTE_WASM_NAMES=1 keeps function names, for profiles
# (bindings-wasm/bench/b4-profile.mjs).
NAMES="--remove-name-section"
[ "${MINIDOTE_WASM_NAMES:-}" = 1 ] && NAMES=""
"$WB" --target web $NAMES --remove-producers-section --out-dir "$PKG.tmp/wasm" --out-name minidote_wasm "$RAW"
WASM="$PKG.tmp/wasm/minidote_wasm_bg.wasm"
cp bindings-wasm/js/index.js bindings-wasm/js/codec.js bindings-wasm/js/index.d.ts bindings-wasm/js/package.json \
   bindings-wasm/js/codemirror.js bindings-wasm/js/codemirror.d.ts \
   bindings-wasm/js/README.md "$PKG.tmp/"
rm -rf "$PKG"
mv "$PKG.tmp" "$PKG"
size=$(stat -c %s "$PKG/wasm/minidote_wasm_bg.wasm")
gz=$(gzip -9 -c "$PKG/wasm/minidote_wasm_bg.wasm" | wc -c)
log "bindings-wasm/pkg: minidote_wasm_bg.wasm $size bytes, $gz bytes gzipped (route: $MINIDOTE_WASM_ROUTE)"
