"""The ``inventory`` output: every meter heard, with modes, frame count, RSSI and decryption
outcome; the table (strongest first) is written when the sink closes. ``rx`` keeps one always,
for its status line and summary (``--inventory`` prints it on stderr)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.receive import RxFrame


@dataclass(slots=True)
class MeterStats:
    manufacturer: str
    id: str
    device_type: str
    modes: set = field(default_factory=set)
    frames: int = 0
    rssi: list = field(default_factory=list)
    decryption: str = ""
    last_seen_s: float = 0.0

    def to_json(self) -> dict:
        r = self.rssi
        return {"manufacturer": self.manufacturer, "id": self.id, "device_type": self.device_type,
                "modes": sorted(self.modes), "frames": self.frames,
                "rssi_dbfs": {"min": round(min(r), 1), "mean": round(sum(r) / len(r), 1), "max": round(max(r), 1)},
                "decryption": self.decryption}


class Inventory:
    """Every meter heard (sorted by RSSI, strongest first); with ``out``, ``close()`` writes the table."""

    def __init__(self, out: TextIO | None = None):
        self.meters: dict[str, MeterStats] = {}
        self.out = out

    def add(self, frame: RxFrame, t: Telegram | None) -> None:
        if t is None:
            return
        m = t.meter
        key = f"{m.manufacturer_code}{m.id}"
        st = self.meters.get(key)
        if st is None:
            st = self.meters[key] = MeterStats(m.manufacturer_code, m.id, m.device_type_name)
        st.modes.add(frame.mode)
        st.frames += 1
        st.rssi.append(frame.rssi_dbfs)
        st.decryption = t.decryption
        st.last_seen_s = frame.t_s

    __call__ = add

    def table(self) -> str:
        rows = sorted(self.meters.values(), key=lambda s: -max(s.rssi))
        lines = [f"{'meter':<14} {'type':<24} {'modes':<9} {'frames':>6}  {'RSSI min/mean/max dBFS':<24} decryption"]
        for s in rows:
            j = s.to_json()["rssi_dbfs"]
            lines.append(f"{s.manufacturer} {s.id:<10} {s.device_type[:24]:<24} {','.join(sorted(s.modes)):<9} "
                         f"{s.frames:>6}  {j['min']:>6.1f} {j['mean']:>6.1f} {j['max']:>6.1f}       {s.decryption}")
        return "\n".join(lines)

    def close(self) -> None:
        if self.out is not None and self.meters:
            self.out.write(self.table() + "\n")
            self.out.flush()
