#!/usr/bin/env bash
# Builds the local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) from pinned Go
# modules into a cache outside the repository. There is no prebuilt binary we may download and no Docker engine,
# so we build what envtest would otherwise fetch. Idempotent: returns at once when the binaries are present.
#
#   hack/build-controlplane.sh [kubelet] [kube-scheduler]
#
# Components named as arguments are built too, from the same module graph (hack/build-node.sh asks for the two a
# test node needs). Prints the directory holding the binaries as its last line of standard output; progress goes
# to stderr.
set -euo pipefail

KUBE_VERSION="${STARGRAPH_KUBE_VERSION:-1.37.2}"
CACHE_ROOT="${STARGRAPH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stargraph}"
OUT="$CACHE_ROOT/controlplane/v$KUBE_VERSION"
say() { printf '[build-controlplane] %s\n' "$*" >&2; }
die() { printf '[build-controlplane] error: %s\n' "$*" >&2; exit 1; }

# Everything but etcd is k8s.io/kubernetes/cmd/<name>.
KUBE_COMPONENTS=(kube-apiserver kube-controller-manager)
for extra in "$@"; do
  case "$extra" in
    kubelet | kube-scheduler) KUBE_COMPONENTS+=("$extra") ;;
    *) die "unknown component '$extra' (known: kubelet, kube-scheduler)" ;;
  esac
done
BINARIES=(etcd "${KUBE_COMPONENTS[@]}")

all_present() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$OUT/bin/$b" ] || return 1; done
}

if all_present; then
  echo "$OUT/bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "Go is not installed (needed to build kube-apiserver $KUBE_VERSION); install Go >= 1.26"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to read the module metadata"

KUBE_MINOR="${KUBE_VERSION#*.}"; KUBE_MINOR="${KUBE_MINOR%%.*}"
KUBE_MAJOR="${KUBE_VERSION%%.*}"
STAGING_VERSION="v0.${KUBE_VERSION#*.}"

mkdir -p "$OUT/bin"
WORK="$OUT/module"
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"

export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local

say "downloading k8s.io/kubernetes@v$KUBE_VERSION metadata (first run fetches ~600 MB of modules; minutes)"
cat > go.mod <<MOD
module stargraph.local/controlplane

go 1.26
MOD
kube_gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])') \
  || die "could not download k8s.io/kubernetes@v$KUBE_VERSION from the Go module proxy"

# k8s.io/kubernetes points its staging modules at ./staging/...; pin each to its published release instead.
python3 - "$kube_gomod" "$STAGING_VERSION" >> go.mod <<'PY'
import re, sys
gomod, version = sys.argv[1], sys.argv[2]
names = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", open(gomod).read(), re.M)))
if not names:
    sys.exit("no staging replace directives found in " + gomod)
print("replace (")
for name in names:
    print(f"\t{name} => {name} {version}")
print(")")
PY
say "pinned $(grep -c '=> k8s.io/' go.mod) staging modules to $STAGING_VERSION"

say "resolving the module graph (go get k8s.io/kubernetes@v$KUBE_VERSION)"
go get "k8s.io/kubernetes@v$KUBE_VERSION" >&2 || die "go get k8s.io/kubernetes@v$KUBE_VERSION failed"

LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=$KUBE_MAJOR -X k8s.io/component-base/version.gitMinor=$KUBE_MINOR -X k8s.io/component-base/version.gitTreeState=clean"

build() {
  local name=$1 pkg=$2 flags=$3 started
  [ -x "$OUT/bin/$name" ] && { say "$name already built"; return; }
  started=$(date +%s)
  say "building $name from $pkg (cold: minutes, ~3 GB of memory)"
  go build -trimpath -ldflags "$flags" -o "$OUT/bin/$name.tmp" "$pkg" >&2 || die "go build $pkg failed (see the compiler output above)"
  mv "$OUT/bin/$name.tmp" "$OUT/bin/$name"
  say "built $name in $(( $(date +%s) - started ))s"
}

# etcd: the version k8s.io/kubernetes itself requires, so client and server match.
build etcd go.etcd.io/etcd/server/v3 "-s -w"
for name in "${KUBE_COMPONENTS[@]}"; do
  build "$name" "k8s.io/kubernetes/cmd/$name" "$LDFLAGS"
done

all_present || die "build finished but binaries are missing in $OUT/bin"
say "control plane v$KUBE_VERSION ready in $OUT/bin"
echo "$OUT/bin"
