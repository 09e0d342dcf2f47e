#!/usr/bin/env bash
# Builds the operator image from the Containerfile with podman. Cached like the control plane: the image carries a
# label with a hash of its inputs (Containerfile, pyproject.toml, README.md, operator/, this script, the base), and a
# run whose inputs are unchanged returns at once.
#
# The Python dependencies are resolved here, on the host, as wheels for the image's Python (3.11, manylinux), and
# the Containerfile installs only those (pip --no-index): a build container may have no route to PyPI, and the image
# then holds exactly what was resolved, with no compiler needed.
#
#   STARGRAPH_IMAGE_BASE   the base image; default: a Debian bookworm root filesystem built here with debootstrap
#                          from this machine's apt mirror (cached), for machines where no registry serves images.
#                          For a release: STARGRAPH_IMAGE_BASE=docker.io/library/python:3.11-slim
#   STARGRAPH_IMAGE        the image name; default localhost/stargraph:<version>-<input hash>
#   STARGRAPH_DEBIAN_MIRROR  the mirror debootstrap uses; default: the first bookworm mirror of apt's sources
#   STARGRAPH_PYTHON       a Python with pip that resolves the wheels (any version); default python3
#
# Prints the image name as its last line of standard output; progress and the image size go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

CACHE_ROOT="${STARGRAPH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stargraph}"
OUT="$CACHE_ROOT/image"
SUITE=bookworm
# The Python of both bases (bookworm's python3 and python:3.11-slim); the wheels are resolved for it.
PYTHON_VERSION=3.11
GLIBC_MINOR=36  # bookworm's glibc 2.36: the newest manylinux wheels the image can load
HOST_PYTHON="${STARGRAPH_PYTHON:-python3}"
# This machine refuses podman's default ulimits and crun its cgroup layout; the project's config avoids both.
export CONTAINERS_CONF="$REPO/hack/containers.conf"

say() { printf '[build-image] %s\n' "$*" >&2; }
die() { printf '[build-image] error: %s\n' "$*" >&2; exit 1; }

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
[ -n "$VERSION" ] || die "no version in pyproject.toml"

ensure_tools() {
  local missing=() tool
  for tool in podman runc debootstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]}; install them with your package manager"
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
  say "installing ${missing[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

debian_mirror() {
  if [ -n "${STARGRAPH_DEBIAN_MIRROR:-}" ]; then echo "$STARGRAPH_DEBIAN_MIRROR"; return; fi
  # apt's sources name the mirror this machine may reach (deb822 .sources files and one-line .list files).
  python3 - "$SUITE" <<'PY'
import glob, sys
suite = sys.argv[1]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(path).read().split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "#")):
                fields[key.strip().lower()] = value.split()
        if suite in fields.get("suites", []) and "deb" in fields.get("types", []) and fields.get("uris"):
            sys.exit(print(fields["uris"][0]))
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        continue
    for line in lines:
        words = [w for w in line.split("#")[0].split() if not w.startswith("[")]
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            sys.exit(print(words[1]))
sys.exit(f"no '{suite}' mirror in apt's sources; set STARGRAPH_DEBIAN_MIRROR")
PY
}

# The local base: debootstrap's minbase plus Python, imported as an image. The root filesystem is kept as a tarball
# in the cache, so a wiped podman store costs an import, not another debootstrap.
local_base() {
  local mirror key name tarball root started
  mirror=$(debian_mirror) || die "could not find a Debian mirror"
  key=$(printf '%s %s python3,python3-venv' "$SUITE" "$mirror" | sha256sum | cut -c1-12)
  name="localhost/stargraph-base:$SUITE-$key"
  if podman image exists "$name"; then echo "$name"; return; fi
  tarball="$OUT/base/$SUITE-$key.tar"
  if [ ! -f "$tarball" ]; then
    mkdir -p "$OUT/base"
    root=$(mktemp -d "$OUT/base/.rootfs.XXXXXX")
    started=$(date +%s)
    say "debootstrap $SUITE from $mirror (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$root" "$mirror" >&2 \
      || { rm -rf "$root"; die "debootstrap failed (see above)"; }
    # What slim images leave out too: documentation, apt's downloaded lists and packages.
    rm -rf "$root"/usr/share/{doc,man,info} "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
    tar -C "$root" -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
    rm -rf "$root"
    say "base root filesystem ready in $(( $(date +%s) - started ))s: $tarball"
  fi
  podman import --quiet "$tarball" "$name" >/dev/null || die "podman import $tarball failed"
  echo "$name"
}

inputs_hash() {
  local base_id=$1
  {
    sha256sum Containerfile pyproject.toml README.md hack/build-image.sh hack/containers.conf
    find operator \( -name __pycache__ -o -name '*.egg-info' \) -prune -o -type f -print0 | sort -z | xargs -0 sha256sum
    echo "base $base_id"
  } | sha256sum | cut -c1-16
}

# The project's wheel, and every dependency as a wheel for CPython $PYTHON_VERSION on this architecture (whatever
# Python runs this script).
resolve_wheels() {
  local src=$1 wheels=$2 arch minor platforms=()
  "$HOST_PYTHON" -m pip --version >/dev/null 2>&1 \
    || die "$HOST_PYTHON has no pip; set STARGRAPH_PYTHON to a Python with pip"
  # Built from a copy: building in the worktree would leave build/ and egg-info directories behind.
  mkdir -p "$src"
  cp -r pyproject.toml README.md operator "$src/"
  "$HOST_PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$src" >&2 \
    || die "building the stargraph wheel failed"
  arch=$(uname -m)
  for minor in $(seq "$GLIBC_MINOR" -1 17); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
  "$HOST_PYTHON" -m pip download --quiet --dest "$wheels" --only-binary=:all: "${platforms[@]}" \
    --platform "manylinux2014_$arch" --python-version "$PYTHON_VERSION" --implementation cp \
    "$wheels"/stargraph-"$VERSION"-*.whl >&2 || die "resolving the dependencies as wheels failed"
}

ensure_tools
mkdir -p "$OUT"
# One build at a time: make and the test session may both ask for the image.
exec 9>"$OUT/.lock"
flock 9

if [ -n "${STARGRAPH_IMAGE_BASE:-}" ]; then
  BASE=$STARGRAPH_IMAGE_BASE
else
  BASE=$(local_base)
fi
# A base that is not pulled yet counts by its name (a tag moved on the registry goes unnoticed until it is pulled).
base_id=$BASE
podman image exists "$BASE" && base_id=$(podman image inspect --format '{{.Id}}' "$BASE")
HASH=$(inputs_hash "$base_id")
IMAGE="${STARGRAPH_IMAGE:-localhost/stargraph:$VERSION-$HASH}"
LABEL=io.stargraph.inputs
WORKTREE_LABEL=io.stargraph.worktree

report() {
  local bytes
  bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  say "$IMAGE: $(( bytes / 1000000 )) MB (base $BASE included)"
  echo "$IMAGE"
}

if [ "$(podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null || true)" = "$HASH" ]; then
  report
  exit 0
fi

started=$(date +%s)
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
say "resolving wheels for CPython $PYTHON_VERSION on the host"
resolve_wheels "$WORK/src" "$WORK/context/wheels"
say "building $IMAGE on $BASE"
# --layers=false: the hash above decides when to build; podman's layer cache would only keep every build's
# intermediate images.
podman build --quiet --layers=false --file Containerfile --build-arg "BASE=$BASE" --tag "$IMAGE" \
  --label "$LABEL=$HASH" --label "$WORKTREE_LABEL=$REPO" --label "org.opencontainers.image.version=$VERSION" \
  "$WORK/context" >&2 || die "podman build failed (see above)"
say "built in $(( $(date +%s) - started ))s"
# The images this worktree built before under the default name are stale now; one a container still uses stays.
new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
for id in $(podman images --no-trunc --quiet --filter "label=$WORKTREE_LABEL=$REPO" \
    --filter reference=localhost/stargraph); do
  [ "${id#sha256:}" = "$new_id" ] || podman rmi "$id" >/dev/null 2>&1 || true
done
report
