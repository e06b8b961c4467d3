#!/usr/bin/env bash
# Runs the benchmark with the end-to-end rows against the real Collector
# (the test build, tests/e2e/collector) over OTLP/gRPC and OTLP/HTTP side by
# side, as well as the loopback discard server's HTTP rows. The collector
# decodes every request and hands it to its debug exporter (basic
# verbosity), so those rows are the collector's rate when it is the slower.
#   grpc_rows.sh BUILD_DIR [bench arguments, e.g. --quick]
set -euo pipefail
build=$(cd "${1:?usage: grpc_rows.sh BUILD_DIR [--quick]}" && pwd)
shift
collector="$build/collector/otelcol-e2e/otelcol-e2e"
[ -x "$collector" ] || { echo "no collector at $collector (tests/e2e/collector/build.sh)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
grpc_port=$(free_port)
dir=$(mktemp -d)
cat >"$dir/config.yaml" <<YAML
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$http_port
      grpc:
        endpoint: 127.0.0.1:$grpc_port
exporters:
  debug:
    verbosity: basic
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
YAML
"$collector" --config="$dir/config.yaml" >"$dir/collector.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$grpc_port) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$http_port) 2>/dev/null; then break; fi
  sleep 0.1
done
OTELAGENT_BENCH_GRPC_ENDPOINT="http://127.0.0.1:$grpc_port" \
OTELAGENT_BENCH_HTTP_ENDPOINT="http://127.0.0.1:$http_port" \
  "$build/tests/otelagent_bench" "$@"
