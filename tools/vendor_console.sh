#!/usr/bin/env bash
# Re-vendor the console's JavaScript and CSS from their npm packages at the
# pinned versions below (`make vendor-console`). Needs npm and the registry;
# the console itself never does (no Node, no CDN at run time).
#
# Each package is fetched with `npm pack` (which checks the registry's
# integrity hash), and only the files the console loads are kept, with the
# package's LICENSE, under moonbase/console/static/vendor/<name>/.
set -euo pipefail

HTMX=htmx.org@2.0.11
UPLOT=uplot@1.6.32

here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/moonbase/console/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

take() {  # take <package@version> <folder> <file in the package>...
  local spec="$1" folder="$2"
  shift 2
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  local tarball
  tarball="$(ls "$work"/*.tgz)"
  mkdir -p "$work/x" "$dest/$folder"
  tar xzf "$tarball" -C "$work/x"
  for file in "$@" LICENSE; do
    cp "$work/x/package/$file" "$dest/$folder/$(basename "$file")"
  done
  echo "$spec $(sha256sum "$tarball" | cut -d' ' -f1)"
  rm -rf "$work/x" "$tarball"
}

take "$HTMX" htmx dist/htmx.min.js
take "$UPLOT" uplot dist/uPlot.iife.min.js dist/uPlot.min.css
