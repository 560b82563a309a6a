#!/usr/bin/env bash
# The real node's parts, for `make cluster-up REAL_NODE=1` and the real-node
# e2e tests: the kubelet and kube-proxy from the same k8s.io/kubernetes wrapper as the
# control plane (so most packages come from the build cache), cached in
# ${QORCH_CACHE:-~/.cache/qorch}/tools/node-<version>/ and linked into
# <repo>/.tools/bin. Sourced by hack/build-tools.sh, which defines tool(),
# wrapper(), modfield() and the Go environment.

build_node() {
  local out=$1 w
  w=$(wrapper node)
  local gomod staging=v0.${KUBE_VERSION#v1.}
  gomod=$(modfield "k8s.io/kubernetes@$KUBE_VERSION" GoMod)
  local -a edits
  mapfile -t edits < <(awk -v v="$staging" \
    '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print "-replace=" $1 "=" $1 "@" v }' "$gomod")
  (( ${#edits[@]} > 10 )) || { echo "no staging modules found in $gomod" >&2; exit 1; }
  (cd "$w" && "$GO" mod edit "${edits[@]}" "-require=k8s.io/kubernetes@$KUBE_VERSION")
  local minor=${KUBE_VERSION#v1.} ldflags="-s -w" pkg
  minor=${minor%%.*}
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  (cd "$w" && "$GO" build -mod=mod -p "$jobs" -trimpath -ldflags "$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
}

tool node "$KUBE_VERSION" build_node "kubelet, kube-proxy"

# Cluster DNS for Services reached by name (<service>.<namespace>.svc).
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
build_coredns() {
  GOBIN=$1 "$GO" install -p "$jobs" -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
}
tool coredns "$COREDNS_VERSION" build_coredns

# Prometheus with its Kubernetes service discovery, which Debian's build leaves out; the
# real-node tests scrape the pods with it. Module v0.3XX.Y is release v3.XX.Y.
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.309.1}
build_prometheus() {
  # Its go.mod has exclude directives, which `go install pkg@version` refuses.
  local w
  w=$(wrapper prometheus)
  (cd "$w" && "$GO" mod edit "-require=github.com/prometheus/prometheus@$PROMETHEUS_VERSION" &&
    "$GO" build -mod=mod -p "$jobs" -trimpath -ldflags "-s -w" -o "$1/prometheus" \
      github.com/prometheus/prometheus/cmd/prometheus)
}
tool prometheus "$PROMETHEUS_VERSION" build_prometheus
