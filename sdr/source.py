"""Live IQ sources: one base class, a bounded queue between the driver and the consumer.

A subclass implements ``_open()``, ``_read() -> bytes | None`` (raw samples of its format as bytes or
any other bytes-like object it will not write to again, None at the end of the stream) and
``_close()``. A reader thread fills a bounded queue; when the consumer falls behind, the oldest
chunk is dropped and counted, and the next chunk's ``start`` still advances by the dropped samples,
so sample indices stay true to time.

Block size (``read_blocks``): every read costs the same Python overhead whatever its length (two
threads woken, a queue hand-over, a conversion, a trip through the receiver): at 1.6 Msps a
device's usual 64 KiB reads come 50 times a second and cost 1.7 % of a core before any DSP. A
consumer that can wait (``rx``: 0.1 s) asks for bigger reads before ``start()``; a driver that can
(hook ``_set_block``) then hands over that much at a time, and a sample reaches the consumer up to
one block later. The live stations, which answer within milliseconds, keep the small reads.

After the device or the connection broke and came back (``recover``), the samples lost cannot be
counted from the stream: the new stream is placed on the sample clock instead. The reader thread
stamps every block's arrival; the earliest ``arrival - end / rate`` seen is when sample 0 was on
air, and the first chunk after the break starts at the index its arrival says (never before the
end of the last chunk).

The watchdog: a driver's ``_read()`` returns ``b""`` when nothing came within its own short
timeout. When no samples have come for ``stall_timeout_s`` the reader thread closes and reopens
the device (``recover``: counted in ``restarts``, logged with the device name); the new stream is
placed on the sample clock as after any break. After ``max_restarts`` reopens in a row that failed
or brought no samples, the stream ends with an ``SDRError`` naming the device, so that the service
manager (systemd) restarts the program. A driver call that never returns (a hung USB transfer) is
noticed by the consumer: it ends the stream the same way.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator

from .errors import SDRError
from .formats import BYTES_PER_SAMPLE, to_complex, whole_samples
from .types import IQChunk, StreamInfo

log = logging.getLogger(__name__)


class Source:
    fmt = "cu8"

    QUEUE_S = 4.0  # seconds of samples the queue holds before the oldest are dropped
    STALL_TIMEOUT_S = 5.0  # default: no samples for this long -> reopen the device
    MAX_RESTARTS = 5  # default: reopens in a row (failed, or bringing no samples) before giving up

    @classmethod
    def queue_chunks_for(cls, info: StreamInfo, read_bytes: int) -> int:
        """Queue length (in reads of ``read_bytes``) that holds QUEUE_S seconds: a consumer that
        stalls for a moment (a busy machine) catches up instead of losing samples. A backed-up
        driver delivers full reads, so counting reads counts seconds."""
        per_s = info.sample_rate_hz * BYTES_PER_SAMPLE[cls.fmt]
        return max(64, int(cls.QUEUE_S * per_s / max(read_bytes, 1)) + 1)

    @classmethod
    def block_bytes(cls, sample_rate_hz: float, seconds: float, *, multiple: int | None = None) -> int:
        """Bytes of at least ``seconds`` of samples (so that a block fills the receiver's batch of
        that length at once), a whole number of ``multiple`` bytes (default one sample; a USB driver
        may want its transfer size)."""
        multiple = multiple or BYTES_PER_SAMPLE[cls.fmt]
        return max(1, math.ceil(seconds * sample_rate_hz * BYTES_PER_SAMPLE[cls.fmt] / multiple - 1e-6)) * multiple

    def __init__(self, info: StreamInfo, *, queue_chunks: int = 64):
        self.info = info
        self._queue: queue.Queue = queue.Queue(maxsize=queue_chunks)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.dropped = 0  # samples lost (overflow, reconnect gaps)
        self.gaps = 0
        self.samples_read = 0
        self.error: BaseException | None = None
        self._clock0: float | None = None  # monotonic time at which sample 0 was on air (earliest estimate)
        self.stall_timeout_s = self.STALL_TIMEOUT_S
        self.max_restarts = self.MAX_RESTARTS
        self.restarts = 0  # successful reopens (after a stall or a lost device / connection)
        self.stalls = 0  # times no samples came for stall_timeout_s
        self._in_a_row = 0  # reopens since samples last came
        self._last_data: float | None = None  # monotonic time of the last samples read
        self._busy_since: float | None = None  # the reader thread is inside a driver call since then

    # --- for subclasses -----------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> bytes | None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _set_block(self, seconds: float) -> int | None:
        """Hook for :meth:`read_blocks`: read about ``seconds`` of samples at a time from now on;
        the bytes a read then brings (at most), or None when this driver's reads stay as they are."""
        return None

    def lost(self, samples: int) -> None:
        """A subclass reports samples that never arrived (e.g. during a reconnect)."""
        if samples > 0:
            self._queue_put(("gap", samples))

    def watchdog(self, *, stall_timeout_s: float | None = None, max_restarts: int | None = None) -> None:
        """Set the watchdog: reopen after ``stall_timeout_s`` without samples, give up (SDRError)
        after ``max_restarts`` reopens in a row that failed or brought no samples."""
        if stall_timeout_s is not None:
            if not stall_timeout_s > 0:
                raise ValueError(f"--stall-timeout {stall_timeout_s}: give a positive number of seconds")
            self.stall_timeout_s = float(stall_timeout_s)
        if max_restarts is not None:
            if max_restarts < 1:
                raise ValueError(f"--max-restarts {max_restarts}: give at least 1")
            self.max_restarts = int(max_restarts)

    def recover(self, reopen, retries: int | None, what: str, *, lost_from: float | None = None) -> bool:
        """After the stream broke: call ``reopen`` with back-off (0.5 s doubling to 8 s) up to
        ``retries`` times (default ``max_restarts``); the time without samples (since ``lost_from``,
        default now) becomes a counted gap, placed by the sample clock. False when stopping;
        SDRError naming the device when every attempt failed."""
        retries = self.max_restarts if retries is None else retries
        lost_from = time.monotonic() if lost_from is None else lost_from
        delay = 0.5
        for attempt in range(1, retries + 1):
            self._busy_since = time.monotonic() + delay  # waiting is not hanging
            if self._stop.wait(delay):
                return False
            try:
                reopen()
            except SDRError as err:
                log.warning("%s: reopen %d/%d failed: %s", self.info.source, attempt, retries, err)
                delay = min(delay * 2, 8.0)
                continue
            gap = int((time.monotonic() - lost_from) * self.info.sample_rate_hz)
            self.restarts += 1
            log.warning("%s: %s; reopened (restart %d), back after %.1f s (about %d samples lost)",
                        self.info.source, what, self.restarts, time.monotonic() - lost_from, gap)
            self._queue_put(("resync", gap))
            return True
        raise SDRError(f"{self.info.source}: {what} and {retries} attempts to reopen it failed; giving up")

    def _reopen(self) -> None:
        """Close and open the device again (the watchdog's remedy); a driver may do more."""
        self._close()
        self._open()

    def _stalled(self, silent_s: float) -> bool:
        """No samples for ``silent_s`` seconds (>= stall_timeout_s): reopen, or give up after
        ``max_restarts`` in a row. False when stopping."""
        self.stalls += 1
        self._in_a_row += 1
        if self._in_a_row > self.max_restarts:
            raise SDRError(f"{self.info.source}: no samples for {silent_s:.0f} s although reopened "
                           f"{self.max_restarts} times in a row; giving up (the device or server is stuck)")
        log.warning("%s: no samples for %.1f s; reopening the device (%d/%d)", self.info.source, silent_s,
                    self._in_a_row, self.max_restarts)
        return self.recover(self._reopen, None, f"stalled ({silent_s:.0f} s without samples)",
                            lost_from=self._last_data)

    # --- public ---------------------------------------------------------------------------------
    def __enter__(self) -> Source:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_blocks(self, seconds: float) -> None:
        """Have the driver hand over about ``seconds`` of samples per read (fewer, bigger reads cost
        less CPU; a sample waits up to that long for its block). Before :meth:`start`; a driver
        without the hook keeps its reads."""
        if not seconds > 0:
            raise ValueError(f"read_blocks({seconds}): give a positive number of seconds")
        if self._thread is not None:
            raise RuntimeError(f"{self.info.source}: read_blocks() after start()")
        read_bytes = self._set_block(seconds)
        if read_bytes:
            self._queue.maxsize = self.queue_chunks_for(self.info, read_bytes)  # still QUEUE_S seconds

    def start(self) -> None:
        if self._thread is None:
            self._open()
            self._thread = threading.Thread(target=self._pump, name=type(self).__name__, daemon=True)
            self._thread.start()

    def request_stop(self) -> None:
        """End the stream soon, from anywhere (a signal handler too): the iterator stops at its next
        item or within a second, the reader thread at its next read. ``close()`` still closes."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():  # stuck inside the driver: closing under it could crash the process
                log.warning("%s: the reader is stuck in the driver; leaving the device to the process exit",
                            self.info.source)
                return
        self._close()

    def __iter__(self) -> Iterator[IQChunk]:
        self.start()
        carry = b""
        start = 0
        pending_gap = 0  # samples known to be lost (overflow)
        resync: int | None = None  # a break of unknown length: its estimate, until the clock places it
        rate = self.info.sample_rate_hz
        bps = BYTES_PER_SAMPLE[self.fmt]
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                self._check_hung()
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                self.error = item
                raise item
            if item[0] in ("gap", "resync"):
                if item[0] == "gap":
                    pending_gap += item[1]
                else:
                    resync = max(resync or 0, item[1])
                self.gaps += 1
                carry = b""  # a partial sample across a gap is meaningless
                continue
            _, data, arrived = item
            if carry or len(data) % bps:
                whole, carry = whole_samples(carry + bytes(data), self.fmt)
                if not whole:
                    continue
            else:
                whole = data  # the usual case: whole samples, converted without a copy first
            n = len(whole) // bps
            if resync is not None:
                if self._clock0 is not None:
                    on_clock = int(round((arrived - self._clock0) * rate)) - n
                    pending_gap = max(pending_gap, on_clock - start)
                else:
                    pending_gap += resync
                resync = None
            if pending_gap:
                start += pending_gap
                self.dropped += pending_gap
            samples = to_complex(whole, self.fmt)
            t0 = arrived - (start + n) / rate
            self._clock0 = t0 if self._clock0 is None else min(self._clock0, t0)
            # the reader thread stamped the bytes' arrival: the consumer may take them much later
            wall = time.time_ns() - int((time.monotonic() - arrived) * 1e9)
            yield IQChunk(samples=samples, info=self.info, start=start, time_ns=wall, dropped=pending_gap,
                          arrived=arrived)
            pending_gap = 0
            start += n
            self.samples_read = start

    # --- internals ------------------------------------------------------------------------------
    def hang_limit_s(self) -> float:
        """A driver call that has not returned for this long is hung (a reopen attempt may take a
        connect timeout or two, so well above the stall timeout)."""
        return max(2 * self.stall_timeout_s, self.stall_timeout_s + 20.0)

    def _check_hung(self) -> None:
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            raise SDRError(f"{self.info.source}: the reader thread ended without a word (a driver bug: "
                           "its traceback is above)")
        since = self._busy_since
        if self._thread is None or since is None:
            return
        busy = time.monotonic() - since
        if busy > self.hang_limit_s():
            raise SDRError(f"{self.info.source}: the driver has not returned for {busy:.0f} s (device hung); "
                           "giving up so that the service manager can restart the receiver")

    def _queue_put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    old = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(old, tuple) and old[0] == "data":  # overflow: the oldest data goes, as a gap
                    self._queue.put_nowait(("gap", len(old[1]) // BYTES_PER_SAMPLE[self.fmt]))
                    log.warning("%s: consumer too slow, dropped %d samples", self.info.source,
                                len(old[1]) // BYTES_PER_SAMPLE[self.fmt])
                elif old is not None:
                    self._queue.put_nowait(old)

    def _pump(self) -> None:
        self._last_data = quiet_from = time.monotonic()
        try:
            while not self._stop.is_set():
                self._busy_since = time.monotonic()
                data = self._read()
                now = time.monotonic()
                self._busy_since = None
                if data is None:
                    break
                if len(data):
                    self._last_data = quiet_from = now
                    self._in_a_row = 0
                    self._queue_put(("data", data, now))
                elif now - quiet_from >= self.stall_timeout_s and not self._stop.is_set():
                    if not self._stalled(now - self._last_data):
                        break
                    quiet_from = time.monotonic()  # the next stall is counted from the reopen
        except SDRError as err:
            self._queue_put(err)
            return
        except OSError as err:
            self._queue_put(SDRError(f"{self.info.source}: {err}"))
            return
        self._queue_put(None)
