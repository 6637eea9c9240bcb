#!/usr/bin/env bash
# Installs what `make cross` and its qemu test need on Debian 12, and nothing when it is already
# there (safe to run twice): the armhf cross compiler, the board's libraries (x264, Opus, ALSA,
# and for USB cameras libyuv and libturbojpeg) as armhf packages through multiarch, and
# qemu-user-static to run ARM binaries here.
set -euo pipefail

arch=armhf
# The cross compiler and the emulator are host packages; the libraries the producer links are
# the target's, installed beside the host's (Multi-Arch: same).
pkgs=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user-static pkg-config)
pkgs+=(libx264-dev:$arch libopus-dev:$arch libasound2-dev:$arch)
# The v4l2 source (USB cameras): YUYV/NV12 conversions and MJPEG decoding, linked statically.
pkgs+=(libyuv-dev:$arch libturbojpeg0-dev:$arch)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_get() { DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 "$@"; }
# A mirror in mid-sync fails an index now and then ("File has unexpected size"): try again. An
# armhf list that stays missing would pick older library versions than the host's, which
# Multi-Arch refuses, so the install below then fails loudly.
update() {
  for i in 1 2 3 4 5; do
    apt_get update -q && return 0
    echo "install-cross-deps: apt-get update failed (try $i of 5)" >&2
    sleep $((i * 5))
  done
  echo "install-cross-deps: going on with the package lists apt has" >&2
}

added=0
if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  echo "install-cross-deps: adding the $arch architecture (dpkg --add-architecture $arch)" >&2
  $sudo dpkg --add-architecture "$arch"
  added=1
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-cross-deps: installing ${missing[*]}" >&2
  # A new architecture has no package lists yet; an old list may lack a package too.
  update
  apt_get install -y -q --no-install-recommends "${missing[@]}"
elif ((added)); then
  update
fi
