#!/usr/bin/env bash
# The browser test drives Debian's Chromium (browser downloads are impossible here); install it when missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Chromium is missing: run 'sudo apt-get install -y chromium' (the browser test needs it)." >&2
  exit 1
fi
echo "Installing Debian's chromium for the browser test..." >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
