#!/usr/bin/env bash
# Copies the canonical CRDs (crds/, generated from the API models) into the chart's crds/ directory. The copies are
# never edited by hand: tests/unit/test_chart.py fails when they differ from crds/, and this script fixes that.
#
#   python -m stargraph.api.crdgen --write crds/ && hack/sync-chart-crds.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=crds
TARGET=charts/stargraph/crds

shopt -s nullglob
sources=("$SOURCE"/*.stargraph.io.yaml)
[ ${#sources[@]} -gt 0 ] || { echo "[sync-chart-crds] error: no $SOURCE/*.stargraph.io.yaml" >&2; exit 1; }

mkdir -p "$TARGET"
# A CRD removed from crds/ must disappear from the chart too.
for copy in "$TARGET"/*.yaml; do
  [ -e "$SOURCE/$(basename "$copy")" ] || { rm -f "$copy"; echo "[sync-chart-crds] removed $copy" >&2; }
done
for crd in "${sources[@]}"; do
  cp "$crd" "$TARGET/"
done
echo "[sync-chart-crds] ${#sources[@]} CRDs copied to $TARGET" >&2
