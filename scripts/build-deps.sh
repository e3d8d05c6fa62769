#!/usr/bin/env bash
# Install the system parts the build needs, if they are missing: cmake and nasm (the `turbojpeg`
# crate builds a static libjpeg-turbo 3.x from source, with its SIMD code) and SQLite's library
# (the engine links the system's SQLite, 3.34.1 or newer: compiling the bundled one cost more than
# a minute of a first `make run`). Debian/Ubuntu only (apt-get); elsewhere it says what to install
# (macOS has SQLite already). Idempotent and quiet when done.
set -euo pipefail

missing=()
for tool in cmake nasm; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if command -v dpkg-query >/dev/null 2>&1 &&
  ! dpkg-query -W -f='${Status}' libsqlite3-dev 2>/dev/null | grep -q 'install ok installed'; then
  missing+=(libsqlite3-dev)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "build-deps.sh: please install ${missing[*]} (needed to build libjpeg-turbo and link SQLite)" >&2
  exit 1
fi
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
echo "build-deps.sh: installing ${missing[*]} with apt-get" >&2
log=$(mktemp)
if ! { "${sudo[@]}" apt-get update -q && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "build-deps.sh: apt-get failed (full log: $log); install ${missing[*]} yourself" >&2
  exit 1
fi
rm -f "$log"
