#!/usr/bin/env bash
# Make a headless Chromium available for the docs checks (tests/test_docs.py).
# Prints the browser's path on stdout and exits 0; exits 1 with a one-line reason on stderr if it cannot.
set -euo pipefail
find_browser() {
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
  done
  return 1
}
if find_browser; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: no chromium on PATH and no apt-get to install it" >&2; exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"
  else echo "ensure_chromium: no chromium on PATH and not root (no passwordless sudo) to apt-get install it" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
{ $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; } >&2 \
  || { echo "ensure_chromium: 'apt-get install chromium' failed" >&2; exit 1; }
find_browser || { echo "ensure_chromium: chromium installed but not found on PATH" >&2; exit 1; }
