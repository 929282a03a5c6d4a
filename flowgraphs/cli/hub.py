"""``wmbus-sdr hub``: many receivers, one store, one dashboard (:mod:`flowgraphs.hub`)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
from collections import Counter
from contextlib import suppress

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

Using more than one core:
  --intake N  N processes take the raw frames from the broker (MQTT sessions ID-in1, ID-in2, ...; in a
              shared subscription when N > 1) and pass them to this one, which checks, merges,
              decrypts, decodes and stores them and sends back what to acknowledge. Default 1;
              0: this process reads the broker itself.
  --workers N N whole hub processes (sessions ID, ID-w1, ...) in one shared subscription (the --share
              group, else one named after the client id), each with its own store connection; the
              hearings of a telegram that reach two workers end on one reception (idempotent inserts),
              but both decode it. The first process also serves --http, reads --stdin and
              --lines-topic, the receivers' status and the silence alarms.

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
    p.add_argument("--intake", type=int, metavar="N",
                   help="MQTT intake processes feeding this one (default 1; 0: this process reads the broker)")
    p.add_argument("--workers", type=int, metavar="N", default=1,
                   help="whole hub processes in one shared subscription (default 1)")


def default_intake(db: str) -> int:
    """One intake process, with either store: the MQTT reading, JSON checking and republishing on the
    second core (benchmarks/hub_ingest.py, SQLite drain at load 2.6-3.6: 3300-5000 frames/s, 2500 without)."""
    return 1


def _share_group(args, client_id: str) -> str | None:
    """The shared subscription of the hub's workers: --share, else one of the hub's own."""
    if args.share or args.workers_n == 1:
        return args.share
    return "wmbus-sdr-" + re.sub(r"[^A-Za-z0-9_-]", "_", client_id)


def _new_hub(args, store, keys, *, main: bool):
    from ..hub.core import Hub

    return Hub(store, keys=keys, window_s=args.window, hub_id=args.hub_id or socket.gethostname(),
               missed_intervals=args.missed, alarm_check_s=args.alarm_check, alarms=main)


def _worker(args, index: int, client_id: str, conn) -> None:
    """Worker process ``index`` (>= 1) of ``--workers``: raw frames only, stored by its own
    connection; tells the first process when it is subscribed and, at the end, its counters."""
    from ..hub.bus import HubBus
    from ..hub.store import open_store

    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the first process, which stops us
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = os.getppid()
    store = None
    try:
        keys = key_store(args)
        store = open_store(args.db)
        hub = _new_hub(args, store, keys, main=False)
        bus = HubBus(args.mqtt, hub, client_id=f"{client_id}-w{index}", share=_share_group(args, client_id),
                     main=False)
    except ValueError as err:
        if store is not None:
            store.close()
        conn.send(("error", str(err)))
        return
    if args.ha_discovery:
        _wire_home_assistant(hub, bus)  # the same device set as the first process (same node id)
    worker = threading.Thread(target=hub.run, name=f"hub-worker-{index}", daemon=True)
    worker.start()
    bus.start()
    conn.send(("ready", None) if bus.connected.wait(30) else ("error", "no connection to the broker in 30 s"))
    while not stop.wait(0.5) and os.getppid() == parent:  # also ends when the first process is gone
        pass
    hub.stop()
    worker.join(timeout=30)
    bus.close()
    store.close()
    conn.send(("done", hub.status()))


class _Workers:
    """The worker processes 1..N-1 of ``--workers`` (spawned: no inherited threads or sockets). A
    worker that dies is started again: its persistent session holds its share of the frames."""

    def __init__(self, args, client_id: str):
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self._args = args
        self._client_id = client_id
        self.procs = [self._spawn(index) for index in range(1, args.workers_n)]

    def _spawn(self, index: int):
        mine, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker, args=(self._args, index, self._client_id, theirs),
                                 name=f"hub-worker-{index}")
        proc.start()
        theirs.close()
        return proc, mine

    def check(self) -> None:
        """Start again any worker that ended on its own (killed, crashed)."""
        for i, (proc, conn) in enumerate(self.procs):
            if not proc.is_alive():
                log.error("%s ended (exit code %s); starting it again", proc.name, proc.exitcode)
                conn.close()
                self.procs[i] = self._spawn(i + 1)

    def wait_ready(self, timeout_s: float = 60) -> None:
        for proc, conn in self.procs:
            if not conn.poll(timeout_s):
                raise ValueError(f"--workers: {proc.name} did not start in {timeout_s:.0f} s")
            what, detail = conn.recv()
            if what != "ready":
                raise ValueError(f"--workers: {proc.name}: {detail}")

    def stop(self) -> list[dict]:
        """Stop them all and return their counters (hub.status())."""
        out = []
        for proc, _ in self.procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker stores what it holds, then exits
        for proc, conn in self.procs:
            with suppress(EOFError, OSError):
                while conn.poll(90):
                    what, detail = conn.recv()
                    if what == "done":
                        out.append(detail)
                        break
            proc.join(timeout=30)
            if proc.is_alive():
                log.error("%s did not stop; killing it", proc.name)
                proc.kill()
                proc.join()
        return out


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


# The hub's threads hand the GIL to each other at this interval (Python's default is 5 ms): the
# worker decodes without pause, and the writer (or an intake's acknowledging thread) waited up to a
# whole interval for the GIL after each of its many short waits on the database or a pipe
SWITCH_INTERVAL_S = 0.0005


def run(args) -> int:
    from ..hub.store import open_store

    sys.setswitchinterval(SWITCH_INTERVAL_S)

    if not args.mqtt and not args.stdin:
        print("wmbus-sdr hub: give --mqtt URL and/or --stdin", file=sys.stderr)
        return 2
    hostname = socket.gethostname()
    store = bus = dashboard = workers = share = None
    intake_n = 0
    try:
        keys = key_store(args)
        if not args.window > 0 or not args.missed > 0 or not args.alarm_check > 0:
            raise ValueError("--window, --missed and --alarm-check must be > 0")
        if args.workers < 1 or (args.intake is not None and args.intake < 0):
            raise ValueError("--workers: give 1 or more; --intake: 0 or more")
        if (args.workers > 1 or args.intake) and not args.mqtt:
            raise ValueError("--workers and --intake are about the MQTT intake: give --mqtt")
        args.workers_n = args.workers
        if args.workers_n > 1 and args.intake:
            raise ValueError("--workers and --intake: give one of them")
        intake_n = (args.intake if args.intake is not None else default_intake(args.db)) \
            if args.mqtt and args.workers_n == 1 else 0
        client_id = args.client_id or f"wmbus-sdr-hub-{hostname}" + (f"-{args.share}" if args.share else "")
        own_group = "wmbus-sdr-" + re.sub(r"[^A-Za-z0-9_-]", "_", client_id)
        if intake_n:  # started first: their start-up overlaps opening the store and our own session
            from ..hub.intake import Intakes

            share = args.share or (own_group if intake_n > 1 else None)
            workers = intakes = Intakes(None, intake_n, url=args.mqtt, client_id=client_id, share=share,
                                        verbose=args.verbose, stale_groups=(own_group,))
        store = open_store(args.db)
        hub = _new_hub(args, store, keys, main=True)
        if args.mqtt:
            from ..hub.bus import HubBus

            bus = HubBus(args.mqtt, hub, client_id=client_id, share=_share_group(args, client_id),
                         lines_topic=args.lines_topic, raw=not intake_n,
                         stale_groups=tuple(g for g in (args.share, own_group) if g))
            if args.workers_n > 1:
                workers = _Workers(args, client_id)
                workers.wait_ready()
            if intake_n:
                intakes.attach(hub)
                intakes.wait_ready()
        if args.ha_discovery:
            if bus is None:
                raise ValueError("--ha-discovery announces over MQTT: give --mqtt")
            _wire_home_assistant(hub, bus)
        if args.http:
            from ..hub.web import Dashboard

            dashboard = Dashboard(hub, args.http)
    except ValueError as err:
        print(f"wmbus-sdr hub: {err}", file=sys.stderr)
        if workers is not None:
            workers.stop()
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
            topic, many = bus.raw_topic, f" ({args.workers_n} workers)" if args.workers_n > 1 else ""
            if intake_n:
                topic = f"$share/{share}/{bus.broker.prefix}/raw/+" if share else f"{bus.broker.prefix}/raw/+"
                many = f" ({intake_n} intake process{'es' if intake_n > 1 else ''})"
            print(f"wmbus-sdr hub: subscribed to {topic} on {bus.broker.host}:{bus.broker.port}{many}",
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
            if workers is not None:
                workers.check()
    except KeyboardInterrupt:
        pass
    if reader is not None and bus is None and dashboard is None:
        reader.join(timeout=5)
    others = workers.stop() if workers is not None and args.workers_n > 1 else []
    hub.stop()
    worker.join(timeout=30)  # its last commit's acknowledgements go to the intake processes, then they stop
    if intake_n:
        workers.stop()
    if bus is not None:
        bus.close()
    if dashboard is not None:
        dashboard.close()
    store.close()
    stats, rejected, split = Counter(), Counter(), []
    for s in (hub.status(), *others):
        stats.update(s["stats"])
        rejected.update(s["rejects"])
        split.append(str(s["stats"].get("frames_in", 0)))
    rejects = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none"
    per_worker = f" (workers: {' + '.join(split)})" if len(split) > 1 else ""
    print(f"wmbus-sdr hub: {stats.get('frames_in', 0)} frames in{per_worker}, {stats.get('stored', 0)} receptions "
          f"stored, rejected: {rejects}", file=sys.stderr)
    return 0
