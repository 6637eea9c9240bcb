#!/usr/bin/env bash
# Installs what p2pcast needs on Debian 12, and nothing when it is already there (safe to run
# twice). Go itself comes with the machine (/usr/local/go); Debian's is too old.
set -euo pipefail

pkgs=(build-essential pkg-config libx264-dev libopus-dev libasound2-dev alsa-utils sox ffmpeg chromium iproute2 util-linux ca-certificates coturn iptables conntrack)
# The Wayland desktop source: libwayland-client and wayland-scanner for p2pcast-capture's
# screencopy, libyuv for BGRx -> I420 (and the cameras' YUYV, NV12), PipeWire for the portal
# path; sway (headless), foot and weston's demo clients are what the desktop tests run against.
# libturbojpeg decodes the cameras' MJPEG (4:2:2 too, which libyuv's MJPGToI420 refuses).
pkgs+=(libwayland-dev wayland-protocols libyuv-dev libturbojpeg0-dev libpipewire-0.3-dev sway foot weston)
# The pipewire source's tests run a private PipeWire daemon (pipewire-bin: the daemon, and the
# modules and client.conf every libpipewire client loads).
pkgs+=(pipewire-bin)
# internal/rtsp's tests play from a real RTSP server: GStreamer's (python3-gi and its typelib)
# serving H.264 (x264enc, ugly), H.265 (x265enc, bad), PCMA (good) and AAC (avenc_aac, libav).
pkgs+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav)
# The producer's AAC -> Opus transcoder for RTSP cameras (capture/transcode.c).
pkgs+=(libavcodec-dev libswresample-dev libavutil-dev)

# The hub's token interop test (internal/hub TestPyJWTInterop) mints and checks JWTs with PyJWT
# under Debian's /usr/bin/python3; EdDSA needs python3-cryptography, only a recommendation of
# python3-jwt's (and recommendations are not installed here).
pkgs+=(python3-jwt python3-cryptography)
# The hub cluster (docs/cluster.md) runs on NATS: its tests start their own nats-server on a
# free loopback port (the package's service, if it runs, is not used).
pkgs+=(nats-server)

# The hub's container image is built and run with buildah (make image, test/deb).
pkgs+=(buildah)

# The SFU test (test/nat TestSFU, docs/sfu.md) publishes to and plays from a real Janus
# (its HTTP transport and VideoRoom plugin, started by the test with its own configuration).
pkgs+=(janus)

# Installed for this machine's architecture (or all): make cross's armhf copy of a library
# (libyuv-dev:armhf, scripts/install-cross-deps.sh) does not stand in for the host's.
native=$(dpkg --print-architecture)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status} ${Architecture}\n' "$p" 2>/dev/null |
    grep -qE "^install ok installed ($native|all)\$" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # One index in mid-sync (often make cross's armhf one) fails the whole update: the install
  # below still fails loudly if the lists apt has lack a package.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -q ||
    echo "install-deps: apt-get update failed: going on with the package lists apt has" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

# promtool checks the /metrics exposition in the tests. It comes from Debian's prometheus
# package, extracted rather than installed: installing it would start a Prometheus server.
if ! command -v promtool >/dev/null; then
  echo "install-deps: extracting promtool from Debian's prometheus package" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get -o DPkg::Lock::Timeout=600 download -q prometheus); then
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -q
    (cd "$tmp" && apt-get -o DPkg::Lock::Timeout=600 download -q prometheus)
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  $sudo install -m 0755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$tmp"
  trap - EXIT
fi

export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null; then
  echo "install-deps: Go 1.26 or newer is required (expected at /usr/local/go)" >&2
  exit 1
fi
go mod download
