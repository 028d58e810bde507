#!/usr/bin/env bash
# Prepares a machine to run foliar from a copy of this checkout and prints the environment to eval.
# - A machine with Node and node_modules (after `npm ci` / `npm run setup`): nothing to do.
# - A bare, offline GPU machine (the workplace's `device` tool: NVIDIA, Vulkan driver present, no
#   Node, no registry): everything travels in ignored folders that the `run` call names in `carry`:
#     .gl/       Debian's libvulkan1 & co (.deb), unpacked into / (the Vulkan loader Dawn dlopens)
#     .devpkg/   node.xz (a Node binary), nm.tar.xz + tf.tar.xz (node_modules without
#                typescript/playwright/other platforms), golden.tar.xz (../shared/golden)
#   scripts/gpu/pack.sh makes them. Idempotent: a warm machine skips what is done.
set -u
cd "$(dirname "$0")/../.."
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else python3 -c "import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)" "$1"; fi; }
if [ -d .devpkg ]; then
  if ! ldconfig -p | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  if ! command -v node >/dev/null; then
    mkdir -p /opt/foliar-node/bin
    [ -x /opt/foliar-node/bin/node ] || { unxz .devpkg/node.xz > /opt/foliar-node/bin/node && chmod +x /opt/foliar-node/bin/node; }
    echo "export PATH=/opt/foliar-node/bin:\$PATH"
  fi
  if [ ! -d node_modules/webgpu ]; then unxz .devpkg/nm.tar.xz | tar -xf - && unxz .devpkg/tf.tar.xz | tar -xf -; fi
  # workspace packages added after nm.tar.xz was packed still need their node_modules/@foliar link
  mkdir -p node_modules/@foliar
  for p in packages/*/; do p=${p%/}; [ -e "node_modules/@foliar/${p#packages/}" ] || ln -s "../../$p" "node_modules/@foliar/${p#packages/}"; done
  if [ ! -d ../shared/golden ] && [ ! -d shared/golden ]; then unxz .devpkg/golden.tar.xz | tar -xf -; fi
elif [ ! -d node_modules/webgpu ]; then
  npm ci >&2 || { echo "echo 'scripts/gpu/setup.sh: npm ci failed' >&2; exit 1"; exit 0; }
fi
shared=$( [ -d shared/golden ] && echo "$PWD/shared" || echo "${FOLIAR_SHARED:-$(cd .. && pwd)/shared}")
echo "export FOLIAR_SHARED=$shared XDG_RUNTIME_DIR=\${XDG_RUNTIME_DIR:-/tmp}"
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
  echo "export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"
fi
