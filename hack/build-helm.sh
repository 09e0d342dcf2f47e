#!/usr/bin/env bash
# Builds Helm from its pinned Go module into a cache outside the repository. Helm is not packaged on the machines
# we test on and we may not download release binaries, so, like the control plane, it comes from the Go module
# proxy. Idempotent: returns at once when the binary is present.
#
# Prints the path of the helm binary as its last line of standard output; progress goes to stderr.
set -euo pipefail

HELM_VERSION="${STARGRAPH_HELM_VERSION:-4.3.1}"
CACHE_ROOT="${STARGRAPH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stargraph}"
OUT="$CACHE_ROOT/helm/v$HELM_VERSION"
HELM="$OUT/helm"

say() { printf '[build-helm] %s\n' "$*" >&2; }
die() { printf '[build-helm] error: %s\n' "$*" >&2; exit 1; }

if [ -x "$HELM" ]; then
  echo "$HELM"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "Go is not installed (needed to build helm v$HELM_VERSION); install Go >= 1.26"

HELM_MAJOR="${HELM_VERSION%%.*}"
# `helm.sh/helm/v4` for Helm 4; Helm 3 and earlier have no major suffix beyond v3.
MODULE="helm.sh/helm/v$HELM_MAJOR"

# Built into a scratch GOBIN and moved into place, so an interrupted build never leaves a binary that looks done.
mkdir -p "$OUT"
STAGE="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

export GOTOOLCHAIN=local
export GOFLAGS="-buildvcs=false"
started=$(date +%s)
say "building helm v$HELM_VERSION from $MODULE/cmd/helm (cold: about 2 minutes, module download included)"
# Helm stamps its version from ldflags in release builds; set it so `helm version` reports the pinned version.
GOBIN="$STAGE" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v$HELM_MAJOR/internal/version.version=v$HELM_VERSION" \
  "$MODULE/cmd/helm@v$HELM_VERSION" >&2 \
  || die "go install $MODULE/cmd/helm@v$HELM_VERSION failed (see the output above)"
[ -x "$STAGE/helm" ] || die "go install finished but $STAGE/helm is missing"
mv "$STAGE/helm" "$HELM"
say "helm v$HELM_VERSION ready in $(( $(date +%s) - started ))s: $HELM"
echo "$HELM"
