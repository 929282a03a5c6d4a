"""``wmbus-sdr hub``: many receivers, one store, one dashboard (:mod:`flowgraphs.hub`)."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import socket
import sys
import threading

from .options import add_key_options, key_store

log = logging.getLogger(__name__)

HELP = """\
The fleet hub. Receivers at the edge publish every CRC-valid frame, undecrypted, with
`wmbus-sdr rx --mqtt URL --raw --receiver-id NAME` to PREFIX/raw/NAME; the hub subscribes
(QoS 1, a persistent session: what arrives while it is down is delivered when it is back),
merges the copies of a telegram heard by several receivers within --window seconds into one
reception (every receiver's RSSI, the best receiver named), decrypts with its key store,
decodes, stores receptions and readings (SQLite, or PostgreSQL for several hubs: inserts are
idempotent), learns each meter's interval and raises a silence alarm after --missed intervals
(PREFIX/alarm/<meter>, retained), republishes readings on PREFIX/meter/<id> and serves a
dashboard and JSON API at --http.

rtl_433 (-F json, its Wireless-MBus output) and rtl_wmbus lines join from stdin (--stdin) or an
MQTT topic (--lines-topic; the receiver is the topic's last level).

examples:
  wmbus-sdr hub --mqtt mqtt://localhost/wmbus --db sqlite:///hub.db --keys meters.keys --http 127.0.0.1:8080
  wmbus-sdr hub --mqtt mqtt://broker/wmbus --share hubs --client-id hub-a \\
      --db postgresql://hub@db/wmbus --keys meters.keys
  rtl_433 -f 868.95M -s 1.2M -F json | wmbus-sdr hub --stdin --receiver-id attic --db sqlite:///hub.db
"""


def add_parser(sub) -> None:
    p = sub.add_parser("hub", help="fleet hub: merge, decrypt, store, alarm, dashboard", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mqtt", metavar="URL",
                   help="broker and topic prefix: mqtt://HOST[:PORT][/PREFIX] (default prefix wmbus)")
    p.add_argument("--db", metavar="URL", default="sqlite:///wmbus-hub.db",
                   help="store: sqlite:///PATH (default sqlite:///wmbus-hub.db) or postgresql://USER@HOST:PORT/DB")
    add_key_options(p)
    p.add_argument("--http", metavar="HOST:PORT", help="serve the dashboard and /api/ here")
    p.add_argument("--share", metavar="GROUP", help="MQTT 5 shared subscription: hubs in one group split the frames")
    p.add_argument("--client-id", metavar="ID",
                   help="MQTT client id of the persistent session (default wmbus-sdr-hub-HOSTNAME[-GROUP]); "
                        "each hub instance needs its own")
    p.add_argument("--window", type=float, default=2.0, metavar="S",
                   help="merge copies of a telegram heard within this many seconds (default 2)")
    p.add_argument("--missed", type=float, default=3.0, metavar="N",
                   help="silence alarm after N missed intervals (default 3)")
    p.add_argument("--alarm-check", type=float, default=1.0, metavar="S",
                   help="check for silent meters every S seconds")
    p.add_argument("--lines-topic", metavar="TOPIC",
                   help="also take rtl_433 JSON / rtlwmbus lines from this MQTT topic")
    p.add_argument("--stdin", action="store_true", help="also take rtl_433 JSON / rtlwmbus lines from stdin")
    p.add_argument("--receiver-id", default="stdin", metavar="NAME", help="receiver name of the stdin lines")
    p.add_argument("--hub-id", metavar="NAME", help="this hub's name in the store (default the host name)")
    p.add_argument("--ha-discovery", action="store_true",
                   help="announce the fleet's meters to Home Assistant (MQTT discovery)")


def _wire_home_assistant(hub, bus) -> None:
    """One Home Assistant device per meter of the fleet (not one per receiver): the configs when a
    meter or a record is new, its readings merged into PREFIX/meter/<id>; on the hub's worker
    thread (HaDiscovery is not thread-safe)."""
    from ..sinks.ha import HaDiscovery

    node = re.sub(r"[^A-Za-z0-9_-]", "_", hub.hub_id)  # a host name may hold dots
    ha = HaDiscovery(prefix=bus.broker.prefix, receiver_id=node, meter_topic="{prefix}/meter/{id}")

    def announce_then_state(t) -> dict:
        # the configs of a new meter or record go out before the state message that carries them
        for m in ha.on_telegram(t):
            bus.client.publish(m.topic, m.payload, qos=1, retain=m.retain)
        return ha.state(t)
    hub.meter_fields.append(announce_then_state)


def run(args) -> int:
    from ..hub.core import Hub
    from ..hub.store import open_store

    if not args.mqtt and not args.stdin:
        print("wmbus-sdr hub: give --mqtt URL and/or --stdin", file=sys.stderr)
        return 2
    hostname = socket.gethostname()
    store = bus = dashboard = None
    try:
        keys = key_store(args)
        if not args.window > 0 or not args.missed > 0 or not args.alarm_check > 0:
            raise ValueError("--window, --missed and --alarm-check must be > 0")
        store = open_store(args.db)
        hub = Hub(store, keys=keys, window_s=args.window, hub_id=args.hub_id or hostname,
                  missed_intervals=args.missed, alarm_check_s=args.alarm_check)
        if args.mqtt:
            from ..hub.bus import HubBus

            client_id = args.client_id or f"wmbus-sdr-hub-{hostname}" + (f"-{args.share}" if args.share else "")
            bus = HubBus(args.mqtt, hub, client_id=client_id, share=args.share, lines_topic=args.lines_topic)
        if args.ha_discovery:
            if bus is None:
                raise ValueError("--ha-discovery announces over MQTT: give --mqtt")
            _wire_home_assistant(hub, bus)
        if args.http:
            from ..hub.web import Dashboard

            dashboard = Dashboard(hub, args.http)
    except ValueError as err:
        print(f"wmbus-sdr hub: {err}", file=sys.stderr)
        if store is not None:
            store.close()
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = threading.Thread(target=hub.run, name="hub-worker", daemon=True)
    worker.start()
    if dashboard is not None:
        dashboard.start()
        print(f"wmbus-sdr hub: dashboard at {dashboard.url}", file=sys.stderr, flush=True)
    if bus is not None:
        bus.start()
        if bus.connected.wait(15):
            print(f"wmbus-sdr hub: subscribed to {bus.raw_topic} on {bus.broker.host}:{bus.broker.port}",
                  file=sys.stderr, flush=True)
    reader = None
    if args.stdin:
        def read_stdin() -> None:
            for line in sys.stdin:
                if line.strip() and not line.startswith("#"):
                    hub.submit("line", line, args.receiver_id)
            if bus is None and dashboard is None:
                stop.set()
        reader = threading.Thread(target=read_stdin, name="hub-stdin", daemon=True)
        reader.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    if reader is not None and bus is None and dashboard is None:
        reader.join(timeout=5)
    hub.stop()
    worker.join(timeout=30)
    if bus is not None:
        bus.close()
    if dashboard is not None:
        dashboard.close()
    store.close()
    s = hub.status()
    rejects = ", ".join(f"{k} {v}" for k, v in sorted(s["rejects"].items())) or "none"
    print(f"wmbus-sdr hub: {s['stats'].get('frames_in', 0)} frames in, {s['stats'].get('stored', 0)} receptions "
          f"stored, rejected: {rejects}", file=sys.stderr)
    return 0
