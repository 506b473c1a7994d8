#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian/Ubuntu machine with Python 3.11:
# Chromium for the browser test (Debian's package; Playwright's own download is never used), then the
# app's and the tests' Python packages. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
python -m pip install -q -r requirements.txt -r requirements-test.txt
