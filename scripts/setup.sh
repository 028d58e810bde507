#!/usr/bin/env bash
# One-time setup on a fresh machine: the Vulkan driver where no GPU driver exists (Linux),
# the npm packages, and the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
