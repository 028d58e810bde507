#!/usr/bin/env bash
# Makes .devpkg/ (ignored) for scripts/gpu/setup.sh: this machine's Node, the node_modules a run
# needs (Linux x64 only, no typescript/playwright), tfjs's Node bundles, ../shared/golden; and .gl/
# (Debian's Vulkan loader). About 55 MB compressed: under the device tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .devpkg .gl
grep -qx '/.devpkg/' .git/info/exclude 2>/dev/null || echo '/.devpkg/' >> .git/info/exclude
[ -f .devpkg/node.xz ] || xz -9 -T2 -c "$(command -v node)" > .devpkg/node.xz
tar -cf - --exclude=node_modules/typescript --exclude=node_modules/playwright-core --exclude=node_modules/@types \
  --exclude='node_modules/webgpu/dist/darwin-universal' --exclude='node_modules/webgpu/dist/linux-arm64' \
  --exclude='node_modules/webgpu/dist/win32-*' --exclude='node_modules/@tensorflow' --exclude='*.map' --exclude='*.d.ts' \
  node_modules | xz -9 -T2 > .devpkg/nm.tar.xz
tar -cf - node_modules/@tensorflow/*/package.json node_modules/@tensorflow/tfjs-core/dist/tf-core.node.js \
  node_modules/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.node.js \
  node_modules/@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.node.js \
  node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.node.js node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm \
  | xz -9 -T2 > .devpkg/tf.tar.xz
(cd .. && tar -cf - shared/golden) | xz -9 -T2 > .devpkg/golden.tar.xz
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
mkdir -p /tmp/amd64/partial
ls .gl/libvulkan1_*.deb >/dev/null 2>&1 || { apt-get $o update >/dev/null; (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2); }
du -ch .devpkg/* .gl/* | tail -1
