#!/usr/bin/env bash
# One-time setup on a fresh machine: the Vulkan driver where no GPU driver exists (Linux), Chromium
# for the browser check of the study's report.html (Debian-like Linux), the npm packages, and the
# TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh

# Headless Chromium opens report.html in test/study/report-html.test.ts. playwright-core drives the
# distribution's package and never downloads a browser; a failed install only warns here (the test
# then skips, or fails with a clear message where CI / FOLIAR_REQUIRE_BROWSER=1 require it).
install_chromium() {
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to install chromium" >&2; return 1; }
    sudo="sudo"
  fi
  echo "setup: installing chromium (headless browser for the report test) ..."
  $sudo apt-get update -qq && \
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}
if [ "$(uname -s)" = "Linux" ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  install_chromium || echo "setup: warning: chromium could not be installed; the report.html browser check will not run" >&2
fi
# redis-server for the study's job-queue tests (test/queue: each starts its own on a loopback port);
# like Chromium, a failed install only warns (the tests fail where FOLIAR_REQUIRE_REDIS=1, as in CI).
install_redis() {
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to install redis-server" >&2; return 1; }
    sudo="sudo"
  fi
  echo "setup: installing redis-server (the study's job-queue tests) ..."
  $sudo apt-get update -qq && \
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}
if [ "$(uname -s)" = "Linux" ] && ! command -v redis-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  install_redis || echo "setup: warning: redis-server could not be installed; the queue tests will not run" >&2
fi
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
