#!/usr/bin/env bash
# Builds the OpenTelemetry Collector used by the interop tests, with the Collector's own
# builder, from the pinned manifest otelcol-builder.yaml, and prints the binary's path.
#
#   tests/interop/build.sh                 # build if missing or out of date, print the path
#   tests/interop/build.sh --update-pins   # re-resolve otelcol/go.mod + go.sum (after a bump)
#
# Pins:
#   ./go.mod, ./go.sum                  the builder (a `tool` of this module)
#   ./otelcol-builder.yaml              the Collector's components, all at one release
#   ./otelcol/go.mod, ./otelcol/go.sum  the Collector's whole dependency graph
#
# A normal build never re-resolves anything: the builder generates the sources with
# --skip-get-modules next to the checked-in go.mod/go.sum and compiles them as they are
# (go build is -mod=readonly, so a missing pin fails loudly instead of drifting).
#
# Caching: everything goes under $INTEROP_CACHE (default: <repo>/target/interop). The
# binary is rebuilt only when the stamp (a hash of every pin file and of `go version`)
# changes; Go's own build and module caches make a rebuild after a small change fast.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${INTEROP_CACHE:-$repo/target/interop}"
mkdir -p "$cache"
log() { echo "[interop/build] $*" >&2; }

command -v go >/dev/null || { log "go is not installed"; exit 1; }

builder="$cache/bin/otelcol-builder"
src="$cache/otelcol-src"
bin="$src/otelcol-interop"
stamp_file="$cache/otelcol.stamp"

# The builder: built from this module's pins (go.mod `tool` line), cached by `go build`.
build_builder() {
    (cd "$here" && timeout 600 go build -o "$builder" go.opentelemetry.io/collector/cmd/builder)
}

# Every collector module in the manifest must be in otelcol/go.mod at the same version.
check_manifest_matches_pins() {
    local mod ver bad=0
    while read -r mod ver; do
        if ! grep -Eq "^[[:space:]]*${mod//./\\.} ${ver//./\\.}( |$)" "$here/otelcol/go.mod"; then
            log "manifest wants $mod $ver but otelcol/go.mod does not pin it: run $0 --update-pins"
            bad=1
        fi
    done < <(sed -nE 's/^[[:space:]]*(- )?gomod:[[:space:]]*([^ ]+) ([^ ]+).*/\2 \3/p' "$here/otelcol-builder.yaml")
    return $bad
}

if [[ "${1:-}" == "--update-pins" ]]; then
    build_builder
    rm -rf "$src"
    log "resolving the manifest's modules (go mod tidy in $src)"
    (cd "$cache" && timeout 900 "$builder" --config "$here/otelcol-builder.yaml" --skip-compilation >&2)
    cp "$src/go.mod" "$src/go.sum" "$here/otelcol/"
    rm -f "$stamp_file"
    log "updated $here/otelcol/go.mod and go.sum"
    exit 0
fi

check_manifest_matches_pins

stamp="$(cat "$here/go.mod" "$here/go.sum" "$here/otelcol-builder.yaml" \
    "$here/otelcol/go.mod" "$here/otelcol/go.sum" "$0" | sha256sum | cut -d' ' -f1) $(go version)"
if [[ -x "$bin" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
    log "collector up to date: $bin"
    echo "$bin"
    exit 0
fi

start=$(date +%s)
log "building the builder"
build_builder
log "generating and compiling the collector (a cold build takes a few minutes)"
rm -rf "$src"
mkdir -p "$src"
cp "$here/otelcol/go.mod" "$here/otelcol/go.sum" "$src/"
# The builder runs `go build` itself: keep the checked-in pins read-only.
(cd "$cache" && GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly" \
    timeout 1200 "$builder" --config "$here/otelcol-builder.yaml" --skip-get-modules >&2)
[[ -x "$bin" ]] || { log "the builder did not produce $bin"; exit 1; }
echo "$stamp" >"$stamp_file"
log "built $bin in $(($(date +%s) - start)) s"
echo "$bin"
