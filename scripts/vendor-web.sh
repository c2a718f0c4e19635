#!/usr/bin/env bash
# Refresh the browser libraries the web pages serve from the package (no CDN at run time).
# Versions are pinned here and in the file names; each ships with its licence.
set -euo pipefail
HTMX=2.0.11
CHARTJS=4.6.1
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$here/src/cityweave/web/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund "htmx.org@$HTMX" "chart.js@$CHARTJS" >/dev/null)
rm -f "$out"/htmx-*.min.js "$out"/chart-*.umd.min.js
cp "$work/node_modules/htmx.org/dist/htmx.min.js" "$out/htmx-$HTMX.min.js"
cp "$work/node_modules/htmx.org/LICENSE" "$out/htmx.LICENSE.txt"
cp "$work/node_modules/chart.js/dist/chart.umd.min.js" "$out/chart-$CHARTJS.umd.min.js"
cp "$work/node_modules/chart.js/LICENSE.md" "$out/chart.js.LICENSE.md"
echo "vendored htmx $HTMX and Chart.js $CHARTJS into $out"
