"""Live reception: source -> Receiver -> OMS stack -> outputs, with dedup and a meter inventory."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mbus.compact import FormatCache
from mbus.errors import DecodeError
from mbus.keys import KeyStore
from mbus.telegram import Telegram
from mbus.telegram import decode as decode_telegram

from .receive import Receiver, RxFrame

log = logging.getLogger(__name__)


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
    """Every meter heard, for `--inventory` and the end summary (sorted by RSSI, strongest first)."""

    def __init__(self):
        self.meters: dict[str, MeterStats] = {}

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

    def table(self) -> str:
        rows = sorted(self.meters.values(), key=lambda s: -max(s.rssi))
        lines = [f"{'meter':<14} {'type':<24} {'modes':<9} {'frames':>6}  {'RSSI min/mean/max dBFS':<24} decryption"]
        for s in rows:
            j = s.to_json()["rssi_dbfs"]
            lines.append(f"{s.manufacturer} {s.id:<10} {s.device_type[:24]:<24} {','.join(sorted(s.modes)):<9} "
                         f"{s.frames:>6}  {j['min']:>6.1f} {j['mean']:>6.1f} {j['max']:>6.1f}       {s.decryption}")
        return "\n".join(lines)


class Dedup:
    """The same telegram within ``window_s`` (repeaters, several receivers) is passed on once."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._seen: dict[bytes, tuple[float, int]] = {}
        self.suppressed = 0

    def first(self, telegram: bytes, t_s: float) -> bool:
        if self.window_s <= 0:
            return True
        for k in [k for k, (t0, _) in self._seen.items() if t_s - t0 > self.window_s]:
            del self._seen[k]
        seen = self._seen.get(telegram)
        if seen is not None:
            self._seen[telegram] = (seen[0], seen[1] + 1)
            self.suppressed += 1
            return False
        self._seen[telegram] = (t_s, 1)
        return True


Sink = Callable[[RxFrame, "Telegram | None"], None]


class IqSaver:
    """``--save-iq DIR``: the IQ snippet of each frame (preamble to end, with margins) as a SigMF
    recording (cf32) annotated with mode, format and telegram."""

    def __init__(self, directory: str, info, *, keep_s: float = 1.5, margin_s: float = 0.002):
        from pathlib import Path

        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.info = info
        self.keep = int(keep_s * info.sample_rate_hz)
        self.margin = int(margin_s * info.sample_rate_hz)
        self._chunks: list = []
        self.saved = 0

    def feed(self, chunk) -> None:
        self._chunks.append(chunk)
        while self._chunks and self._chunks[-1].end - self._chunks[0].end > self.keep:
            self._chunks.pop(0)

    def save(self, frame: RxFrame) -> None:
        import numpy as np

        from dsp.modes import MODES
        from sdr.file import write_sigmf

        mode = MODES.get(frame.mode)
        pre = int(2 * (mode.preamble_pairs if mode else 20) / (mode.chip_rate if mode else 1e5)
                  * self.info.sample_rate_hz) + self.margin
        a, b = frame.sample - pre, frame.end_sample + self.margin
        parts = [c for c in self._chunks if c.end > a and c.start < b]
        # only samples contiguous with the frame's own: a frame never spans a gap, its margin may
        while len(parts) > 1 and any(p.start != q.end for q, p in zip(parts, parts[1:], strict=False)):
            parts = parts[1:]
        if not parts:
            return
        x = np.concatenate([c.samples for c in parts])
        base = parts[0].start
        x = x[max(a - base, 0):b - base]
        start = max(a, base)
        name = f"{frame.mode}_{frame.telegram[4:8][::-1].hex()}_{frame.sample}"
        note = {"core:sample_start": frame.sample - start, "core:sample_count": frame.end_sample - frame.sample,
                "core:label": f"{frame.mode} {frame.frame_format}", "wmbus:mode": frame.mode,
                "wmbus:frame_format": frame.frame_format, "wmbus:telegram": frame.telegram.hex()}
        write_sigmf(self.dir / name, x.astype(np.complex64).tobytes(), fmt="cf32",
                    sample_rate_hz=self.info.sample_rate_hz, center_freq_hz=self.info.center_freq_hz,
                    annotations=[note], description=f"wmbus-sdr rx --save-iq, stream sample {start}")
        self.saved += 1


def for_seconds(source, seconds: float):
    """The source's chunks until ``seconds`` of signal have passed; opens and closes the source."""
    with source:
        for c in source:
            yield c
            if c.end >= seconds * source.info.sample_rate_hz:
                break


class ArrivalClock:
    """When samples reached us: each chunk's end sample with its monotonic arrival time, so the
    moment a frame ended on air can be placed in host time (the chunk that held its last chip
    arrived at t, (end - sample) / rate after that sample was on air). The arrival time is the one
    the source's reader thread stamped (``IQChunk.arrived``) when there is one — the consumer may
    take a chunk much later, while it decodes or waits to send a reply — else the time of marking."""

    def __init__(self, sample_rate_hz: float, keep: int = 256):
        self.rate = sample_rate_hz
        self.keep = keep
        self._marks: list[tuple[int, float]] = []

    def mark(self, chunk_end: int, arrived: float | None = None) -> None:
        self._marks.append((chunk_end, time.monotonic() if arrived is None else arrived))
        if len(self._marks) > self.keep:
            del self._marks[:self.keep // 2]

    def on_air(self, sample: int) -> float | None:
        """Monotonic time at which ``sample`` was on air, or None when it is older than the marks."""
        for end, t in self._marks:
            if end >= sample:
                return t - (end - sample) / self.rate
        return None


def run_live(chunks: Iterable, rx: Receiver, sinks: list[Sink], *, keys: KeyStore | None = None,
             dedup_s: float = 0.0, inventory: Inventory | None = None, on_status: Callable | None = None,
             status_every_s: float = 10.0, stop_after_s: float | None = None, save_iq: IqSaver | None = None) -> dict:
    """Drive the receiver from live chunks until the source ends (or ``stop_after_s`` of signal).

    Latency: for each frame, the time from its last chip arriving (estimated from the arrival time
    of the chunk that held it) to its output."""
    formats = FormatCache()
    dedup = Dedup(dedup_s)
    counts = {"frames": 0, "rejected": 0, "duplicates": 0}
    t0 = time.monotonic()
    cpu0 = time.process_time()
    last_status = t0
    dropped = 0
    latencies: list[float] = []
    clock = ArrivalClock(rx.info.sample_rate_hz)

    def handle(frame: RxFrame) -> None:
        t_end = clock.on_air(frame.end_sample)
        if t_end is not None:
            latencies.append(time.monotonic() - t_end)
        if not frame.crc_ok:
            counts["rejected"] += 1
            return
        if not dedup.first(frame.telegram, frame.t_s):
            counts["duplicates"] += 1
            return
        counts["frames"] += 1
        try:
            t = decode_telegram(frame.telegram, keys=keys, frame_format=None, formats=formats)
        except DecodeError as err:
            log.info("undecodable frame %s: %s", frame.telegram.hex(), err)
            t = None
        if inventory is not None:
            inventory.add(frame, t)
        if save_iq is not None:
            save_iq.save(frame)
        for sink in sinks:
            sink(frame, t)

    for chunk in chunks:
        dropped += chunk.dropped
        clock.mark(chunk.end, chunk.arrived)
        if save_iq is not None:
            save_iq.feed(chunk)
        for frame in rx.process(chunk):
            handle(frame)
        now = time.monotonic()
        if on_status is not None and now - last_status >= status_every_s:
            wall = now - t0
            on_status({"seconds": wall, "frames": counts["frames"], "frames_per_min": 60 * counts["frames"] / wall,
                       "meters": len(inventory.meters) if inventory else None,
                       "cpu_percent": 100 * (time.process_time() - cpu0) / wall, "dropped": dropped})
            last_status = now
        if stop_after_s is not None and chunk.end >= stop_after_s * rx.info.sample_rate_hz:
            break
    for frame in rx.flush():
        handle(frame)
    wall = time.monotonic() - t0
    return {**counts, "dropped_samples": dropped, "seconds": wall,
            "cpu_percent": 100 * (time.process_time() - cpu0) / max(wall, 1e-9),
            "latency_max_s": max(latencies) if latencies else None,
            "latency_median_s": sorted(latencies)[len(latencies) // 2] if latencies else None}


def jsonl_sink(out) -> Sink:
    from .decode_cli import frame_json

    def sink(frame: RxFrame, t: Telegram | None) -> None:
        obj = frame_json(frame)
        obj["decoded"] = t.to_json() if t is not None else None
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        out.flush()
    return sink


def rtlwmbus_sink(out) -> Sink:
    from datetime import datetime

    from .decode_cli import rtlwmbus_line
    wall0 = datetime.now()

    def sink(frame: RxFrame, t: Telegram | None) -> None:
        out.write(rtlwmbus_line(frame, wall0) + "\n")
        out.flush()
    return sink


def text_sink(out) -> Sink:
    from .telegram_cli import format_text

    def sink(frame: RxFrame, t: Telegram | None) -> None:
        out.write(f"{frame.t_s:9.3f} s  {frame.mode}-{frame.frame_format}  RSSI {frame.rssi_dbfs:6.1f} dBFS  "
                  f"SNR {frame.snr_db:5.1f} dB  offset {frame.freq_offset_hz / 1e3:+6.1f} kHz\n")
        if t is not None:
            out.write(format_text(t) + "\n")
        out.write("\n")
        out.flush()
    return sink


class MqttSink:
    """One message per frame to ``PREFIX/<id>`` (JSON), optional Home Assistant discovery."""

    def __init__(self, url: str, *, discovery: bool = False):
        from urllib.parse import urlparse

        try:
            import paho.mqtt.client as mqtt  # noqa: PLC0415 - optional
        except ImportError:
            raise ValueError("--mqtt needs paho-mqtt: pip install 'wmbus-sdr[mqtt]'") from None
        u = urlparse(url)
        if u.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"--mqtt {url!r}: use mqtt://HOST[:PORT][/PREFIX]")
        self.prefix = (u.path or "/wmbus").strip("/") or "wmbus"
        self.discovery = discovery
        self._announced: set[str] = set()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"wmbus-sdr-{int(time.time())}")
        if u.username:
            self.client.username_pw_set(u.username, u.password)
        try:
            self.client.connect(u.hostname or "localhost", u.port or 1883, keepalive=30)
        except OSError as err:
            raise ValueError(f"--mqtt {url}: cannot connect to the broker: {err.strerror or err}") from None
        self.client.loop_start()
        self.published = 0

    def __call__(self, frame: RxFrame, t: Telegram | None) -> None:
        meter = t.meter.id if t is not None else frame.telegram[4:8][::-1].hex()
        payload = {"mode": frame.mode, "telegram": frame.telegram.hex(), "rssi_dbfs": round(frame.rssi_dbfs, 1),
                   "t_s": round(frame.t_s, 3)}
        if t is not None:
            payload.update(manufacturer=t.meter.manufacturer_code, id=t.meter.id, decryption=t.decryption,
                           records=[r.to_json() for r in t.records])
            if self.discovery and meter not in self._announced:
                self._announce(t)
        info = self.client.publish(f"{self.prefix}/{meter}", json.dumps(payload), qos=1)
        info.wait_for_publish(timeout=5)
        self.published += 1

    def _announce(self, t: Telegram) -> None:
        meter = t.meter.id
        for i, r in enumerate(t.records):
            if r.value is None or r.storage or r.tariff or r.subunit:
                continue
            uid = f"wmbus_{meter}_{r.quantity}_{i}"
            cfg = {"name": f"{t.meter.manufacturer_code} {meter} {r.quantity.replace('_', ' ')}", "unique_id": uid,
                   "state_topic": f"{self.prefix}/{meter}", "unit_of_measurement": r.unit or None,
                   "value_template": "{{ value_json.records[" + str(i) + "].value }}"}
            self.client.publish(f"homeassistant/sensor/{uid}/config", json.dumps(cfg), qos=1, retain=True)
        self._announced.add(meter)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
