#!/usr/bin/env bash
# Installs a Vulkan driver that Dawn (the `webgpu` package) can use, when none is present.
# On Debian bookworm without a GPU this is Mesa's lavapipe from bookworm-backports: bookworm's own
# Mesa 22.3 lacks a feature Dawn needs. Elsewhere (macOS, Windows, machines with GPU drivers) it
# does nothing.
set -euo pipefail

have_vulkan_icd() {
  ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null | grep -q . && \
    ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'
}

lavapipe_recent_enough() {
  # bookworm's 22.x lavapipe is too old for Dawn; backports ships 25.x.
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [ -z "$v" ] && return 0  # not lavapipe (a vendor driver); assume usable
  dpkg --compare-versions "$v" ge 24 
}

if [ "$(uname -s)" != "Linux" ]; then
  echo "setup-vulkan: $(uname -s) provides WebGPU natively (Metal / D3D12); nothing to install."
  exit 0
fi

if have_vulkan_icd && lavapipe_recent_enough; then
  echo "setup-vulkan: a Vulkan driver is already installed."
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-vulkan: no Vulkan driver found and this is not a Debian-like system." >&2
  echo "  Install your GPU's Vulkan driver, or Mesa >= 24 (lavapipe) from your distribution." >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup-vulkan: need root (or sudo) to install mesa-vulkan-drivers." >&2; exit 1
  fi
fi

. /etc/os-release
codename="${VERSION_CODENAME:-bookworm}"
target=""
if [ "$codename" = "bookworm" ]; then
  target="-t bookworm-backports"
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1 | awk '{print $2}')
    [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
    echo "setup-vulkan: adding bookworm-backports ($mirror)"
    $SUDO tee /etc/apt/sources.list.d/foliar-backports.sources >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
fi
echo "setup-vulkan: installing Mesa's Vulkan drivers (lavapipe) ..."
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $target mesa-vulkan-drivers libvulkan1 >/dev/null
echo "setup-vulkan: installed mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
