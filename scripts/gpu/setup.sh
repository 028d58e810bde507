#!/usr/bin/env bash
# Prepares a bare, offline GPU machine (the workplace's `device` tool: NVIDIA, Vulkan driver present,
# no Node, no registry) to run foliar from a copy of this checkout. Everything it needs travels in
# ignored folders that the `run` call names in `carry`:
#   .gl/       Debian's libvulkan1 & co (.deb), unpacked into / (the Vulkan loader Dawn dlopens)
#   .devpkg/   node.xz (this machine's Node binary), nm.tar.xz + tf.tar.xz (node_modules without
#              typescript/playwright/other platforms), golden.tar.xz (../shared/golden)
# scripts/gpu/pack.sh makes .devpkg here. Idempotent: a warm machine skips what is done.
set -u
cd "$(dirname "$0")/../.."
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else python3 -c "import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)" "$1"; fi; }
if ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
mkdir -p /opt/foliar-node/bin
if [ ! -x /opt/foliar-node/bin/node ]; then unxz .devpkg/node.xz > /opt/foliar-node/bin/node && chmod +x /opt/foliar-node/bin/node; fi
if [ ! -d node_modules/webgpu ]; then unxz .devpkg/nm.tar.xz | tar -xf - && unxz .devpkg/tf.tar.xz | tar -xf -; fi
if [ ! -d shared/golden ]; then unxz .devpkg/golden.tar.xz | tar -xf -; fi
# npm's own CLI is not carried: a tiny stand-in runs package.json scripts through node
echo "export PATH=/opt/foliar-node/bin:\$PATH FOLIAR_SHARED=$PWD/shared XDG_RUNTIME_DIR=/tmp"
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
  echo "export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"
fi
