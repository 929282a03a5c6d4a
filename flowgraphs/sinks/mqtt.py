"""The ``mqtt`` output (``--mqtt URL``): one JSON message per frame, through a link that survives
broker restarts (:mod:`.mqtt_link`). Needs paho-mqtt (``pip install 'wmbus-sdr[mqtt]'``).

- decoded (default): ``PREFIX/<meter id>`` with the telegram, its records, the receiver id, UTC time
  and absolute sample; with ``--ha-discovery`` Home Assistant configs as well;
- ``--raw`` (the edge of a fleet): every CRC-valid frame undecrypted to ``PREFIX/raw/<receiver>``
  as :func:`raw_message` (the schema the hub reads), no keys needed.

The availability of the receiver is ``PREFIX/status/<receiver>``: ``online`` / ``offline``."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from .base import utc_iso
from .ha import HaDiscovery, ReceiverStats
from .mqtt_link import MqttLink, MqttSettings

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.receive import RxFrame
    from .base import SinkOptions

RAW_VERSION = 1


def raw_message(frame: RxFrame, receiver: str, *, ppm: float | None = None,
                dropped_samples: int | None = None) -> dict:
    """The ``PREFIX/raw/<receiver>`` message of one CRC-valid frame (schema version 1); ``ppm`` and
    ``dropped_samples`` are the receiver's latest health figures (None before its first status)."""
    return {"v": RAW_VERSION, "receiver": receiver, "telegram": frame.telegram.hex(), "mode": frame.mode,
            "format": frame.frame_format,
            "time": utc_iso(frame.time_ns) if frame.time_ns is not None else None, "time_ns": frame.time_ns,
            "sample": frame.sample, "sample_rate_hz": float(frame.sample_rate_hz),
            "rssi_dbfs": round(float(frame.rssi_dbfs), 2), "snr_db": round(float(frame.snr_db), 2),
            "freq_offset_hz": round(float(frame.freq_offset_hz), 1),
            "chip_rate_hz": round(float(frame.chip_rate_hz), 1),
            "channel_hz": float(frame.channel_hz), "ppm": ppm, "dropped_samples": dropped_samples}


class MqttSink:
    """Publishes each frame through an :class:`MqttLink` (started at once; the broker may come
    later). ``close()`` sends what is queued, publishes ``offline`` and keeps the link's figures
    for :meth:`summary`."""

    def __init__(self, settings: MqttSettings | str, *, discovery: bool = False, link: MqttLink | None = None,
                 forget_after_s: float | None = None):
        if isinstance(settings, str):
            settings = MqttSettings.from_url(settings)
        if discovery and settings.raw:
            raise ValueError("--ha-discovery announces decoded values; with --raw the hub announces them "
                             "(wmbus-sdr hub --ha-discovery)")
        self.settings = settings
        self.prefix = settings.prefix
        self.receiver = settings.receiver_id
        self.discovery = discovery
        self.ha = (HaDiscovery(prefix=self.prefix, receiver_id=self.receiver, forget_after_s=forget_after_s,
                               availability_topic=f"{self.prefix}/status/{self.receiver}")
                   if discovery else None)
        # HA says "online" on its birth topic when it (re)starts: every config again, sent from the
        # receive thread (HaDiscovery is not thread-safe; paho calls back on its own thread)
        self._reannounce = threading.Event()
        subs = [(self.ha.birth_topic, 1)] if self.ha is not None else []
        self.link = link or MqttLink(settings, subscriptions=subs, on_message=self._on_message).start()
        self._ppm: float | None = None  # the tuner error the receiver estimates (LiveStatus)
        self._dropped_samples: int | None = None  # samples the receiver lost so far (LiveStatus)
        self._last_frame_ns: int | None = None
        self._receiver_sent_s: float | None = None
        self.closed = None

    @classmethod
    def from_options(cls, options: SinkOptions) -> MqttSink:
        settings = getattr(options, "mqtt", None)
        if settings is None:
            if not options.mqtt_url:
                raise ValueError("--output mqtt needs --mqtt mqtt://HOST[:PORT][/PREFIX]")
            settings = MqttSettings.from_url(options.mqtt_url)
        return cls(settings, discovery=options.ha_discovery, forget_after_s=options.forget_after_s)

    @property
    def published(self) -> int:
        return self.link.stats().published

    def __call__(self, frame: RxFrame, t: Telegram | None) -> None:
        if not frame.crc_ok:
            return
        if frame.time_ns is not None:
            self._last_frame_ns = frame.time_ns
        if self.settings.raw:
            self.link.publish(self.settings.raw_topic, json.dumps(raw_message(frame, self.receiver, ppm=self._ppm,
                                                                              dropped_samples=self._dropped_samples)))
            return
        meter = t.meter.id if t is not None else frame.telegram[4:8][::-1].hex()
        payload = {"mode": frame.mode, "telegram": frame.telegram.hex(), "rssi_dbfs": round(frame.rssi_dbfs, 1),
                   "t_s": round(frame.t_s, 3), "receiver": self.receiver, "sample": frame.sample,
                   "time": utc_iso(frame.time_ns) if frame.time_ns is not None else None}
        if t is not None:
            payload.update(manufacturer=t.meter.manufacturer_code, id=t.meter.id, decryption=t.decryption,
                           records=[r.to_json() for r in t.records])
            if self.ha is not None:
                self._send(self.ha.on_telegram(t, heard_s=frame.t_s) + self.ha.due_forgets(frame.t_s))
                payload.update(self.ha.state(t))
        self.link.publish(f"{self.prefix}/{meter}", json.dumps(payload))
        self._check_reannounce()

    def on_status(self, status) -> None:
        """The live receiver's health (flowgraphs.pipelines.live.LiveStatus): the tuner error for the
        raw messages, and with discovery the receiver device's diagnostics about once a minute."""
        self._ppm = None if status.ppm is None else round(float(status.ppm), 2)
        self._dropped_samples = int(status.dropped_samples)
        self._check_reannounce()
        if self.ha is None:
            return
        if self._receiver_sent_s is not None and status.seconds - self._receiver_sent_s < 60 and not status.final:
            return
        self._receiver_sent_s = status.seconds
        self._send(self.ha.receiver(ReceiverStats(frames_per_minute=round(status.frames_per_min, 2),
                                                  dropped_samples=status.dropped_samples, freq_error_ppm=self._ppm,
                                                  last_frame_ns=self._last_frame_ns)))

    def _send(self, messages) -> None:
        for m in messages:
            self.link.publish(m.topic, m.payload, retain=m.retain)

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.ha is not None and topic == self.ha.birth_topic and payload.strip() == b"online":
            self._reannounce.set()

    def _check_reannounce(self) -> None:
        if self.ha is not None and self._reannounce.is_set():
            self._reannounce.clear()
            self._send(self.ha.reannounce())

    def summary(self) -> str:
        return self.link.summary()

    def close(self) -> None:
        if self.closed is None:
            self.closed = self.link.close()
