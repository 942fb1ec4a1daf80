#!/usr/bin/env bash
# Refreshes the charting library the dashboard serves from the binary (uPlot, MIT, from npm).
# Run by hand when changing its version; the files are committed, so no build needs the network.
set -euo pipefail
version="${1:-1.6.32}"
dest="$(cd "$(dirname "$0")/.." && pwd)/shared/assets/dashboard/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$dest/"
cp "$work/package/LICENSE" "$dest/uPlot-LICENSE"
echo "$version" > "$dest/uPlot-VERSION"
echo "uPlot $version in $dest"
