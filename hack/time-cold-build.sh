#!/usr/bin/env bash
# Times a cold build of everything the tests need, from a fresh clone of this repository
# with empty caches (tools, Go modules and builds, image layers, pip): the venv, the test
# control plane and Kueue, the real nodes' tools, the pause and qorch images, then the
# qorch image again after a change under src/. Debian packages are not removed first.
#
#   bash hack/time-cold-build.sh [WORKDIR]   # WORKDIR is deleted first; default: a temp dir
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${1:-$(mktemp -d)}
rm -rf "$work" && mkdir -p "$work"
git clone -q "$repo" "$work/repo"
export QORCH_CACHE=$work/cache PIP_CACHE_DIR=$work/pip
cd "$work/repo"
t0=$(date +%s)
step() {
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1
  local rc=$?
  echo "$(date -u +%H:%M:%S) +$(($(date +%s) - t0))s $name (exit $rc, log $work/$name.log)"
  return $rc
}
step setup make setup &&
  step tools make tools &&
  step node-tools make node-tools &&
  step pause-image bash hack/build-image.sh pause &&
  step qorch-image bash hack/build-image.sh qorch &&
  echo "# a change under src/" >>src/qorch/__init__.py &&
  step qorch-image-after-a-change bash hack/build-image.sh qorch
rc=$?
echo "cold build: $(($(date +%s) - t0))s in all (exit $rc); caches in $work/cache"
exit $rc
