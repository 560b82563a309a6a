#!/usr/bin/env bash
# Debian packages the tests use as real peers: promtool (Prometheus) lints metrics and
# unit-tests alert rules; swtpm (a TPM 2.0 emulator) and tpm2-tools attest QPU nodes.
# The real node (hack/realnode.py, hack/build-image.sh) needs containerd, runc, the CNI
# plugins, iproute2, iptables, mmdebstrap, umoci and a C compiler (the pod sandbox's pause).
# Installs only what is missing, and only where apt can.
set -euo pipefail
# command -> Debian package
declare -A wanted=(
  [promtool]=prometheus
  [swtpm]=swtpm
  [swtpm_setup]=swtpm-tools
  [tpm2_quote]=tpm2-tools
  [containerd]=containerd
  [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [ip]=iproute2
  [iptables]=iptables
  [nsenter]=util-linux
  [mmdebstrap]=mmdebstrap
  [umoci]=umoci
  [gcc]=gcc
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
)
missing=()
for command in "${!wanted[@]}"; do
  if [[ $command == /* ]]; then
    [[ -e $command ]] || missing+=("${wanted[$command]}")
  else
    command -v "$command" >/dev/null || missing+=("${wanted[$command]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing and cannot be installed here: apt-get install ${missing[*]}" >&2
  exit 0
fi
echo "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
