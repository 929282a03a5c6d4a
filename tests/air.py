"""A stand-in for the air that the live stations (gateway, meter) hear and transmit into, with its
own sample clock.

The stations keep host time (``time.monotonic`` / ``time.sleep``), as on a radio without device
timestamps. On a busy test machine host time is mostly time spent waiting for a CPU, so a station
that is fast enough misses its window because the scheduler ran someone else. Here the stations'
clock is the air's: :class:`AirClock` replaces the ``time`` module of the station modules, and

- a chunk of IQ is handed over at the moment its last sample was on air (plus a set hand-over
  latency) on that clock: when the station asks for it earlier, it waits (its clock jumps there);
  when later, it gets it at once (the samples queued while it worked);
- the station's own work costs it the CPU time it really takes (the CPU clock of the thread that
  made the clock, where the station runs), so a chain too slow for the window still misses it, but
  time it spent descheduled costs nothing — also time spent waiting for the GIL while another
  thread of the process ran (a test's server thread, or one an earlier test left behind: with the
  process's CPU time, a GIL hand-off between the meter's clock reading and its sink's moved its
  frame by 8 ms on a busy machine);
- ``sleep(s)`` costs exactly ``s``;
- what the station hands to its TX sink is placed on the air at the sample of the clock's reading
  at hand-over.

The work of the stand-in itself (noise, placing bursts, decoding what a station sent) is not
charged to the station. Delays are then judged on the air's sample clock, the same whatever else
runs on the machine.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from sdr.types import IQChunk, StreamInfo

STATION_MODULES = ("flowgraphs.stations.gateway_live", "flowgraphs.stations.meter_live", "flowgraphs.pipelines.live")


class AirClock:
    """Seconds on the air's clock, offered with the names of the ``time`` module the stations use
    (``monotonic``, ``sleep``, ``perf_counter``); every other attribute is the real ``time``
    module's."""

    def __init__(self, start_s: float = 0.0):
        self._cpu = _thread_cpu_clock()
        self._base = start_s
        self._cpu0 = self._cpu()

    def restart(self, start_s: float = 0.0) -> None:
        """Read ``start_s`` now, whatever ran before (a station's warm-up)."""
        self._set(start_s)

    def monotonic(self) -> float:
        return self._base + (self._cpu() - self._cpu0)

    def monotonic_ns(self) -> int:
        return int(round(self.monotonic() * 1e9))

    def perf_counter(self) -> float:
        """A station timing its own work (the turnaround measurement) reads the same clock."""
        return self.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        self._set(self.monotonic() + seconds)

    def wait_until(self, t_s: float) -> None:
        """Block until ``t_s`` on this clock (nothing to do when it is already later)."""
        self._set(max(self.monotonic(), t_s))

    @contextmanager
    def stand_in_work(self):
        """Work of the stand-in, not of the station: the clock reads the same after it."""
        now = self.monotonic()
        try:
            yield
        finally:
            self._set(now)

    def _set(self, t_s: float) -> None:
        self._base, self._cpu0 = t_s, self._cpu()

    def __getattr__(self, name: str):
        return getattr(time, name)


def _thread_cpu_clock() -> Callable[[], float]:
    """CPU seconds of the calling thread, readable from any thread (the process's where the system
    has no per-thread CPU clocks)."""
    try:
        clock_id = time.pthread_getcpuclockid(threading.get_ident())
        time.clock_gettime(clock_id)
    except (AttributeError, OSError):
        return time.process_time
    return lambda: time.clock_gettime(clock_id)


def use_air_clock(clock: AirClock, setattr_: Callable | None = None) -> None:
    """Make ``clock`` the time of the station modules: with ``setattr_`` (a pytest monkeypatch's
    ``setattr``) undone after the test, else for the rest of the process (a spawned station)."""
    import importlib

    for name in STATION_MODULES:
        module = importlib.import_module(name)
        if not (getattr(module, "time", None) is time or isinstance(getattr(module, "time", None), AirClock)):
            raise AssertionError(f"{name} no longer keeps time through the time module: the air clock cannot reach it")
        (setattr_ or setattr)(module, "time", clock)


def paced_chunks(info: StreamInfo, clock: AirClock, duration_s: float, bursts: list, update: Callable[[], None],
                 rng, noise_rms: float, chunk: int = 8192, latency_s: float = 0.0,
                 before: Callable[[float, float], None] | None = None) -> Iterator[IQChunk]:
    """IQ chunks on ``clock`` from its 0: each handed over ``latency_s`` after its last sample was
    on air and stamped with that on-air time, as a live source's reader thread stamps arrival:
    noise plus every (start sample, samples) in ``bursts`` that overlaps the chunk. ``update()``
    runs before each chunk is made and may add bursts; ``before(end_s, handover_s)``, when given,
    runs first (a partner station's air waits there until it cannot place anything earlier)."""
    rate = info.sample_rate_hz
    for start in range(0, int(duration_s * rate), chunk):
        stop = start + chunk
        end_s = stop / rate
        with clock.stand_in_work():
            if before is not None:
                before(end_s, max(clock.monotonic(), end_s + latency_s))
            known = len(bursts)
            update()
            late = [s0 for s0, _ in bursts[known:] if s0 < start]
            if late:  # the stand-in's own fault: the air has already been handed over there
                raise AssertionError(f"bursts at samples {late} came after sample {start} was handed over")
            x = (noise_rms * (rng.standard_normal(chunk) + 1j * rng.standard_normal(chunk))).astype(np.complex64)
            for s0, y in bursts:
                lo, hi = max(s0, start), min(s0 + len(y), stop)
                if lo < hi:
                    x[lo - start:hi - start] += y[lo - s0:hi - s0]
        clock.wait_until(end_s + latency_s)
        yield IQChunk(samples=x, info=info, start=start, arrived=end_s)


class PacedRtlTcp:
    """An rtl_tcp stand-in with a sample clock that keeps running, whatever the connection does:
    sample k of ``payload`` (cu8) is on air at ``t0 + k / rate`` (t0: the first connection) and is
    sent when due, to the newest client (an earlier one is closed, as rtl_tcp serves one at a time);
    a new client gets the 12-byte header at once and the samples from "now" on.

    ``stall_at_s`` / ``stall_s``: from then on, for that long, nothing is sent to anyone while the
    connections stay open (a dongle that stopped delivering; the samples of that time are lost).
    ``drop_at_s`` / ``down_s``: the connection and the listening socket close for that long
    (clients cannot connect), then the server listens again on the same port.
    ``truth_ns(sample)``: the UTC time sample ``sample`` was on air."""

    def __init__(self, payload: bytes, rate: float, *, stall_at_s: float | None = None, stall_s: float = 0.0,
                 drop_at_s: float | None = None, down_s: float = 0.0, tick_s: float = 0.005):
        self.payload, self.rate = payload, rate
        self.stall_at_s, self.stall_s, self.drop_at_s, self.down_s = stall_at_s, stall_s, drop_at_s, down_s
        self.tick_s = tick_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.t0_mono: float | None = None
        self.t0_wall_ns: int | None = None
        self.connections = 0
        self.stalled = threading.Event()  # the stall began
        self.resumed = threading.Event()  # the stall is over
        self.dropped = threading.Event()
        self.done = threading.Event()  # the payload is played out (or stop() was called)
        self._lock = threading.Lock()
        self._conn = None
        self._sent = 0
        self._listening = threading.Event()
        self._listening.set()
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._send, daemon=True).start()

    @property
    def total(self) -> int:
        return len(self.payload) // 2

    def now_s(self) -> float:
        return 0.0 if self.t0_mono is None else time.monotonic() - self.t0_mono

    def truth_ns(self, sample: float) -> int:
        return self.t0_wall_ns + int(round(sample * 1e9 / self.rate))

    def stop(self) -> None:
        self.done.set()
        self._listening.clear()
        self.sock.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _accept(self) -> None:
        while not self.done.is_set():
            if not self._listening.wait(0.05):
                continue
            sock = self.sock
            try:
                sock.settimeout(0.2)
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.done.is_set():
                    return
                time.sleep(0.01)  # the listener closed for an outage: it comes back
                continue
            conn.settimeout(5)
            try:
                conn.sendall(b"RTL0" + struct.pack(">II", 5, 29))
            except OSError:
                conn.close()
                continue
            with self._lock:
                if self.t0_mono is None:
                    self.t0_mono, self.t0_wall_ns = time.monotonic(), time.time_ns()
                if self._conn is not None:
                    self._conn.close()
                self._conn = conn
                self.connections += 1
                self._sent = int(self.now_s() * self.rate)  # a new client gets "now" on

    def _send(self) -> None:
        while not self.done.is_set():
            time.sleep(self.tick_s)
            if self.t0_mono is None:
                continue
            now = self.now_s()
            k = min(int(now * self.rate), self.total)
            with self._lock:
                if self.drop_at_s is not None and not self.dropped.is_set() and now >= self.drop_at_s:
                    self.dropped.set()
                    self._listening.clear()
                    self.sock.close()
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    timer = threading.Timer(self.down_s, self._listen_again)
                    timer.daemon = True
                    timer.start()
                stalling = self.stall_at_s is not None and self.stall_at_s <= now < self.stall_at_s + self.stall_s
                if stalling:
                    self.stalled.set()
                elif self.stalled.is_set():
                    self.resumed.set()
                if stalling or self._conn is None:
                    self._sent = k  # nobody hears these samples
                elif k > self._sent:
                    try:
                        self._conn.sendall(self.payload[2 * self._sent:2 * k])
                    except OSError:  # the client went away
                        self._conn.close()
                        self._conn = None
                    self._sent = k
            if k >= self.total:
                self.stop()

    def _listen_again(self) -> None:
        if not self.done.is_set():
            self.sock = socket.create_server(("127.0.0.1", self.port))
            self._listening.set()
