"""One telegram heard by several receivers within a window -> one :class:`Reception`.

The window opens at the first copy (the hub's monotonic clock) and closes ``window_s`` later; a
copy arriving after that starts a new group, which the store folds into the same reception
(same meter, telegram and time bucket). ``bucket_of`` is that time bucket: the reception's time
divided by the window, the key that makes inserts idempotent across hub instances."""

from __future__ import annotations

from dataclasses import dataclass, field

from .ingest import Heard


@dataclass(frozen=True, slots=True, kw_only=True)
class Reception:
    telegram: bytes
    hearings: tuple[Heard, ...]
    time_ns: int  # the earliest edge time, else the hub's arrival time of the first copy
    bucket: int
    tokens: tuple = ()  # acknowledgements to send once stored (MQTT message ids)

    @property
    def best(self) -> Heard:
        """The receiver with the strongest signal (unknown RSSI counts as weakest)."""
        return max(self.hearings, key=lambda h: -1e9 if h.rssi_dbfs is None else h.rssi_dbfs)

    @property
    def meter_id(self) -> str:
        return self.hearings[0].meter_id


def bucket_of(time_ns: int, window_s: float) -> int:
    return time_ns // max(1, int(window_s * 1e9))


@dataclass(slots=True)
class _Group:
    deadline_s: float
    first_arrived_ns: int  # the hub's arrival time (wall clock) of the first copy
    hearings: dict[str, Heard] = field(default_factory=dict)
    tokens: list = field(default_factory=list)


class Merger:
    """Groups copies of the same canonical telegram; ``due(now)`` yields the closed groups."""

    def __init__(self, window_s: float = 2.0):
        if not window_s > 0:
            raise ValueError(f"merge window {window_s!r} s: must be > 0")
        self.window_s = window_s
        self._open: dict[bytes, _Group] = {}  # insertion order = deadline order

    def __len__(self) -> int:
        return len(self._open)

    def add(self, heard: Heard, now_s: float, token=None) -> bool:
        """Add a copy; True when it opened a new group (the first copy of its telegram in a window)."""
        group = self._open.get(heard.telegram)
        new = group is None
        if new:
            group = self._open[heard.telegram] = _Group(deadline_s=now_s + self.window_s,
                                                        first_arrived_ns=heard.arrived_ns, hearings={}, tokens=[])
        old = group.hearings.get(heard.receiver)
        # the same receiver twice (a repeat within the window): keep the stronger copy
        if old is None or (heard.rssi_dbfs or -1e9) > (old.rssi_dbfs or -1e9):
            group.hearings[heard.receiver] = heard
        if token is not None:
            group.tokens.append(token)
        return new

    def due(self, now_s: float | None, arrived_by_ns: int | None = None) -> list[Reception]:
        """Groups whose window closed by ``now_s`` (all of them with None). With ``arrived_by_ns``
        (the caller has added every copy that arrived at the hub before then), also the groups
        whose window after their first copy's arrival ends by then: a hub working through a
        backlog closes them without waiting a window more (``now_s`` counts from when a copy
        was added, ``arrived_by_ns`` from when it arrived)."""
        out = []
        window_ns = int(self.window_s * 1e9)
        while self._open:
            key, group = next(iter(self._open.items()))
            if now_s is not None and group.deadline_s > now_s and (
                    arrived_by_ns is None or group.first_arrived_ns + window_ns > arrived_by_ns):
                break
            del self._open[key]
            hearings = tuple(group.hearings.values())
            times = [h.time_ns for h in hearings if h.time_ns is not None]
            time_ns = min(times) if times else min(h.arrived_ns for h in hearings)
            out.append(Reception(telegram=key, hearings=hearings, time_ns=time_ns,
                                 bucket=bucket_of(time_ns, self.window_s), tokens=tuple(group.tokens)))
        return out
