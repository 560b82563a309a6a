#!/usr/bin/env bash
# Debian packages the tests use as real peers: promtool (Prometheus) lints metrics and
# unit-tests alert rules. Installs only what is missing, and only where apt can.
set -euo pipefail
command -v promtool >/dev/null && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "promtool is missing and cannot be installed here: apt-get install prometheus" >&2
  exit 0
fi
echo "installing prometheus (for promtool)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
