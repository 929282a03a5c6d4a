"""The ``mqtt`` output (``--mqtt URL``): one JSON message per frame, through a link that survives
broker restarts (:mod:`.mqtt_link`). Needs paho-mqtt (``pip install 'wmbus-sdr[mqtt]'``).

- decoded (default): ``PREFIX/<meter id>`` with the telegram, its records, the receiver id, UTC time
  and absolute sample; with ``--ha-discovery`` Home Assistant configs as well;
- ``--raw`` (the edge of a fleet): every CRC-valid frame undecrypted to ``PREFIX/raw/<receiver>``
  as :func:`raw_message` (the schema the hub reads), no keys needed.

The availability of the receiver is ``PREFIX/status/<receiver>``: ``online`` / ``offline``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .base import utc_iso
from .mqtt_link import MqttLink, MqttSettings

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.receive import RxFrame
    from .base import SinkOptions

RAW_VERSION = 1


def raw_message(frame: RxFrame, receiver: str, *, ppm: float | None = None) -> dict:
    """The ``PREFIX/raw/<receiver>`` message of one CRC-valid frame (schema version 1)."""
    return {"v": RAW_VERSION, "receiver": receiver, "telegram": frame.telegram.hex(), "mode": frame.mode,
            "format": frame.frame_format,
            "time": utc_iso(frame.time_ns) if frame.time_ns is not None else None, "time_ns": frame.time_ns,
            "sample": frame.sample, "sample_rate_hz": float(frame.sample_rate_hz),
            "rssi_dbfs": round(float(frame.rssi_dbfs), 2), "snr_db": round(float(frame.snr_db), 2),
            "freq_offset_hz": round(float(frame.freq_offset_hz), 1),
            "chip_rate_hz": round(float(frame.chip_rate_hz), 1),
            "channel_hz": float(frame.channel_hz), "ppm": ppm}


class MqttSink:
    """Publishes each frame through an :class:`MqttLink` (started at once; the broker may come
    later). ``close()`` sends what is queued, publishes ``offline`` and keeps the link's figures
    for :meth:`summary`."""

    def __init__(self, settings: MqttSettings | str, *, discovery: bool = False, link: MqttLink | None = None):
        if isinstance(settings, str):
            settings = MqttSettings.from_url(settings)
        if discovery and settings.raw:
            raise ValueError("--ha-discovery announces decoded values; with --raw the hub announces them "
                             "(wmbus-sdr hub --ha-discovery)")
        self.settings = settings
        self.prefix = settings.prefix
        self.receiver = settings.receiver_id
        self.discovery = discovery
        self._announced: set[str] = set()
        self.link = link or MqttLink(settings).start()
        self.closed = None

    @classmethod
    def from_options(cls, options: SinkOptions) -> MqttSink:
        settings = getattr(options, "mqtt", None)
        if settings is None:
            if not options.mqtt_url:
                raise ValueError("--output mqtt needs --mqtt mqtt://HOST[:PORT][/PREFIX]")
            settings = MqttSettings.from_url(options.mqtt_url)
        return cls(settings, discovery=options.ha_discovery)

    @property
    def published(self) -> int:
        return self.link.stats().published

    def __call__(self, frame: RxFrame, t: Telegram | None) -> None:
        if not frame.crc_ok:
            return
        if self.settings.raw:
            self.link.publish(self.settings.raw_topic, json.dumps(raw_message(frame, self.receiver)))
            return
        meter = t.meter.id if t is not None else frame.telegram[4:8][::-1].hex()
        payload = {"mode": frame.mode, "telegram": frame.telegram.hex(), "rssi_dbfs": round(frame.rssi_dbfs, 1),
                   "t_s": round(frame.t_s, 3), "receiver": self.receiver, "sample": frame.sample,
                   "time": utc_iso(frame.time_ns) if frame.time_ns is not None else None}
        if t is not None:
            payload.update(manufacturer=t.meter.manufacturer_code, id=t.meter.id, decryption=t.decryption,
                           records=[r.to_json() for r in t.records])
            if self.discovery and meter not in self._announced:
                self._announce(t)
        self.link.publish(f"{self.prefix}/{meter}", json.dumps(payload))

    def _announce(self, t: Telegram) -> None:
        meter = t.meter.id
        for i, r in enumerate(t.records):
            if r.value is None or r.storage or r.tariff or r.subunit:
                continue
            uid = f"wmbus_{meter}_{r.quantity}_{i}"
            cfg = {"name": f"{t.meter.manufacturer_code} {meter} {r.quantity.replace('_', ' ')}", "unique_id": uid,
                   "state_topic": f"{self.prefix}/{meter}", "unit_of_measurement": r.unit or None,
                   "value_template": "{{ value_json.records[" + str(i) + "].value }}"}
            self.link.publish(f"homeassistant/sensor/{uid}/config", json.dumps(cfg), qos=1, retain=True)
        self._announced.add(meter)

    def summary(self) -> str:
        return self.link.summary()

    def close(self) -> None:
        if self.closed is None:
            self.closed = self.link.close()
