#!/usr/bin/env bash
# Assembles the web demo into web-demo/dist: the page, its stylesheet and
# service worker, the app bundled with CodeMirror by esbuild
# (web-demo/build.mjs), and the npm package built by scripts/build-wasm.sh
# (copied under pkg/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f bindings-wasm/pkg/index.js ] || scripts/build-wasm.sh
if ! [ -f web-demo/node_modules/.installed ] || [ web-demo/package-lock.json -nt web-demo/node_modules/.installed ]; then
  (cd web-demo && npm ci --no-audit --no-fund --loglevel=error)
  touch web-demo/node_modules/.installed
fi
rm -rf web-demo/dist.tmp
mkdir -p web-demo/dist.tmp
cp web-demo/src/index.html web-demo/src/style.css web-demo/src/sw.js web-demo/dist.tmp/
node web-demo/build.mjs web-demo/dist.tmp
cp -R bindings-wasm/pkg web-demo/dist.tmp/pkg
# The service worker caches every file of the shell; the list is made here,
# from what was assembled, so a file added to the package cannot be missed.
(cd web-demo/dist.tmp && find . -type f ! -name sw.js ! -name shell.js ! -name '*.d.ts' ! -name '*.md' ! -name '*.map' ! -name package.json \
  | sed 's|^\./||' | LC_ALL=C sort | awk 'BEGIN { printf "self.SHELL = [\"./\"" } { printf ", \"%s\"", $0 } END { print "];" }') \
  > web-demo/dist.tmp/shell.js
rm -rf web-demo/dist
mv web-demo/dist.tmp web-demo/dist
