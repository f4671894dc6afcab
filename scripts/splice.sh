#!/usr/bin/env bash
# splice.sh FILE NAME PART: replaces the text between
# "<!-- NAME:start -->" and "<!-- NAME:end -->" in FILE with PART's content
# (appending the markers and PART if FILE has none yet).
set -euo pipefail
file=$1 name=$2 part=$3
start="<!-- $name:start -->" end="<!-- $name:end -->"
if ! grep -qF "$start" "$file"; then
  printf '\n%s\n%s\n' "$start" "$end" >> "$file"
fi
awk -v s="$start" -v e="$end" -v p="$part" '
  $0 == s { print; while ((getline line < p) > 0) print line; skip = 1; next }
  $0 == e { skip = 0 }
  !skip { print }
' "$file" > "$file.tmp"
mv "$file.tmp" "$file"
