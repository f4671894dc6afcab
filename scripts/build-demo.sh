#!/usr/bin/env bash
# Assembles the web demo into web-demo/dist: the app (web-demo/src) and the
# npm package built by scripts/build-wasm.sh (copied under pkg/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f bindings-wasm/pkg/index.js ] || scripts/build-wasm.sh
rm -rf web-demo/dist.tmp
mkdir -p web-demo/dist.tmp
cp -R web-demo/src/. web-demo/dist.tmp/
cp -R bindings-wasm/pkg web-demo/dist.tmp/pkg
# The service worker caches every file of the shell; the list is made here,
# from what was assembled, so a file added to the package cannot be missed.
(cd web-demo/dist.tmp && find . -type f ! -name sw.js ! -name shell.js ! -name '*.d.ts' ! -name '*.md' ! -name package.json \
  | sed 's|^\./||' | LC_ALL=C sort | awk 'BEGIN { printf "self.SHELL = [\"./\"" } { printf ", \"%s\"", $0 } END { print "];" }') \
  > web-demo/dist.tmp/shell.js
rm -rf web-demo/dist
mv web-demo/dist.tmp web-demo/dist
