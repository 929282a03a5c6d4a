#!/usr/bin/env bash
# System programs the tests talk to: an MQTT broker (mosquitto), an independent decoder (rtl_433), a
# browser that renders the conformance report and the hub dashboard (chromium), systemd-analyze (checks the
# service unit), PostgreSQL (the hub's store at scale), InfluxDB and Prometheus (the metrics outputs).
# As root they are installed with apt-get when missing; otherwise the exact command is printed and
# the tests that need them skip with a message.
set -uo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v rtl_433 >/dev/null 2>&1 || missing+=(rtl-433)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test_deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || echo "test_deps: apt-get failed; the tests that need ${missing[*]} will skip" >&2
else
    echo "test_deps: ${missing[*]} missing; tests that need them will skip. To run them: sudo apt-get install -y ${missing[*]}" >&2
fi
exit 0
