"""The tuner's frequency error, learnt from the meters a receiver hears.

A dongle whose crystal is off by e ppm tunes to f_c (1 + e): every signal lands e * f_c below where it
should (35 kHz at 868.95 MHz for 40 ppm). Each meter's own crystal adds a few ppm of its own, so one
meter says little; the median over meters says what the tuner does. The figure follows ``rtl_sdr -p``:
**positive means the tuner is high** (signals are heard below their channels), and it is the value
to give as ``--ppm`` to correct it.

Each decoded frame's carrier is fitted on its known chips (:func:`dsp.measure.carrier_fit`, a few
ms a frame), at most ``per_meter`` frames a meter and then one every ``refresh_s`` seconds of
stream, so the cost stays bounded however long a capture or a live run is.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass


def _median(values) -> float:
    """``statistics.median`` (the middle value, or the mean of the two middle ones) without its
    import (statistics pulls in fractions, decimal and random: ~3 ms of every start-up)."""
    v = sorted(values)
    n = len(v)
    if n == 0:
        raise ValueError("median of no values")
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


MAX_METERS = 4096  # the least recently heard meter is forgotten beyond this
MIN_METERS_AUTO = 3  # rx --auto-ppm applies an estimate only from this many meters on


@dataclass(frozen=True, slots=True, kw_only=True)
class PpmEstimate:
    """The tuner's frequency error over the meters heard so far."""

    ppm: float  # rtl_sdr -p convention: + = the tuner is high, signals heard below their channels
    spread_ppm: float | None  # robust standard deviation over meters (1.4826 MAD); None with one meter
    meters: int  # meters that contributed
    frames: int  # frames fitted
    applied_ppm: float  # the correction already in force (included in ``ppm``)

    @property
    def settled(self) -> bool:
        """Enough meters that agree: at least MIN_METERS_AUTO, their spread under a third of the
        error and under 5 ppm (meters of their own far off, or too few, say nothing sure)."""
        return (self.meters >= MIN_METERS_AUTO and self.spread_ppm is not None
                and self.spread_ppm < min(5.0, abs(self.ppm) / 3))

    def describe(self) -> str:
        """``+40.2 ppm (spread 1.3 ppm over 7 meters, 21 frames)``."""
        spread = f"spread {self.spread_ppm:.1f} ppm over " if self.spread_ppm is not None else ""
        meters = f"{self.meters} meter" + ("s" if self.meters != 1 else "")
        frames = f"{self.frames} frame" + ("s" if self.frames != 1 else "")
        return f"{self.ppm:+.1f} ppm ({spread}{meters}, {frames})"

    def to_json(self) -> dict:
        return {"ppm": round(self.ppm, 2),
                "spread_ppm": round(self.spread_ppm, 2) if self.spread_ppm is not None else None,
                "meters": self.meters, "frames": self.frames, "applied_ppm": self.applied_ppm}


class PpmCalibrator:
    """Collects per-meter carrier offsets (Hz from the nominal channel, as measured after the
    correction in force) and turns them into a :class:`PpmEstimate`."""

    def __init__(self, center_freq_hz: float, *, applied_ppm: float = 0.0, per_meter: int = 8,
                 refresh_s: float = 60.0):
        if center_freq_hz <= 0:
            raise ValueError(f"centre frequency {center_freq_hz} Hz: give a positive frequency")
        self.center_freq_hz = float(center_freq_hz)
        self.applied_ppm = float(applied_ppm)
        self.per_meter = per_meter
        self.refresh_s = refresh_s
        self.frames = 0
        self._cached: tuple = (None, None)  # ((frames, applied ppm), the estimate then)
        self._meters: OrderedDict[bytes, deque[float]] = OrderedDict()  # meter -> its ppm values
        self._last_s: dict[bytes, float] = {}

    @staticmethod
    def meter_key(telegram: bytes) -> bytes:
        """M-field and A-field of a canonical telegram (L C M M A A A A V T): who sent it."""
        return bytes(telegram[2:10])

    def wants(self, telegram: bytes, t_s: float) -> bool:
        """Whether a frame of this meter at stream time ``t_s`` is worth fitting."""
        if len(telegram) < 10:
            return False
        key = self.meter_key(telegram)
        values = self._meters.get(key)
        if values is None or len(values) < self.per_meter:
            return True
        return t_s - self._last_s.get(key, float("-inf")) >= self.refresh_s

    def add(self, telegram: bytes, t_s: float, carrier_offset_hz: float, *, sample: int = 0) -> None:
        """Record one frame's carrier offset from its nominal channel (``sample``: where the frame
        is in the stream, for a subclass that keys fits by frame)."""
        key = self.meter_key(telegram)
        values = self._meters.pop(key, None)
        if values is None:
            values = deque(maxlen=self.per_meter)
            if len(self._meters) >= MAX_METERS:
                old, _ = self._meters.popitem(last=False)
                self._last_s.pop(old, None)
        # the residual offset is what the tuner's remaining error moves: r = -f_c (e - applied)
        values.append(self.applied_ppm - carrier_offset_hz / self.center_freq_hz * 1e6)
        self._meters[key] = values
        self._last_s[key] = t_s
        self.frames += 1

    def reapply(self, applied_ppm: float) -> None:
        """A new correction is in force: offsets measured from now on are residuals to it (the
        values kept are tuner errors already, so they stay)."""
        self.applied_ppm = float(applied_ppm)

    def estimate(self) -> PpmEstimate | None:
        key = (self.frames, self.applied_ppm)
        if self._cached[0] != key:  # the medians again only after a new frame
            self._cached = (key, self._estimate())
        return self._cached[1]

    def _estimate(self) -> PpmEstimate | None:
        if not self._meters:
            return None
        per_meter = [_median(v) for v in self._meters.values()]
        mid = _median(per_meter)
        spread = (1.4826 * _median(abs(p - mid) for p in per_meter)) if len(per_meter) > 1 else None
        return PpmEstimate(ppm=mid, spread_ppm=spread, meters=len(per_meter), frames=self.frames,
                           applied_ppm=self.applied_ppm)
