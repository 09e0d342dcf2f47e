#!/usr/bin/env bash
# Builds and installs what the test cluster's nodes need (tests/support/node.py):
#   - containerd, runc and the CNI plugins from Debian, for the kubelet node (installed with apt-get when missing);
#   - kubelet and kube-scheduler v$KUBE_VERSION, through hack/build-controlplane.sh (the same module graph);
#   - kwok, pinned, from the Go module proxy, for fake nodes; it goes beside the others.
# Idempotent: returns at once when everything is present. The container images are not built here but by the
# tests (tests/support/images.py), from the worktree's own source, in about a second.
#
# Prints the directory holding kubelet, kube-scheduler and kwok as its last line of standard output; progress
# goes to stderr.
set -euo pipefail

KWOK_VERSION="${STARGRAPH_KWOK_VERSION:-0.8.0}"
HACK="$(cd "$(dirname "$0")" && pwd)"

say() { printf '[build-node] %s\n' "$*" >&2; }
die() { printf '[build-node] error: %s\n' "$*" >&2; exit 1; }

missing=()
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root, or install ${missing[*]} first (apt-get install ${missing[*]})"
  command -v apt-get >/dev/null 2>&1 || die "no apt-get: install ${missing[*]} by hand"
  say "installing ${missing[*]} from Debian"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
fi

BIN="$("$HACK/build-controlplane.sh" kubelet kube-scheduler | tail -n 1)"

# The binary records the module version it was built from: a change of KWOK_VERSION rebuilds it.
if ! go version -m "$BIN/kwok" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+sigs.k8s.io/kwok[[:space:]]+v$KWOK_VERSION[[:space:]]"; then
  command -v go >/dev/null 2>&1 || die "Go is not installed (needed to build kwok v$KWOK_VERSION); install Go >= 1.26"
  STAGE="$(mktemp -d "$BIN/.kwok.XXXXXX")"
  trap 'rm -rf "$STAGE"' EXIT
  started=$(date +%s)
  say "building kwok v$KWOK_VERSION from sigs.k8s.io/kwok/cmd/kwok (cold: a few minutes)"
  GOTOOLCHAIN=local GOFLAGS="-buildvcs=false" GOBIN="$STAGE" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" >&2 || die "go install sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION failed"
  mv "$STAGE/kwok" "$BIN/kwok"
  say "built kwok in $(( $(date +%s) - started ))s"
fi

echo "$BIN"
