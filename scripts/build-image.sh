#!/usr/bin/env bash
# Builds the hub's image from a context directory with buildah and saves it as an OCI archive:
#   scripts/build-image.sh CONTEXT ARCHIVE TAG
# buildah's storage is a temporary directory of its own (vfs driver, chroot isolation: no
# daemon, no overlay mounts, no user namespaces needed), removed at the end.
set -euo pipefail
ctx=$1 archive=$2 tag=$3
command -v buildah >/dev/null || { echo "build-image: buildah is not installed (scripts/install-deps.sh)" >&2; exit 1; }
store=$(mktemp -d)
trap 'buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs rmi -a -f >/dev/null 2>&1 || true; rm -rf "$store"' EXIT
b() { buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs "$@"; }
b bud --quiet --isolation chroot -f "$ctx/Containerfile" -t "$tag" "$ctx" >/dev/null
rm -f "$archive"
b push --quiet "$tag" "oci-archive:$archive:$tag"
echo "$archive"
