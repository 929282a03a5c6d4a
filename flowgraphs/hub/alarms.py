"""Each meter's transmit interval, learned from the gaps between its receptions, and the silence
alarm: raised when a meter has not been heard for ``missed`` intervals, cleared when it is heard
again. The alarm state lives in the store (so every hub instance sees it) and on MQTT
(``PREFIX/alarm/<meter>``, retained)."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmChange:
    meter: str
    active: bool
    now_ns: int
    last_seen_ns: int
    interval_s: float

    def to_json(self) -> dict:
        return {"meter": self.meter, "alarm": "silent", "active": self.active, "interval_s": round(self.interval_s, 3),
                "last_seen_ns": self.last_seen_ns, "at_ns": self.now_ns}


class IntervalTracker:
    """Median of the last ``history`` gaps between receptions of each meter, once ``min_gaps`` are
    known, each gap first divided by the whole number of shortest gaps it spans: a gap over missed
    receptions, or between two telegrams of which a hub (one of several ``--share`` instances or
    ``--workers``) got only every other one, counts as the intervals it spans. Gaps shorter than
    ``min_gap_s`` (repeats, copies past the merge window) are ignored."""

    def __init__(self, *, history: int = 8, min_gaps: int = 2, min_gap_s: float = 0.5, max_meters: int = 100_000):
        self.history = history
        self.min_gaps = min_gaps
        self.min_gap_s = min_gap_s
        self.max_meters = max_meters
        self._last: dict[str, int] = {}
        self._gaps: dict[str, deque] = {}

    def __len__(self) -> int:
        return len(self._last)

    def heard(self, meter: str, seen_ns: int) -> float | None:
        """Note a reception; the interval estimate (s) or None while still learning."""
        last = self._last.get(meter)
        if last is None and len(self._last) >= self.max_meters:  # bounded: forget the oldest meter
            oldest = next(iter(self._last))
            del self._last[oldest]
            self._gaps.pop(oldest, None)
        if last is None or seen_ns > last:
            self._last.pop(meter, None)
            self._last[meter] = seen_ns
        if last is not None:
            gap_s = (seen_ns - last) / 1e9
            if gap_s >= self.min_gap_s:
                self._gaps.setdefault(meter, deque(maxlen=self.history)).append(gap_s)
        return self.interval_s(meter)

    def interval_s(self, meter: str) -> float | None:
        gaps = self._gaps.get(meter)
        if gaps is None or len(gaps) < self.min_gaps:
            return None
        base = min(gaps)
        return statistics.median(gap / max(1, round(gap / base)) for gap in gaps)


def silence_changes(candidates: list[dict], now_ns: int, *, missed: float = 3.0) -> list[AlarmChange]:
    """Alarms to raise or clear from the store's meters (id, last_seen_ns, interval_s, alarm)."""
    out = []
    for row in candidates:
        interval = row["interval_s"]
        last = row["last_seen_ns"]
        if not interval or last is None:
            continue
        silent = now_ns - last > missed * interval * 1e9
        if silent != bool(row["alarm"]):
            out.append(AlarmChange(meter=row["id"], active=silent, now_ns=now_ns, last_seen_ns=last,
                                   interval_s=interval))
    return out
