#!/usr/bin/env bash
# Install what the web page's browser test drives, if it is missing: Debian's headless-capable
# Chromium and its WebDriver server (chromium-driver). Debian/Ubuntu only (apt-get); elsewhere it
# says what to install. Idempotent and quiet when done. `make test` calls it and then requires the
# browser (BROWSER_REQUIRED=1), so a machine without it fails loudly instead of skipping the test.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
missing=()
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)
# Fonts: without any, Chromium renders the page's text as boxes in the screenshot.
[[ $(fc-list 2>/dev/null | wc -l) -gt 0 ]] || missing+=(fonts-dejavu-core)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! have apt-get; then
  echo "browser-deps.sh: please install ${missing[*]} (Chromium and chromedriver for the page's browser test)" >&2
  exit 1
fi
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
echo "browser-deps.sh: installing ${missing[*]} with apt-get" >&2
log=$(mktemp)
if ! { "${sudo[@]}" apt-get update -q && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "browser-deps.sh: apt-get failed (full log: $log); install ${missing[*]} yourself" >&2
  exit 1
fi
rm -f "$log"
