"""Fleet hub ingest: simulated receivers (the edge's raw JSON) into the hub, stored in SQLite and in
PostgreSQL. Half of the telegrams are OMS mode 5 (AES-CBC, decrypted by the hub), half plain; every
telegram is heard by ``--receivers-per-telegram`` receivers, so the hub merges, decrypts once,
decodes and stores one reception with every receiver's hearing.

Three figures per store:
  core   frames handed to the hub in-process (parse, merge, decrypt, decode, batch insert, commit)
  live   end to end: a publisher -> mosquitto (QoS 1) -> `wmbus-sdr hub` subprocess (its default
         --intake, or --intake / --workers as given) -> store, timed from the first publish to the last hearing in the
         store; the publisher (in this process, lean: pre-encoded QoS 1 PUBLISH packets of the edge's
         raw JSON on one MQTT 3.1.1 connection, every PUBACK read) takes CPU from the same two cores
  drain  end to end with the broker pre-loaded: the hub subscribes (persistent sessions), stops, every
         frame is published and queued at QoS 1, then the hub starts again; timed from its launch to
         the last hearing in the store (what a hub does after a restart, and its ingest capacity
         without a publisher on the same machine)

``--soak-minutes N``: 10 simulated receivers at a steady rate into a `wmbus-sdr hub` subprocess
(SQLite) for N minutes, printing the hub's RSS, the queue and the receptions stored over time.

    python benchmarks/hub_ingest.py [--frames 20000] [--no-postgres] [--no-mqtt] [--stores sqlite,postgresql]
                                    [--paths core,live,drain] [--intake N | --workers N]
    python benchmarks/hub_ingest.py --soak-minutes 30

PostgreSQL (Debian's initdb/pg_ctl) and mosquitto are started here on free ports, and stopped.

Looking inside (environment): HUB_BENCH_CPU=1 prints, for drain, the CPU seconds of each hub process,
of mosquitto and of the PostgreSQL server, and for live and drain the hearings stored over time;
HUB_BENCH_PROFILE=DIR samples the drain's hub processes with py-spy (raw stacks holding the GIL, in DIR);
HUB_BENCH_PG_LOG=FILE: PostgreSQL logs the statements slower than 100 ms, the log copied to FILE.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowgraphs.cli.hub import default_intake  # noqa: E402
from flowgraphs.hub.core import Hub  # noqa: E402
from flowgraphs.hub.store import open_store  # noqa: E402
from mbus.keys import KeyStore, parse_key  # noqa: E402
from mbus.telegram import decode, encode  # noqa: E402

KEY_HEX = "0102030405060708090a0b0c0d0e0f11"  # OMS Annex N example key (recordings/keys.txt, meter 12345678)
OMS_MODE5 = "2e4493157856341233037a2a0020255923c95aaa26d1b2e7493b013ec4a6f6d3529b520edff0ea6defc99d6d69ebf3"
PLAIN_GAS = "27446d1e22334455330372223344556d1e3303050000000c1427048502046d1e05593b02fd170000"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# HUB_BENCH_PG_LOG=FILE: PostgreSQL logs statements slower than 100 ms, the log copied to FILE at the end
_PG_LOG = " -c log_min_duration_statement=100" if os.environ.get("HUB_BENCH_PG_LOG") else ""


def telegrams(n: int, *, seed: int = 0, fixed_ids: bool = False) -> list[bytes]:
    """``n`` distinct telegrams: mode 5 re-encrypted for other ids and access numbers, and plain ones.
    With ``fixed_ids`` the same ``n`` meters every time (ids 20000000...), only the counters change."""
    key = parse_key(KEY_HEX)
    enc = decode(bytes.fromhex(OMS_MODE5), keys=KeyStore(default=key), frame_format=None)
    tpl = enc.layers[0]
    out = []
    for i in range(n):
        meter = 20_000_000 + i if fixed_ids else 10_000_000 + (seed * 7_919 + i) % 90_000_000
        acc = (seed + i // 2) & 0xFF if fixed_ids else (i // 2) & 0xFF
        id_bytes = bytes.fromhex(f"{meter:08d}")[::-1]
        if i % 2 == 0:
            address = dataclasses.replace(enc.link.address, id_bytes=id_bytes)
            layer = dataclasses.replace(tpl, acc=acc)
            out.append(encode(c_field=enc.link.c_field, address=address, layers=(layer,), payload=enc.payload,
                              key=key))
        else:
            t = bytearray.fromhex(PLAIN_GAS)
            t[4:8] = id_bytes
            t[11:15] = id_bytes
            t[19] = acc if fixed_ids else i & 0xFF
            t[23] = int(f"{seed % 100:02d}", 16) if fixed_ids else t[23]
            out.append(bytes(t))
    return out


def raw(telegram: bytes, receiver: str, rssi: float, time_text: str | None = None) -> bytes:
    return json.dumps({"v": 1, "receiver": receiver, "telegram": telegram.hex(), "mode": "T1", "format": "A",
                       "time": time_text, "time_ns": None, "sample": 0, "sample_rate_hz": 2.4e6, "rssi_dbfs": rssi,
                       "snr_db": 20.0, "freq_offset_hz": 1000.0, "chip_rate_hz": 100000.0, "channel_hz": 868.95e6,
                       "ppm": 1.0}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Mosquitto:
    def __init__(self, tmp: Path):
        exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
        if exe is None:
            raise RuntimeError("mosquitto is not installed")
        self.port = free_port()
        conf = tmp / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\n"
                        "max_inflight_messages 0\n")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Postgres:
    def __init__(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
        if not bins:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = bins[0]
        self.base = Path(tempfile.mkdtemp(prefix="wmbus-hub-bench-pg-"))
        self.prefix = []
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.base, "postgres")
            os.chmod(self.base, 0o755)
        self.data = self.base / "data"
        port = free_port()
        subprocess.run([*self.prefix, str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                        "postgres", "--no-sync"], check=True, capture_output=True)
        # durability as shipped (fsync on), a commit per batch
        subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"),
                        "-w", "-o", f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1{_PG_LOG}", "start"],
                       check=True, capture_output=True)
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def reset(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for table in ("receptions", "hearings", "readings", "meters", "meter_receivers", "receivers", "alarms"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")

    def stop(self) -> None:
        if _PG_LOG:
            shutil.copy(self.base / "log", os.environ["HUB_BENCH_PG_LOG"])
        for conn in _PG_COUNTERS.values():
            conn.close()
        _PG_COUNTERS.clear()
        subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def hearings_in(url: str) -> int:
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///"):], timeout=30)
        try:
            return conn.execute("SELECT COUNT(*) FROM hearings").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()
    import psycopg

    conn = _PG_COUNTERS.get(url)
    if conn is None or conn.closed:  # one connection for the polls: a new one costs the server a process
        conn = _PG_COUNTERS[url] = psycopg.connect(url, autocommit=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM hearings").fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return 0


_PG_COUNTERS: dict = {}


def cpu_s(pid: int) -> float:
    """User + system CPU time of a process (s), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_core(url: str, frames: list[tuple[bytes, str]]) -> tuple[float, float]:
    """(frames/s, frames per CPU-second of the hub) through the hub in-process, to the last commit."""
    store = open_store(url)
    hub = Hub(store, keys=KeyStore(default=parse_key(KEY_HEX)), window_s=0.2, hub_id="bench")
    c0 = time.process_time()
    t0 = time.perf_counter()
    for payload, receiver in frames:
        hub.submit("raw", payload, receiver)
        if hub.queue.qsize() >= 2000:
            hub.pump(timeout_s=0)
    while not hub.queue.empty():
        hub.pump(timeout_s=0)
    hub.flush()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    stored = store.counts()["hearings"]
    store.close()
    if stored != len(frames) or hub.rejects:
        raise RuntimeError(f"stored {stored} hearings of {len(frames)} frames, rejected {dict(hub.rejects)}")
    return len(frames) / elapsed, len(frames) / cpu


def _varint(n: int) -> bytes:
    """MQTT's remaining length (a variable byte integer)."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def _mqtt_string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def publish_packets(prefix: str, frames: list[tuple[bytes, str]]) -> list[bytes]:
    """Each frame as an MQTT 3.1.1 PUBLISH (QoS 1, packet ids 1, 2, ...) to ``PREFIX/raw/RECEIVER``:
    the lean publisher's pre-encoded packets (made before the clock starts)."""
    return [_mqtt_packet(0x32, _mqtt_string(f"{prefix}/raw/{receiver}") + ((i % 65535) + 1).to_bytes(2, "big")
                         + payload) for i, (payload, receiver) in enumerate(frames)]


IN_FLIGHT = 30000  # the lean publisher's unacknowledged publishes at most (packet ids are 16 bits)


def _publisher(port: int, packets: list[bytes]) -> None:
    """The simulated receivers, lean: the pre-encoded QoS 1 PUBLISH packets written to the broker in
    large writes on one MQTT 3.1.1 connection, every PUBACK read and counted before it returns (paho
    would spend ~70 us of the hub machine's CPU per frame making, queueing and tracking each message,
    where real receivers each run on their own machine)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connect = _mqtt_string("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _mqtt_string(
        f"bench-pub-{os.getpid()}-{time.time_ns()}")
    sock.sendall(_mqtt_packet(0x10, connect))
    connack = _read_exactly(sock, 4)
    if connack[0] != 0x20 or connack[3] != 0:
        raise RuntimeError(f"the broker refused the publisher: CONNACK {connack.hex()}")
    acked = 0
    done = threading.Condition()
    failure: list[str] = []

    def read_acks() -> None:
        nonlocal acked
        buf = b""
        try:
            while acked < len(packets):
                data = sock.recv(1 << 16)
                if not data:
                    raise RuntimeError("the broker closed the publisher's connection")
                buf += data
                whole = len(buf) - len(buf) % 4  # the broker sends us PUBACKs only: 40 02 id id
                if buf[:whole:4].count(0x40) != whole // 4:
                    raise RuntimeError(f"unexpected packet from the broker: {buf[:8].hex()}")
                buf = buf[whole:]
                with done:
                    acked += whole // 4
                    done.notify_all()
        except (OSError, RuntimeError) as err:
            failure.append(str(err))
            with done:
                done.notify_all()

    reader = threading.Thread(target=read_acks, name="bench-pub-acks", daemon=True)
    reader.start()
    step = 500
    for start in range(0, len(packets), step):
        with done:
            while start - acked >= IN_FLIGHT and not failure:
                done.wait(1)
        if failure:
            break
        sock.sendall(b"".join(packets[start:start + step]))
    reader.join(timeout=300)
    if failure or acked < len(packets):
        raise RuntimeError(f"publisher: {acked} of {len(packets)} acknowledged {failure}")
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            raise RuntimeError("the broker closed the connection")
        out += data
    return out


class HubProcess:
    """``wmbus-sdr hub`` as a subprocess (its own client id, so its persistent session outlives it)."""

    def __init__(self, broker: Mosquitto, url: str, tmp: Path, client_id: str, layout: tuple[str, ...]):
        self.log_path = tmp / f"hub-{time.time_ns()}.log"
        self.log = self.log_path.open("w")
        extra = list(layout)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "flowgraphs.cli", "hub", "--mqtt",
                                      f"mqtt://127.0.0.1:{broker.port}/b", "--db", url, "--key", KEY_HEX, "--window",
                                      "0.5", "--client-id", client_id, *extra], stderr=self.log, env=ENV)

    def profile(self, seconds: float) -> subprocess.Popen | None:
        """HUB_BENCH_PROFILE=DIR: py-spy samples the hub and its children for ``seconds`` (raw
        stacks in DIR, for flamegraph.pl or speedscope)."""
        out = os.environ.get("HUB_BENCH_PROFILE")
        if not out:
            return None
        return subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-s", "--gil", "-r", "250",
                                 "-f", "raw", "-d", str(int(seconds)), "-p", str(self.proc.pid), "-o",
                                 str(Path(out) / f"hub-{time.time_ns()}.txt")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def wait_subscribed(self) -> None:
        deadline = time.monotonic() + 120
        while "subscribed" not in self.log_path.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the hub did not start: " + self.log_path.read_text())
            time.sleep(0.05)

    def cpu_s(self) -> float:
        """CPU time of the hub and its worker or intake processes (s)."""
        return sum(self.cpu_each())

    def cpu_each(self) -> list[float]:
        """CPU time of the hub (first) and of each of its worker or intake processes (s)."""
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        out = []
        for pid in pids:
            try:
                out.append(cpu_s(pid))
            except (FileNotFoundError, ProcessLookupError):
                pass
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=120)
        self.log.close()


def _wait_stored(url: str, n: int, hub: HubProcess, t0: float) -> None:
    seen = []
    while (count := hearings_in(url)) < n:
        if time.perf_counter() - t0 > 600 or hub.proc.poll() is not None:
            raise RuntimeError(f"only {hearings_in(url)} of {n} stored")
        seen.append(f"{time.perf_counter() - t0:.1f}:{count}")
        time.sleep(0.05)
    if os.environ.get("HUB_BENCH_CPU"):
        print("stored over time (s:hearings):", " ".join(seen[::4]), file=sys.stderr)


def bench_mqtt(url: str, frames: list[tuple[bytes, str]], tmp: Path, *, layout: tuple[str, ...] = (),
               preload: bool = False) -> tuple[float, float]:
    """(frames/s, frames per CPU-second of the hub's processes), end to end through mosquitto.
    live: the publisher runs while the hub ingests, timed from the first publish to the last
    hearing stored. preload: the hub's persistent sessions are made, the hub stopped, every frame
    published and queued by the broker (QoS 1), then the hub started: timed from its launch (Python
    start-up, connecting, subscribing included) to the last hearing stored."""
    broker = Mosquitto(tmp)
    client_id = f"bench-{time.time_ns()}"
    hub = None
    try:
        if preload:
            first = HubProcess(broker, url, tmp, client_id, layout)
            first.wait_subscribed()
            first.stop()
            _publisher(broker.port, publish_packets("b", frames))
            others0 = _others_cpu_s(broker)
            hub = HubProcess(broker, url, tmp, client_id, layout)
            t0 = hub.started
            time.sleep(0.3)
            spy = hub.profile(len(frames) / 3000)
            _wait_stored(url, len(frames), hub, t0)
            elapsed = time.perf_counter() - t0
            each = hub.cpu_each()
            cpu = sum(each)
            if os.environ.get("HUB_BENCH_CPU"):
                others = [b - a for a, b in zip(others0, _others_cpu_s(broker), strict=True)]
                print(f"drain: {elapsed:.2f} s; CPU s of the hub's processes: {' + '.join(f'{c:.2f}' for c in each)}; "
                      f"mosquitto {others[0]:.2f}, postgres {others[1]:.2f}", file=sys.stderr)
            if spy is not None:
                spy.wait()
        else:
            hub = HubProcess(broker, url, tmp, client_id, layout)
            hub.wait_subscribed()
            packets = publish_packets("b", frames)
            c0 = hub.cpu_s()
            t0 = time.perf_counter()
            pub = threading.Thread(target=_publisher, args=(broker.port, packets))
            pub.start()
            _wait_stored(url, len(frames), hub, t0)
            elapsed = time.perf_counter() - t0
            cpu = hub.cpu_s() - c0
            pub.join()
    finally:
        if hub is not None:
            hub.stop()
        broker.stop()
    return len(frames) / elapsed, len(frames) / cpu


def _others_cpu_s(broker: Mosquitto) -> tuple[float, float]:
    """CPU time (s) of the broker and of every PostgreSQL server process on the machine."""
    pg = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            pg += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu_s(broker.proc.pid), pg


def fleet_frames(n_telegrams: int, per_telegram: int, seed: int) -> list[tuple[bytes, str]]:
    out = []
    for i, t in enumerate(telegrams(n_telegrams, seed=seed)):
        for r in range(per_telegram):
            rx = f"rx{(i + r) % 10}"
            out.append((raw(t, rx, -30.0 - 3 * r), rx))
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(minutes: float, tmp: Path, *, meters: int = 200, interval_s: float = 10.0, receivers: int = 10) -> None:
    """10 receivers, ``meters`` meters each sending every ``interval_s``, heard by 3 receivers each."""
    import paho.mqtt.client as mqtt

    broker = Mosquitto(tmp)
    db = tmp / "soak.db"
    log = (tmp / "hub.log").open("w")
    hub = subprocess.Popen([sys.executable, "-m", "flowgraphs.cli", "hub", "--mqtt", f"mqtt://127.0.0.1:{broker.port}/s",
                            "--db", f"sqlite:///{db}", "--key", KEY_HEX, "--window", "2"], stderr=log, env=ENV)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-pub")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    time.sleep(2)
    rate = meters / interval_s
    print(f"soak: {receivers} receivers, {meters} meters every {interval_s:.0f} s, 3 receivers per telegram "
          f"({3 * rate:.0f} frames/s), {minutes:g} min, SQLite")
    print(f"{'t (s)':>7} {'hub RSS (MB)':>13} {'frames sent':>12} {'hearings stored':>16}")
    t0 = time.monotonic()
    sent = 0
    k = 0
    next_print = t0
    try:
        while time.monotonic() - t0 < minutes * 60:
            for m, t in enumerate(telegrams(meters, seed=k, fixed_ids=True)):  # the same meters every round
                for r in range(3):
                    rx = f"rx{(m + r) % receivers}"
                    client.publish(f"s/raw/{rx}", raw(bytes(t), rx, -30.0 - 3 * r), qos=1)
                    sent += 1
                time.sleep(interval_s / meters)
                now = time.monotonic()
                if now >= next_print:
                    print(f"{now - t0:7.0f} {rss_mb(hub.pid):13.1f} {sent:12d} {hearings_in(f'sqlite:///{db}'):16d}",
                          flush=True)
                    next_print = now + 15
            k += 1
        time.sleep(4)
        print(f"{time.monotonic() - t0:7.0f} {rss_mb(hub.pid):13.1f} {sent:12d} {hearings_in(f'sqlite:///{db}'):16d}")
    finally:
        client.loop_stop()
        client.disconnect()
        hub.terminate()
        hub.wait(timeout=60)
        log.close()
        broker.stop()


PATHS = {"core": "frames handed to the hub in-process (one process: parse, merge, decrypt, decode, store)",
         "live": "publisher -> mosquitto (QoS 1) -> `wmbus-sdr hub` subprocess -> store, publishing while the hub "
                 "ingests; first publish to last hearing stored; the publisher is lean (the rx JSON pre-encoded "
                 "as QoS 1 PUBLISH packets, written in bulk, every PUBACK read; no paho)",
         "drain": "the same, the broker pre-loaded (hub stopped after subscribing, every frame queued in its "
                  "persistent sessions); hub launch to last hearing stored"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20000, help="raw frames per run (default 20000)")
    ap.add_argument("--receivers-per-telegram", type=int, default=2)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--stores", default="sqlite,postgresql", help="which stores (default sqlite,postgresql)")
    ap.add_argument("--no-mqtt", action="store_true")
    ap.add_argument("--paths", default="core,live,drain", help="which paths to time (default core,live,drain)")
    ap.add_argument("--workers", type=int, default=1, help="hub --workers N (default 1)")
    ap.add_argument("--intake", type=int, help="hub --intake N (default the hub's: 1)")
    ap.add_argument("--soak-minutes", type=float, help="run the soak instead")
    args = ap.parse_args()
    paths = [p for p in args.paths.split(",") if p and not (args.no_mqtt and p != "core")]
    if unknown := set(paths) - set(PATHS):
        ap.error(f"--paths: unknown {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="wmbus-hub-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.soak_minutes:
            soak(args.soak_minutes, tmp)
            return
        per = args.receivers_per_telegram
        n = args.frames // per
        stores = [s for s in args.stores.split(",") if s and not (args.no_postgres and s == "postgresql")]
        if unknown := set(stores) - {"sqlite", "postgresql"}:
            ap.error(f"--stores: unknown {', '.join(sorted(unknown))}")
        pg = Postgres() if "postgresql" in stores else None
        rows = []
        load_start = os.getloadavg()[0]
        try:
            for store in stores:
                for how in paths:
                    if store == "sqlite":
                        url = f"sqlite:///{tmp / f'{how}.db'}"
                    else:
                        pg.reset()
                        url = pg.url
                    frames = fleet_frames(n, per, seed=len(rows) + 1)
                    intake = 0 if args.workers > 1 else args.intake if args.intake is not None else default_intake(url)
                    layout = ("--workers", str(args.workers), "--intake", str(intake))
                    procs = "1" if how == "core" or (args.workers == 1 and not intake) else (
                        f"w{args.workers}" if args.workers > 1 else f"1+in{intake}")
                    if how == "core":
                        rate, per_cpu = bench_core(url, frames)
                    else:
                        rate, per_cpu = bench_mqtt(url, frames, tmp, layout=layout, preload=how == "drain")
                    rows.append((store, how, procs, len(frames), rate, per_cpu, os.getloadavg()[0]))
        finally:
            if pg is not None:
                pg.stop()
    target = {"sqlite": 2000, "postgresql": 5000}
    print(f"hub ingest: {per} receivers per telegram, half OMS mode 5 (decrypted), half plain; "
          f"{os.cpu_count()} cores, load average {load_start:.1f} at the start")
    print(f"{'store':<11} {'path':<5} {'procs':>7} {'frames':>7} {'frames/s':>9} {'frames/CPU-s':>13} {'target':>7} "
          f"{'load':>5}")
    for store, how, procs, count, rate, per_cpu, load in rows:
        print(f"{store:<11} {how:<5} {procs:>7} {count:7d} {rate:9.0f} {per_cpu:13.0f} {target[store]:7d} "
              f"{load:5.1f}")
    for how in paths:
        print(f"{how}: {PATHS[how]}")
    print("procs: the hub's processes: 1 (one), 1+inN (one core and N --intake processes), wN (--workers N)")
    print("frames/CPU-s: frames per second of CPU time of the hub's processes (the database server's, the "
          "broker's and the publisher's not counted); load: the 1-minute load average after the run")


if __name__ == "__main__":
    main()
