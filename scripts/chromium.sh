#!/usr/bin/env bash
# Ensures Debian's Chromium and its WebDriver are installed system-wide, for the
# browser tests (Playwright with executablePath, wasm-bindgen-test-runner with
# CHROMEDRIVER). Nothing here can download its own browser, so apt is the route.
#
# OUTPUT: prints the browser path (/usr/bin/chromium) on stdout, one line. The driver
# is /usr/bin/chromedriver. Progress goes to stderr; when both binaries are already
# there, the script only checks for them and prints nothing else.
# Needs root (or passwordless sudo) the first time: apt-get install.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver

if [[ -x "$CHROMIUM" && -x "$DRIVER" ]]; then
  echo "$CHROMIUM"
  exit 0
fi

log() { printf 'chromium: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v apt-get >/dev/null 2>&1 || die "no apt-get: install chromium and chromedriver by hand"
SUDO=()
if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo"
  SUDO=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
LOG="$(mktemp -t chromium-apt.XXXXXX)"
trap 'rm -f "$LOG"' EXIT

candidate() {
  apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{ if ($2 != "(none)") print $2; exit }'
}
APT_UPDATED=0
apt_update() {
  APT_UPDATED=1
  log "apt-get update"
  "${SUDO[@]}" apt-get update -q </dev/null >>"$LOG" 2>&1 || { cat "$LOG" >&2; die "apt-get update failed"; }
}
apt_install() {
  log "apt-get install chromium chromium-driver"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    chromium chromium-driver </dev/null >>"$LOG" 2>&1
}

if [[ -z "$(candidate chromium)" || -z "$(candidate chromium-driver)" ]]; then
  apt_update
fi
if ! apt_install; then
  # Stale lists name versions the mirror no longer has (Chromium's security updates
  # replace each other often): refresh once and retry.
  [[ $APT_UPDATED == 1 ]] && { cat "$LOG" >&2; die "apt-get install failed"; }
  apt_update
  apt_install || { cat "$LOG" >&2; die "apt-get install failed"; }
fi

[[ -x "$CHROMIUM" && -x "$DRIVER" ]] || die "installed, but $CHROMIUM or $DRIVER is missing"
log "ready: $("$CHROMIUM" --version 2>/dev/null || echo chromium), $("$DRIVER" --version 2>/dev/null | head -n1)"
echo "$CHROMIUM"
