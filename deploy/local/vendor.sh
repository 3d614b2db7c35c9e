#!/usr/bin/env bash
# Re-vendors the dashboard's chart library (uPlot) from the npm registry.
# The copied files are committed, so the dashboard never fetches anything at
# run time and `make run` needs no npm; run this only to upgrade. The tarball's
# hash is pinned so a re-run reproduces the committed files exactly.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VERSION="1.6.32"
SHA256="4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d"
DEST="$ROOT/stream/api/static/vendor"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$VERSION" >/dev/null)
echo "$SHA256  $work/uplot-$VERSION.tgz" | sha256sum --check --quiet
tar -xzf "$work/uplot-$VERSION.tgz" -C "$work"
mkdir -p "$DEST"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$DEST/"
cp "$work/package/LICENSE" "$DEST/uPlot.LICENSE.txt"
echo "vendored uPlot $VERSION into ${DEST#"$ROOT"/}"
