#!/usr/bin/env bash
# Runs pytest; "no tests collected" (exit 5) is a failure too, with a clear
# message, so CI can never pass by running nothing.
set -uo pipefail
py="$1"; shift
"$py" -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$rc"
