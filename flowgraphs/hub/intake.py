"""``hub --intake N``: the hub's MQTT intake in N processes of their own, feeding one core.

paho-mqtt spends about as much CPU on a message (reading, parsing its properties, the PUBACK) as
the hub spends checking, merging, decrypting, decoding and storing it; in one process the two
share one core (even with paho reading and writing in bulk, :mod:`.paho_bulk`). An intake
process holds the MQTT session of the raw frames (client id
``ID-in1``, ``ID-in2``, ...; with more than one, or with ``--share``, in a shared subscription)
and passes the messages in batches through a pipe to the first process, which does the rest and
sends back, after each commit, the message ids to acknowledge. Nothing is acknowledged before it
is stored, as with one process: an intake that stops or dies leaves its unacknowledged messages
in its session, delivered again when it is back (the first process starts it again).

An intake also parses and checks each raw message (:func:`~.ingest.parse_raw_tuple`) and sends the
result, so the core only merges, decodes and stores; and the first intake publishes the readings
the core republishes (``PREFIX/meter/<id>``, alarms), so paho's sending work leaves the core too.

Pipe protocol: intake -> core, lists of ``(kind, payload, receiver, arrived_ns, (mid, qos))``, kind
"heard" (payload a :func:`~.ingest.heard_tuple`), "bad" (payload ``(reason, message)``: counted,
logged and acknowledged by the core like any bad input) or the bus's own kinds; core -> intake,
lists of ``(mid, qos)`` to acknowledge, and ``("publish", [(topic below the prefix, payload,
retain), ...])`` (a reading's payload a dict: the intake writes its JSON). In the core a token is
``(intake, generation, (mid, qos))``: an intake started again is a new connection, where the old message ids mean other
messages, so acknowledgements for an earlier generation are dropped (the broker delivers those
messages again; the idempotent store takes them once)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import suppress

from .ingest import BadInput, parse_raw_tuple

log = logging.getLogger(__name__)

BATCH_S = 0.005  # an intake sends what it took at least this often
BATCH_MAX = 2000


class _Forwarder:
    """Stands in for the :class:`~flowgraphs.hub.core.Hub` in an intake process: what the bus
    submits goes out in batches through ``conn``."""

    def __init__(self, conn):
        self.conn = conn
        self._items: list = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.ack = None
        self.publish = None

    def submit(self, kind: str, payload, receiver, token=None) -> None:
        arrived_ns = time.time_ns()
        if kind == "raw":
            try:
                kind, payload = "heard", parse_raw_tuple(payload, topic_receiver=receiver, arrived_ns=arrived_ns)
            except BadInput as err:
                kind, payload = "bad", (err.reason, str(err))
        with self._lock:
            self._items.append((kind, payload, receiver, arrived_ns, token))
            if len(self._items) >= BATCH_MAX:
                self._ready.set()

    def pump(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._ready.wait(BATCH_S)
            self._ready.clear()
            with self._lock:
                items, self._items = self._items, []
            if items:
                self.conn.send(items)  # blocks while the core is behind: the broker holds the rest


def intake_main(url: str, client_id: str, share: str | None, to_core, from_core, verbose: int,
                stale_groups: tuple[str, ...] = (), switch_interval_s: float = 0.005) -> None:
    """An intake process (spawned by :class:`Intakes`)."""
    from .bus import HubBus

    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), format="%(levelname)s: %(message)s")
    sys.setswitchinterval(switch_interval_s)  # as the first process (flowgraphs.cli.hub.SWITCH_INTERVAL_S)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the first process, which stops us
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = os.getppid()
    forwarder = _Forwarder(to_core)
    try:
        bus = HubBus(url, forwarder, client_id=client_id, share=share, main=False, stale_groups=stale_groups)
    except ValueError as err:
        to_core.send(("error", str(err)))
        return

    prefix = bus.broker.prefix
    to_json = json.JSONEncoder(check_circular=False).encode  # json.dumps' text; the core's dicts hold no cycles

    def acks() -> None:
        with suppress(EOFError, OSError):
            while True:
                message = from_core.recv()
                if isinstance(message, tuple):  # ("publish", [(subtopic, payload, retain), ...])
                    for subtopic, p, retain in message[1]:
                        bus.client.publish(f"{prefix}/{subtopic}", p if isinstance(p, str) else to_json(p), qos=1,
                                           retain=retain)
                    continue
                for mid, qos in message:
                    bus.client.ack(mid, qos)

    threading.Thread(target=acks, name="intake-acks", daemon=True).start()
    bus.start()
    if not bus.connected.wait(30):
        to_core.send(("error", "no connection to the broker in 30 s"))
        return
    to_core.send(("ready", None))
    sender = threading.Thread(target=forwarder.pump, args=(stop,), name="intake-send", daemon=True)
    sender.start()
    while not stop.wait(0.5) and os.getppid() == parent:  # also ends when the first process is gone
        pass
    stop.set()
    time.sleep(0.3)  # the last acknowledgements of the core's final commit
    bus.close()


class Intakes:
    """The intake processes of one hub: started (spawned: no inherited threads or sockets), fed
    into ``hub``, their acknowledgements routed back; one that dies is started again."""

    def __init__(self, hub, n: int, *, url: str, client_id: str, share: str | None, verbose: int = 0,
                 stale_groups: tuple[str, ...] = ()):
        """``hub`` None: the processes start now (their start-up overlaps the first process's, which
        opens its store and its own session meanwhile); :meth:`attach` gives the hub later, and
        nothing is passed on before."""
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self.hub = None
        self._attached = threading.Event()
        self._url = url
        self._client_id = client_id
        self._share = share
        self._verbose = verbose
        self._stale_groups = stale_groups
        self._stopping = False
        self.procs: list = [None] * n
        self._acks: list = [None] * n
        self._send_locks = [threading.Lock() for _ in range(n)]
        # a started-again intake has a new connection: message ids of the old one are not its to ack
        self._generation = [0] * n
        self._ready: dict[int, threading.Event] = {}
        self._errors: dict[int, str] = {}
        self._bus_ack = self._bus_publish = None
        for index in range(n):
            self._spawn(index)
        if hub is not None:
            self.attach(hub)

    def attach(self, hub) -> None:
        """Feed ``hub`` (after its bus, if any, is wired: acknowledgements and publishing for other
        than the intakes' sessions go through it)."""
        self._bus_ack = hub.ack  # the first process's own session (receivers' status, lines topic)
        self._bus_publish = hub.publish
        hub.ack = self.ack
        hub.ack_many = self.ack_many
        hub.publish = self.publish
        hub.publish_many = self.publish_many
        hub.publish_objects = True  # the intake writes the readings' JSON
        self.hub = hub
        self._attached.set()

    def _spawn(self, index: int) -> None:
        self._generation[index] += 1
        to_core_r, to_core_w = self._ctx.Pipe(duplex=False)
        from_core_r, from_core_w = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=intake_main, name=f"hub-intake-{index + 1}",
                                 args=(self._url, f"{self._client_id}-in{index + 1}", self._share, to_core_w,
                                       from_core_r, self._verbose, self._stale_groups, sys.getswitchinterval()))
        proc.start()
        to_core_w.close()
        from_core_r.close()
        self.procs[index] = proc
        self._acks[index] = from_core_w
        self._ready[index] = threading.Event()
        threading.Thread(target=self._read, args=(index, self._generation[index], to_core_r),
                         name=f"hub-intake-{index + 1}-read", daemon=True).start()

    def _read(self, index: int, generation: int, conn) -> None:
        with suppress(EOFError, OSError):
            while True:
                batch = conn.recv()
                if isinstance(batch, tuple):  # ("ready" | "error", detail)
                    if batch[0] == "error":
                        self._errors[index] = batch[1]
                    self._ready[index].set()
                    continue
                key = (index, generation)
                self._attached.wait()
                self.hub.submit_many([(kind, payload, receiver, arrived_ns, (*key, token))
                                      for kind, payload, receiver, arrived_ns, token in batch])
        conn.close()

    def wait_ready(self, timeout_s: float = 60) -> None:
        for index, proc in enumerate(self.procs):
            if not self._ready[index].wait(timeout_s):
                raise ValueError(f"--intake: {proc.name} did not start in {timeout_s:.0f} s")
            if index in self._errors:
                raise ValueError(f"--intake: {proc.name}: {self._errors[index]}")

    def ack(self, token) -> None:
        self.ack_many([token])

    def ack_many(self, tokens: list) -> None:
        by_index: dict[int, list] = {}
        for token in tokens:
            if len(token) == 3:  # (intake, generation, (mid, qos))
                index, generation, mid_qos = token
                if generation == self._generation[index]:  # else its connection is gone: redelivered anyway
                    by_index.setdefault(index, []).append(mid_qos)
            elif self._bus_ack is not None:  # (mid, qos) of the first process's session
                self._bus_ack(token)
        for index, mids in by_index.items():
            with self._send_locks[index], suppress(OSError):  # gone: its session delivers them again
                self._acks[index].send(mids)

    def publish(self, subtopic: str, payload: str, retain: bool) -> None:
        self.publish_many([(subtopic, payload, retain)])

    def publish_many(self, messages: list[tuple[str, str | dict, bool]]) -> None:
        """Publish through the first live intake process (its paho client does the sending); through
        the first process's own connection when none is alive."""
        for index, proc in enumerate(self.procs):
            if proc is None or not proc.is_alive() or not self._ready[index].is_set() or index in self._errors:
                continue
            try:
                with self._send_locks[index]:
                    self._acks[index].send(("publish", messages))
                return
            except OSError:
                continue
        if self._bus_publish is not None:
            for subtopic, payload, retain in messages:
                self._bus_publish(subtopic, payload if isinstance(payload, str) else json.dumps(payload), retain)

    def check(self) -> None:
        """Start again any intake that ended on its own (killed, crashed)."""
        for index, proc in enumerate(self.procs):
            if not self._stopping and not proc.is_alive():
                log.error("%s ended (exit code %s); starting it again", proc.name, proc.exitcode)
                with self._send_locks[index]:
                    self._acks[index].close()
                self._spawn(index)

    def stop(self) -> None:
        self._stopping = True
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the intake sends its last acknowledgements, disconnects
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                log.error("%s did not stop; killing it", proc.name)
                proc.kill()
                proc.join()
