#!/usr/bin/env bash
# Builds the qorch image without Docker or a registry, for the real-node tests:
# Debian bookworm's python3.11 from mmdebstrap, the wheels that `pip wheel .`
# resolves, packed as OCI with umoci in three layers so that a change to src/
# only replaces the last one:
#   base:  bookworm minbase + python3 + python3-venv, the image's user
#   deps:  /opt/qorch, a venv with every dependency of pyproject.toml
#   qorch: the qorch wheel in that venv
# The Dockerfile stays the recipe for Docker users and the one list of what
# goes into the image: the runtime config (ENV, USER, WORKDIR, EXPOSE,
# ENTRYPOINT, CMD, LABEL) is read from its final stage, the Python packages
# come from pyproject.toml in both.
#
#   bash hack/build-image.sh qorch   # prints the OCI archive and the image name
#   bash hack/build-image.sh pause   # the pod sandbox image
#
# Each layer is cached under ${QORCH_CACHE:-~/.cache/qorch}/image by a hash of
# its inputs. Needs root (chroot, overlay mounts), mmdebstrap and umoci.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${QORCH_CACHE:-$HOME/.cache/qorch}/image
layout=$cache/oci
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
base_packages=python3,python3-venv
mkdir -p "$cache"
# One build at a time per cache.
exec 9>"$cache/.lock"
flock 9
[[ -d $layout ]] || umoci init --layout "$layout"

hash_of() { sha256sum | cut -c1-16; }
log() { echo "$*" >&2; }

# stage NAME HASH: true when layout tag NAME-HASH exists (the stage is cached).
cached() { umoci ls --layout "$layout" | grep -x "$1" >/dev/null; }

# add_layer TAG FROM DIR: TAG = FROM (or a new empty image) + DIR as one layer.
add_layer() {
  local tag=$1 from=$2 dir=$3
  if [[ -n $from ]]; then
    umoci tag --image "$layout:$from" "$tag"
  else
    umoci new --image "$layout:$tag"
  fi
  tar --numeric-owner --xattrs -C "$dir" -cf "$cache/layer.tar" \
    --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* --exclude=./tmp/wheels .
  umoci raw add-layer --image "$layout:$tag" "$cache/layer.tar"
  rm -f "$cache/layer.tar"
}

# with_overlay MERGED LOWER UPPER CMD...: run CMD with LOWER+UPPER mounted at MERGED.
with_overlay() {
  local merged=$1 lower=$2 upper=$3
  shift 3
  rm -rf "$upper" "$merged" "$upper.work" && mkdir -p "$upper" "$merged" "$upper.work"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$upper.work" "$merged"
  local rc=0
  "$@" || rc=$?
  umount -R "$merged"
  rm -rf "$upper.work" "$merged"
  return $rc
}

in_root() { chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "${@:2}"; }

# The runtime config of the Dockerfile's final stage, as umoci config flags.
config_flags() {
  python3 - "$repo/Dockerfile" <<'EOF'
import json, shlex, sys
lines, cur = [], ""
for raw in open(sys.argv[1]):
    raw = raw.rstrip("\n")
    if not cur and (not raw.strip() or raw.lstrip().startswith("#")):
        continue
    cur += raw[:-1] + " " if raw.endswith("\\") else raw
    if not raw.endswith("\\"):
        lines.append(cur.strip()); cur = ""
final = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")][-1]
flags = []
for line in lines[final + 1:]:
    op, _, rest = line.partition(" ")
    op = op.upper()
    if op == "ENV":
        for kv in shlex.split(rest):
            flags.append(f"--config.env={kv}")
    elif op == "LABEL":
        for kv in shlex.split(rest):
            flags.append(f"--config.label={kv}")
    elif op == "USER":
        flags.append(f"--config.user={rest.strip()}")
    elif op == "WORKDIR":
        flags.append(f"--config.workingdir={rest.strip()}")
    elif op == "EXPOSE":
        flags += [f"--config.exposedports={p if '/' in p else p + '/tcp'}" for p in rest.split()]
    elif op in ("ENTRYPOINT", "CMD"):
        flags += [f"--config.{op.lower()}={a}" for a in json.loads(rest)]
print("\n".join(flags))
EOF
}

# uid:gid of the Dockerfile's USER, for the base layer's /etc/passwd.
dockerfile_user() { awk '$1 == "USER" { print $2 }' "$repo/Dockerfile" | tail -1; }

build_base() {
  local tag=$1 root=$cache/base-rootfs user
  user=$(dockerfile_user)
  rm -rf "$root.tmp"
  mmdebstrap --quiet --variant=minbase --include="$base_packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --aptopt='Acquire::Retries "3"' \
    "$suite" "$root.tmp" "$mirror" >&2
  in_root "$root.tmp" groupadd --system --gid "${user#*:}" qorch
  in_root "$root.tmp" useradd --system --uid "${user%:*}" --gid "${user#*:}" --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin qorch
  # apt's lists and caches are not needed at run time.
  rm -rf "$root.tmp"/var/lib/apt/lists/* "$root.tmp"/var/cache/apt/* "$root.tmp"/var/log/*
  rm -rf "$root" && mv "$root.tmp" "$root"
  add_layer "$tag" "" "$root"
}

# sources: a copy of what the Dockerfile copies into its build stage, so that
# building the wheel leaves nothing behind in the repository.
sources() {
  rm -rf "$cache/src" && mkdir -p "$cache/src"
  (cd "$repo" && cp -r pyproject.toml README.md src "$cache/src/")
  find "$cache/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
  echo "$cache/src"
}

wheels() {
  # Every dependency's wheel, resolved once per dependency list.
  local dir=$cache/wheels-$1
  if [[ ! -d $dir ]]; then
    log "downloading the dependencies' wheels ..."
    rm -rf "$dir.tmp"
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$dir.tmp" "$(sources)" >&2
    rm -f "$dir.tmp"/qorch-*.whl
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

install_deps() {
  local merged=$1 wheel_dir=$2
  mkdir -p "$merged/tmp/wheels"
  mount --bind "$wheel_dir" "$merged/tmp/wheels"
  local rc=0 w
  local -a wheels=()
  for w in "$wheel_dir"/*.whl; do wheels+=("/tmp/wheels/$(basename "$w")"); done
  {
    in_root "$merged" python3 -m venv /opt/qorch &&
      in_root "$merged" /opt/qorch/bin/pip install --quiet --no-cache-dir --no-index \
        --disable-pip-version-check --find-links=/tmp/wheels "${wheels[@]}"
  } >&2 || rc=$?
  umount "$merged/tmp/wheels"
  return $rc
}

build_deps() {
  local tag=$1 from=$2 wheel_dir=$3
  with_overlay "$cache/merged" "$cache/base-rootfs" "$cache/deps-upper.tmp" \
    install_deps "$cache/merged" "$wheel_dir"
  rm -rf "$cache/deps-upper" && mv "$cache/deps-upper.tmp" "$cache/deps-upper"
  rm -rf "$cache/deps-upper/tmp/wheels"
  add_layer "$tag" "$from" "$cache/deps-upper"
}

install_qorch() {
  local merged=$1 wheel=$2
  mkdir -p "$merged/tmp/wheels"
  cp "$wheel" "$merged/tmp/wheels/"
  in_root "$merged" /opt/qorch/bin/pip install --quiet --no-cache-dir --no-index --no-deps \
    --disable-pip-version-check "/tmp/wheels/$(basename "$wheel")" >&2
  rm -rf "$merged/tmp/wheels"
}

build_qorch() {
  local tag=$1 from=$2 wheel
  rm -rf "$cache/qorch-wheel" && mkdir -p "$cache/qorch-wheel"
  "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --wheel-dir "$cache/qorch-wheel" "$(sources)" >&2
  wheel=$(echo "$cache"/qorch-wheel/qorch-*.whl)
  with_overlay "$cache/merged" "$cache/deps-upper:$cache/base-rootfs" "$cache/qorch-upper" \
    install_qorch "$cache/merged" "$wheel"
  add_layer "$tag" "$from" "$cache/qorch-upper"
  local -a flags
  mapfile -t flags < <(config_flags)
  # umoci adds the config changes as a new tag; keep the name.
  umoci config --image "$layout:$tag" --tag "$tag" "${flags[@]}" \
    --config.env=PATH=/opt/qorch/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  rm -rf "$cache/qorch-upper"
}

# archive TAG NAME: an OCI archive holding only TAG, named NAME for `ctr images import`.
archive() {
  local tag=$1 name=$2 out=$cache/$1.tar
  if [[ ! -f $out ]]; then
    python3 - "$layout" "$tag" "$name" "$out.tmp" <<'EOF'
import io, json, sys, tarfile
from pathlib import Path
layout, tag, name, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
index = json.loads((layout / "index.json").read_text())
manifests = [m for m in index["manifests"]
             if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
manifests[0]["annotations"]["org.opencontainers.image.ref.name"] = name
index["manifests"] = manifests[:1]
def blob(digest): return Path("blobs", *digest.split(":", 1))
wanted = {blob(manifests[0]["digest"])}
manifest = json.loads((layout / blob(manifests[0]["digest"])).read_text())
wanted |= {blob(manifest["config"]["digest"])} | {blob(l["digest"]) for l in manifest["layers"]}
with tarfile.open(out, "w") as tar:
    for member in ["oci-layout", *sorted(map(str, wanted))]:
        tar.add(layout / member, arcname=member)
    data = json.dumps(index).encode()
    info = tarfile.TarInfo("index.json"); info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
EOF
    mv "$out.tmp" "$out"
  fi
  echo "$out $name"
}

build_pause() {
  # The pod sandbox: Kubernetes' own pause.c, linked statically.
  local src tag=$1 dir=$cache/pause-rootfs
  src=$(find "${QORCH_CACHE:-$HOME/.cache/qorch}/gomod/k8s.io" -path '*kubernetes@*/build/pause/linux/pause.c' | head -1)
  [[ -n $src ]] || { log "pause.c not found: run hack/build-tools.sh first"; exit 1; }
  rm -rf "$dir" && mkdir -p "$dir"
  gcc -Os -static -Wall -Werror -DVERSION=v3.10-qorch -o "$dir/pause" "$src"
  strip "$dir/pause"
  add_layer "$tag" "" "$dir"
  umoci config --image "$layout:$tag" --tag "$tag" --config.entrypoint=/pause --config.user=65535:65535
  rm -rf "$dir"
}

# Drop tags of older builds and their blobs, so the cache keeps one of each.
prune() {
  local keep=" $* " t
  for t in $(umoci ls --layout "$layout"); do
    [[ $keep == *" $t "* ]] || umoci rm --image "$layout:$t"
  done
  umoci gc --layout "$layout"
  find "$cache" -maxdepth 1 -name '*.tar' | while read -r f; do
    [[ $keep == *" $(basename "$f" .tar) "* ]] || rm -f "$f"
  done
  find "$cache" -maxdepth 1 -name 'wheels-*' | while read -r d; do
    [[ $d == "$cache/wheels-$deps_hash" ]] || rm -rf "$d"
  done
}

pause_hash=$(cat "$0" | hash_of)
pause_tag=pause-$pause_hash
if ! cached "$pause_tag"; then
  log "building the pause image ..."
  build_pause "$pause_tag"
fi
if [[ ${1:-qorch} == pause ]]; then
  archive "$pause_tag" qorch.local/pause:3.10
  exit 0
fi

PYTHON=${PYTHON:-python3}
start=$SECONDS
base_hash=$( (echo "$suite $base_packages"; dockerfile_user; sed -n '/^build_base()/,/^}/p' "$0") | hash_of)
deps_hash=$( (echo "$base_hash"; "$PYTHON" -c 'import sys, tomllib, json
print(json.dumps(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
  "$repo/pyproject.toml"; sed -n '/^install_deps()/,/^}/p' "$0") | hash_of)
qorch_hash=$( (echo "$deps_hash"; cd "$repo" && find pyproject.toml README.md Dockerfile src -type f \
  ! -path '*__pycache__*' ! -name '*.pyc' ! -path '*.egg-info*' -print0 | sort -z |
  xargs -0 sha256sum) | hash_of)
base_tag=base-$base_hash deps_tag=deps-$deps_hash qorch_tag=qorch-$qorch_hash
if ! cached "$base_tag" || [[ ! -d $cache/base-rootfs ]]; then
  log "building the base layer (Debian $suite, $base_packages) ..."
  build_base "$base_tag"
fi
if ! cached "$deps_tag" || [[ ! -d $cache/deps-upper ]]; then
  log "building the dependencies layer ..."
  build_deps "$deps_tag" "$base_tag" "$(wheels "$deps_hash")"
fi
if ! cached "$qorch_tag"; then
  log "building the qorch layer ..."
  build_qorch "$qorch_tag" "$deps_tag"
fi
out=$(archive "$qorch_tag" "qorch.local/qorch:$qorch_hash")
prune "$pause_tag" "$base_tag" "$deps_tag" "$qorch_tag"
log "image ready in $((SECONDS - start))s"
echo "$out"
