"""A stand-in for the air that the live stations (gateway, meter) hear and transmit into, with its
own sample clock.

The stations keep host time (``time.monotonic`` / ``time.sleep``), as on a radio without device
timestamps. On a busy test machine host time is mostly time spent waiting for a CPU, so a station
that is fast enough misses its window because the scheduler ran someone else. Here the stations'
clock is the air's: :class:`AirClock` replaces the ``time`` module of the station modules, and

- a chunk of IQ is handed over at the moment its last sample was on air (plus a set hand-over
  latency) on that clock: when the station asks for it earlier, it waits (its clock jumps there);
  when later, it gets it at once (the samples queued while it worked);
- the station's own work costs it the CPU time it really takes (``time.process_time``), so a chain
  too slow for the window still misses it, but time it spent descheduled costs nothing;
- ``sleep(s)`` costs exactly ``s``;
- what the station hands to its TX sink is placed on the air at the sample of the clock's reading
  at hand-over.

The work of the stand-in itself (noise, placing bursts, decoding what a station sent) is not
charged to the station. Delays are then judged on the air's sample clock, the same whatever else
runs on the machine.
"""

from __future__ import annotations

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
        self._base = start_s
        self._cpu0 = time.process_time()

    def restart(self, start_s: float = 0.0) -> None:
        """Read ``start_s`` now, whatever ran before (a station's warm-up)."""
        self._set(start_s)

    def monotonic(self) -> float:
        return self._base + (time.process_time() - self._cpu0)

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
        self._base, self._cpu0 = t_s, time.process_time()

    def __getattr__(self, name: str):
        return getattr(time, name)


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
