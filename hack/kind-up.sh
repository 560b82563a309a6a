#!/usr/bin/env bash
# A kind cluster with two edge sites, the qorch image, the chart and the quickstart job.
#
#   bash hack/kind-up.sh                      # or: make kind-up
#   WITH_MONITORING=1 bash hack/kind-up.sh    # also Prometheus + Grafana (kube-prometheus-stack)
#
# Needs docker, kind, kubectl and helm. Run it again to rebuild and upgrade in place;
# `kind delete cluster --name qorch` removes everything.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-qorch}
IMAGE=${IMAGE:-qorch:dev}                 # built here, loaded into the kind nodes
NAMESPACE=${NAMESPACE:-qorch-system}      # where the operator runs
JOBS_NAMESPACE=${JOBS_NAMESPACE:-default} # where the quickstart runs (watched by the operator)
WITH_MONITORING=${WITH_MONITORING:-0}

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --config kind-config.yaml
kubectl config use-context "kind-$CLUSTER"

docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

chart_args=()
if [[ $WITH_MONITORING == 1 ]]; then
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
  # Prometheus picks up every Service/PodMonitor and PrometheusRule; Grafana's sidecar looks in
  # every namespace for dashboards.
  helm upgrade --install monitoring prometheus-community/kube-prometheus-stack \
    --namespace monitoring --create-namespace --wait --timeout 10m \
    --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
    --set prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false \
    --set prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false \
    --set grafana.sidecar.dashboards.searchNamespace=ALL
  chart_args+=(--set serviceMonitor.enabled=true --set podMonitor.enabled=true
              --set prometheusRule.enabled=true)
fi

kubectl create namespace "$JOBS_NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
helm upgrade --install qorch charts/qorch \
  --namespace "$NAMESPACE" --create-namespace --wait --timeout 5m \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
  --set "watch.namespaces={$JOBS_NAMESPACE}" \
  ${chart_args[@]+"${chart_args[@]}"}

kubectl apply -n "$JOBS_NAMESPACE" -f examples/quickstart/
kubectl wait -n "$JOBS_NAMESPACE" djob/ghz --for=jsonpath='{.status.phase}'=Succeeded --timeout=10m
kubectl get -n "$JOBS_NAMESPACE" qn,qlink,djob

if [[ $WITH_MONITORING == 1 ]]; then
  echo
  echo "Grafana: user admin, password from"
  echo "  kubectl -n monitoring get secret monitoring-grafana -o jsonpath='{.data.admin-password}' | base64 -d"
  echo "  kubectl -n monitoring port-forward svc/monitoring-grafana 3000:80   # then http://localhost:3000"
fi
