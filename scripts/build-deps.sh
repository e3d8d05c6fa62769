#!/usr/bin/env bash
# Install the system tools the image decoder's build needs, if they are missing: cmake and nasm
# (the `turbojpeg` crate builds a static libjpeg-turbo 3.x from source, with its SIMD code).
# Debian/Ubuntu only (apt-get); elsewhere it says what to install. Idempotent and quiet when done.
set -euo pipefail

missing=()
for tool in cmake nasm; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "build-deps.sh: please install ${missing[*]} (needed to build libjpeg-turbo)" >&2
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
