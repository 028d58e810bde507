#!/usr/bin/env bash
# One-time setup on a fresh machine: the Vulkan driver where no GPU driver exists (Linux), Chromium
# for the browser check of the study's report.html (Debian-like Linux), the npm packages, and the
# TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh

# Debian packages the tests need, installed with apt-get where it exists; a failed install only warns
# here (the tests then skip, or fail with a clear message where CI's FOLIAR_REQUIRE_* variables require them).
#   chromium: opens report.html in test/study/report-html.test.ts (playwright-core drives the
#             distribution's package and never downloads a browser)
#   redis-server: the study's job-queue tests (test/queue: each starts its own on a loopback port)
apt_install() { # <package> <what it is for>
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to install $1" >&2; return 1; }
    sudo="sudo"
  fi
  echo "setup: installing $1 ($2) ..."
  $sudo apt-get update -qq && \
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}
if [ "$(uname -s)" = "Linux" ] && command -v apt-get >/dev/null 2>&1; then
  if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium "headless browser for the report test" || echo "setup: warning: chromium could not be installed; the report.html browser check will not run" >&2
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server "the study's job-queue tests" || echo "setup: warning: redis-server could not be installed; the queue tests will not run" >&2
  fi
fi
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
