#!/usr/bin/env bash
# Builds one Debian package of p2pcast from binaries already built:
#   scripts/build-deb.sh ARCH VERSION BINDIR OUTDIR
# ARCH amd64: the full build (device and hub, both units); armhf: the board's device build
# (device unit only). Depends is computed by dpkg-shlibdeps from the producer's libraries.
set -euo pipefail
arch=$1 version=$2 bindir=$3 outdir=$4
here=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/p2pcast

install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/p2pcast" "$root/usr/share/doc/p2pcast"
install -m 0755 "$bindir/p2pcast" "$bindir/p2pcast-capture" "$root/usr/bin/"
strip=strip
[ "$arch" = armhf ] && strip=arm-linux-gnueabihf-strip
"$strip" --strip-unneeded "$root/usr/bin/p2pcast-capture"
units=(p2pcast-device)
[ "$arch" = amd64 ] && units+=(p2pcast-hub)
conffiles=()
for u in "${units[@]}"; do
  install -m 0644 "$here/packaging/systemd/$u.service" "$root/lib/systemd/system/"
  conf=${u#p2pcast-}.toml
  install -m 0644 "$here/packaging/etc/$conf" "$root/etc/p2pcast/"
  conffiles+=("/etc/p2pcast/$conf")
done
for d in README.md docs/board.md docs/config.md docs/operations.md docs/recording.md docs/security.md; do
  install -m 0644 "$here/$d" "$root/usr/share/doc/p2pcast/"
done
printf '%s\n' "${conffiles[@]}" >"$root/DEBIAN/conffiles"
# systemd learns of new or changed units; stopping them on removal. Nothing is enabled on
# install: a device must be configured first (its flags), and a hub reachable.
cat >"$root/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl --system daemon-reload >/dev/null || true; fi
SCRIPT
cat >"$root/DEBIAN/prerm" <<SCRIPT
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "\$1" = remove ]; then systemctl stop ${units[*]/%/.service} >/dev/null 2>&1 || true; fi
SCRIPT
cp "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

# dpkg-shlibdeps wants a source tree's debian/control; it reads the binary's NEEDED entries.
mkdir -p "$stage/src/debian"
printf 'Source: p2pcast\n\nPackage: p2pcast\nArchitecture: any\n' >"$stage/src/debian/control"
depends=$(cd "$stage/src" && DEB_HOST_ARCH=$arch dpkg-shlibdeps -O "$root/usr/bin/p2pcast-capture" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
summary="live video from a device to browsers, peer to peer over WebRTC"
[ "$arch" = armhf ] && summary="$summary (device build for ARMv7 boards)"
cat >"$root/DEBIAN/control" <<CONTROL
Package: p2pcast
Version: $version
Architecture: $arch
Maintainer: p2pcast developers <dev@p2pcast.invalid>
Installed-Size: $size
Depends: $depends
Section: video
Priority: optional
Homepage: https://github.com/p2pcast/p2pcast
Description: $summary
 p2pcast streams a camera, an IP camera, a Wayland desktop or a test pattern
 to browsers and to the p2pcast CLI, peer to peer over WebRTC, with a relay
 only when networks leave no other way. The p2pcast-device unit runs a
 device; p2pcast-hub (amd64) runs the rendezvous hub. Both run as dynamic
 users in a sandbox; their settings are in /etc/p2pcast.
CONTROL
mkdir -p "$outdir"
dpkg-deb --root-owner-group -Zxz --build "$root" "$outdir/p2pcast_${version}_${arch}.deb" >/dev/null
echo "$outdir/p2pcast_${version}_${arch}.deb"
