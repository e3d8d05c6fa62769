#!/usr/bin/env bash
# Builds with cargo and prints the path of the executable it built, wherever cargo put it
# (CARGO_TARGET_DIR, build.target-dir in a cargo config, or ./target), as cargo itself reports it.
#   scripts/cargo-exe.sh --locked --profile local -p local --bin uploader   # prints .../local/uploader
# The arguments are cargo build's. With several binaries, the last one cargo reports is printed (they
# share a folder). Diagnostics go to stderr as usual.
set -euo pipefail
exe=$("${CARGO:-cargo}" build "$@" --message-format=json-render-diagnostics |
  sed -n 's/^{"reason":"compiler-artifact".*"executable":"\([^"]*\)".*$/\1/p' | tail -n 1)
[[ -n $exe ]] || { echo "cargo-exe.sh: cargo build $* reported no executable" >&2; exit 1; }
printf '%s\n' "$exe"
