#!/usr/bin/env bash
# Builds the local test control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd) plus helm and kwok from Go modules, once per
# version, into ${QORCH_CACHE:-~/.cache/qorch}/tools/<name>-<version>/, and
# links the binaries into <repo>/.tools/bin. Cached versions are skipped.
set -euo pipefail

# v1.36.x matches the kubernetes 36.x Python client; v1.36.5 is missing from
# the Go checksum database, so v1.36.4 is the newest verifiable 1.36 release.
KUBE_VERSION=${KUBE_VERSION:-v1.36.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
KUEUE_VERSION=${KUEUE_VERSION:-v0.17.0}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${QORCH_CACHE:-$HOME/.cache/qorch}
bin=$repo/.tools/bin
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

# One module and build cache for all tools, so version bumps and the second
# tool reuse what the first one downloaded and compiled.
export GOMODCACHE=$cache/gomod GOCACHE=$cache/gobuild GOPATH=$cache/gopath
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Compile jobs = cores; more only adds memory pressure on small CI machines.
jobs=${QORCH_BUILD_JOBS:-$(nproc)}
mkdir -p "$cache/tools" "$bin"

# tool NAME VERSION FUNC [WHAT]: run FUNC OUTDIR unless NAME-VERSION is cached,
# then link its files. The build goes to a temp dir that is renamed at the end,
# so an interrupted build is never mistaken for a finished one.
tool() {
  local name=$1 version=$2 func=$3 dir=$cache/tools/$1-$2
  if [[ ! -d $dir ]]; then
    echo "building ${4:-$name} $version ..."
    local start=$SECONDS
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    "$func" "$dir.tmp"
    mv "$dir.tmp" "$dir"
    echo "built $name $version in $((SECONDS - start))s"
  else
    echo "cached $name $version"
  fi
  local f
  for f in "$dir"/*; do ln -sfn "$f" "$bin/"; done
}

# modfield MODULE@VERSION FIELD: GoMod or Dir from `go mod download -json`,
# run in the cache dir so no surrounding go.mod gets involved.
modfield() {
  (cd "$cache" && "$GO" mod download -json "$1") | sed -n "s/^\s*\"$2\": \"\(.*\)\",*$/\1/p"
}

# wrapper NAME: a fresh main module to build other modules' commands in, for
# targets whose replace lines make `go install pkg@version` refuse them.
wrapper() {
  local w=$cache/work/$1
  rm -rf "$w" && mkdir -p "$w" && (cd "$w" && "$GO" mod init qorch.local/tools 2>/dev/null) && echo "$w"
}

build_kubernetes() {
  local out=$1 w
  w=$(wrapper kubernetes)
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
  # with ./staging/...; from outside they must map to the published v0.Y.Z.
  local gomod staging=v0.${KUBE_VERSION#v1.}
  gomod=$(modfield "k8s.io/kubernetes@$KUBE_VERSION" GoMod)
  local -a edits
  mapfile -t edits < <(awk -v v="$staging" \
    '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print "-replace=" $1 "=" $1 "@" v }' "$gomod")
  (( ${#edits[@]} > 10 )) || { echo "no staging modules found in $gomod" >&2; exit 1; }
  (cd "$w" && "$GO" mod edit "${edits[@]}" "-require=k8s.io/kubernetes@$KUBE_VERSION")
  # The same variables hack/lib/version.sh stamps: client-go's for kubectl's
  # client version, component-base's for the servers.
  local minor=${KUBE_VERSION#v1.} ldflags="-s -w" pkg
  minor=${minor%%.*}
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  # One `go build` for all four, so shared packages compile once.
  (cd "$w" && "$GO" build -mod=mod -p "$jobs" -trimpath -ldflags "$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() {
  local out=$1 w
  # etcd's server module replaces its sibling modules with ../ paths.
  w=$(wrapper etcd)
  (cd "$w" && "$GO" mod edit "-require=go.etcd.io/etcd/server/v3@$ETCD_VERSION" &&
    "$GO" build -mod=mod -p "$jobs" -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

build_helm() {
  # Helm's Makefile stamps its default .Capabilities.KubeVersion (used by
  # `helm template`) from the client-go it was built with: v0.Y.Z -> 1.Y.
  local gomod minor
  gomod=$(modfield "helm.sh/helm/v3@$HELM_VERSION" GoMod)
  minor=$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$gomod")
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" pkg
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  GOBIN=$1 "$GO" install -p "$jobs" -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_kwok() {
  GOBIN=$1 "$GO" install -p "$jobs" -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # The kwok binary has no built-in stages (kwokctl embeds them): keep the
  # "fast" set, which makes managed nodes Ready and their pods Running at once.
  local src s
  src=$(modfield "sigs.k8s.io/kwok@$KWOK_VERSION" Dir)
  for s in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---" && cat "$src/kustomize/stage/$s.yaml"
  done >"$1/kwok-stages.yaml"
}

build_kueue() {
  # The version stamps Kueue's Makefile sets; its main module has no replace
  # lines, so `go install` builds the manager directly.
  local pkg=sigs.k8s.io/kueue/pkg/version
  local ldflags="-s -w -X $pkg.GitVersion=$KUEUE_VERSION -X $pkg.BuildDate=1970-01-01T00:00:00Z"
  GOBIN=$1 "$GO" install -p "$jobs" -trimpath -ldflags "$ldflags" "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION"
  # Its CRDs, as its own config/components/crd installs them.
  local src f
  src=$(modfield "sigs.k8s.io/kueue@$KUEUE_VERSION" Dir)
  for f in "$src"/config/components/crd/bases/*.yaml; do
    echo "---" && cat "$f"
  done >"$1/kueue-crds.yaml"
  # Its webhook configurations (config/components/webhook), which hack/kueue_local.py
  # points at the local process.
  cp "$src/config/components/webhook/manifests.yaml" "$1/kueue-webhooks.yaml"
}

tool etcd "$ETCD_VERSION" build_etcd
tool kubernetes "$KUBE_VERSION" build_kubernetes \
  "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl"
tool helm "$HELM_VERSION" build_helm
tool kwok "$KWOK_VERSION" build_kwok
tool kueue "$KUEUE_VERSION" build_kueue
# The real node (kubelet; containerd, runc and CNI come from Debian).
if [[ ${REAL_NODE:-} == 1 ]]; then
  # shellcheck source=hack/node-tools.sh
  source "$repo/hack/node-tools.sh"
fi
echo "tools linked into $bin"
