#!/usr/bin/env bash
# The fleet hub in one command (make hub-demo): mosquitto, two rtl_tcp streams of the bundled
# recording (the second 6 dB weaker, as a receiver farther away), two `wmbus-sdr rx --raw` edges
# publishing their frames undecrypted, and `wmbus-sdr hub` with SQLite and the example keys.
# Prints the dashboard URL; Ctrl-C stops everything. Everything runs on 127.0.0.1 on free ports
# (HUB_HTTP_PORT sets the dashboard's); files go to a temporary directory removed at the end.
# HUB_DEMO_SECONDS=N stops by itself after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH=$ROOT
MOSQUITTO=$(command -v mosquitto || true)
[ -z "$MOSQUITTO" ] && [ -x /usr/sbin/mosquitto ] && MOSQUITTO=/usr/sbin/mosquitto
if [ -z "$MOSQUITTO" ]; then
  echo "hub-demo: mosquitto is not installed (apt-get install mosquitto)" >&2
  exit 2
fi

WORK=$(mktemp -d -t wmbus-hub-demo-XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    "$PY" -c "import socket, sys; socket.create_connection(('127.0.0.1', $1), timeout=0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "hub-demo: nothing listens on port $1" >&2
  exit 1
}

MQTT_PORT=$(free_port)
HTTP_PORT=${HUB_HTTP_PORT:-$(free_port)}
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MQTT_PORT" >"$WORK/mosquitto.conf"
"$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>"$WORK/mosquitto.log" &
PIDS+=($!)
wait_port "$MQTT_PORT"

# The weaker copy of the recording: cu8 samples pulled towards the midpoint by half (-6 dB).
"$PY" - "$ROOT/recordings/example_868.625M_2M4" "$WORK/weak_868.625M_2M4" <<'EOF'
import json, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
x = np.fromfile(src + ".sigmf-data", dtype=np.uint8).astype(np.float32)
np.clip(np.rint((x - 127.5) * 0.5 + 127.5), 0, 255).astype(np.uint8).tofile(dst + ".sigmf-data")
meta = json.load(open(src + ".sigmf-meta"))
json.dump(meta, open(dst + ".sigmf-meta", "w"))
EOF

URL="mqtt://127.0.0.1:$MQTT_PORT/wmbus"
n=0
for spec in "north:$ROOT/recordings/example_868.625M_2M4.sigmf-meta" "south:$WORK/weak_868.625M_2M4.sigmf-meta"; do
  name=${spec%%:*}
  file=${spec#*:}
  port=$(free_port)
  "$PY" -m flowgraphs.cli serve-rtltcp --loop --port "$port" "$file" 2>"$WORK/rtltcp-$name.log" &
  PIDS+=($!)
  wait_port "$port"
  "$PY" -m flowgraphs.cli rx --device "rtltcp://127.0.0.1:$port" --rate 2.4e6 --output none \
    --mqtt "$URL" --raw --receiver-id "$name" 2>"$WORK/rx-$name.log" &
  PIDS+=($!)
  n=$((n + 1))
done

"$PY" -m flowgraphs.cli hub --mqtt "$URL" --db "sqlite:///$WORK/hub.db" --keys "$ROOT/recordings/keys.txt" \
  --http "127.0.0.1:$HTTP_PORT" --client-id "wmbus-hub-demo-$$" 2>"$WORK/hub.log" &
PIDS+=($!)
wait_port "$HTTP_PORT"
echo "hub-demo: $n receivers (north, south 6 dB weaker) -> mosquitto 127.0.0.1:$MQTT_PORT -> hub (SQLite)"
echo "hub-demo: dashboard at http://127.0.0.1:$HTTP_PORT/   (logs in $WORK; Ctrl-C stops)"
if [ -n "${HUB_DEMO_SECONDS:-}" ]; then
  sleep "$HUB_DEMO_SECONDS"
  curl -s "http://127.0.0.1:$HTTP_PORT/api/meters" 2>/dev/null | "$PY" -c '
import json, sys
for m in json.load(sys.stdin):
    rx = ", ".join("%s %.1f dBFS" % (r["id"], r["rssi"]) for r in m["receivers"])
    print("  %s %s %s: %s" % (m["id"], m["manufacturer"], m["device_type"], rx))' || true
  exit 0
fi
wait
