#!/usr/bin/env bash
# Interop: foundations' OTLP exporters (HTTP; gRPC for the internal pipeline) against a real
# OpenTelemetry Collector.
#
#   tests/interop/run.sh
#
# 1. builds the Collector (tests/interop/build.sh: pinned, cached) and the producer/checker
#    (`cargo build -p foundations-examples --example interop`);
# 2. starts the Collector on free loopback ports and temp Unix sockets: OTLP receivers over
#    HTTP/TCP, gRPC/TCP, HTTP on a Unix socket for the user pipeline and another for the
#    internal pipeline, all with max_request_body_size = INTEROP_BODY_LIMIT, forwarding
#    everything through its otlp_http exporter to the checker's test receiver. A
#    supervisor loop restarts the Collector after INTEROP_RESTART_GAP seconds whenever it
#    exits (the checker stops it once, mid-run, to prove nothing is lost);
# 3. runs the checker (examples/examples/interop.rs), which runs each scenario as a
#    producer process and checks what came out of the Collector;
# 4. stops everything on exit, whatever happens.
#
# Environment: INTEROP_SCENARIOS=tcp,unix,gzip,split,limit,restart,grpc,grpc_gzip,grpc_split,
# grpc_restart (a subset),
# INTEROP_KEEP=1 keeps the scratch directory (config, Collector log) for a look.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
log() { echo "[interop] $*" >&2; }
started=$(date +%s)

collector="$(timeout 1500 "$here/build.sh")"
log "building the producer/checker"
(cd "$repo" && timeout 1200 cargo build --quiet -p foundations-examples --example interop)
interop="$CARGO_TARGET_DIR/debug/examples/interop"

work="$(mktemp -d "${TMPDIR:-/tmp}/fnd-interop.XXXXXX")"
supervisor=""
checker=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    touch "$work/stop"
    [[ -n "$checker" ]] && kill "$checker" 2>/dev/null || true
    [[ -s "$work/collector.pid" ]] && kill "$(cat "$work/collector.pid")" 2>/dev/null || true
    [[ -n "$supervisor" ]] && kill "$supervisor" 2>/dev/null || true
    # The Collector drains and exits within a few seconds; never wait forever.
    for _ in $(seq 100); do
        [[ -s "$work/collector.pid" ]] && kill -0 "$(cat "$work/collector.pid")" 2>/dev/null || break
        sleep 0.1
    done
    [[ -s "$work/collector.pid" ]] && kill -KILL "$(cat "$work/collector.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ $rc -ne 0 && -f "$work/collector.log" ]]; then
        log "last lines of the Collector's log:"
        grep -v "\"otelcol.component.id\": \"debug\"" "$work/collector.log" | tail -n 40 | cut -c1-400 >&2
    fi
    if [[ -n "${INTEROP_KEEP:-}" ]]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
    log "done in $(($(date +%s) - started)) s (exit $rc)"
    exit $rc
}
trap cleanup EXIT INT TERM

read -r http_port grpc_port receiver_port <<<"$("$interop" free-ports 3)"
body_limit=$((1024 * 1024))
export INTEROP_WORK="$work"
export INTEROP_OTLP_HTTP="127.0.0.1:$http_port"
export INTEROP_OTLP_GRPC="127.0.0.1:$grpc_port"
export INTEROP_RECEIVER="127.0.0.1:$receiver_port"
export INTEROP_USER_SOCKET="$work/user.sock"
export INTEROP_INTERNAL_SOCKET="$work/internal.sock"
export INTEROP_COLLECTOR_PIDFILE="$work/collector.pid"
export INTEROP_BODY_LIMIT="$body_limit"

cat >"$work/collector.yaml" <<EOF
receivers:
  otlp:
    protocols:
      http:
        endpoint: $INTEROP_OTLP_HTTP
        max_request_body_size: $body_limit
      grpc:
        endpoint: $INTEROP_OTLP_GRPC
  otlp/user_uds:
    protocols:
      http:
        transport: unix
        endpoint: $INTEROP_USER_SOCKET
        include_metadata: true
        max_request_body_size: $body_limit
  otlp/internal_uds:
    protocols:
      http:
        transport: unix
        endpoint: $INTEROP_INTERNAL_SOCKET
        max_request_body_size: $body_limit
exporters:
  otlp_http/checker:
    endpoint: http://$INTEROP_RECEIVER
    compression: gzip
    retry_on_failure:
      enabled: true
  debug:
    verbosity: basic
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp, otlp/user_uds, otlp/internal_uds]
      exporters: [otlp_http/checker, debug]
EOF

# The supervisor: (re)starts the Collector until told to stop.
(
    while [[ ! -e "$work/stop" ]]; do
        "$collector" --config "$work/collector.yaml" >>"$work/collector.log" 2>&1 &
        echo $! >"$work/collector.pid"
        wait $! || true
        [[ -e "$work/stop" ]] && break
        echo "[supervisor] the Collector exited; restarting in ${INTEROP_RESTART_GAP:-2} s" >>"$work/collector.log"
        sleep "${INTEROP_RESTART_GAP:-2}"
    done
) &
supervisor=$!

log "Collector on http $INTEROP_OTLP_HTTP, grpc $INTEROP_OTLP_GRPC, unix $work/{user,internal}.sock; test receiver on $INTEROP_RECEIVER"
timeout 300 "$interop" &
checker=$!
status=0
wait "$checker" || status=$?
checker=""

# What the Collector itself complained about (its own log, errors and warnings only).
if grep -Eq $'\t(error|warn)\t' "$work/collector.log"; then
    log "the Collector logged warnings/errors:"
    grep -E $'\t(error|warn)\t' "$work/collector.log" | cut -c1-300 | sort | uniq -c | sort -rn | head -n 20 >&2
fi
exit "$status"
