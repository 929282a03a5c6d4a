"""The ``mqtt`` output (``--mqtt URL``): one JSON message per frame to ``PREFIX/<meter id>``, with
optional Home Assistant discovery. Needs paho-mqtt (``pip install 'wmbus-sdr[mqtt]'``)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from .base import utc_iso

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.receive import RxFrame
    from .base import SinkOptions


class MqttSink:
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

    @classmethod
    def from_options(cls, options: SinkOptions) -> MqttSink:
        if not options.mqtt_url:
            raise ValueError("--output mqtt needs --mqtt mqtt://HOST[:PORT][/PREFIX]")
        return cls(options.mqtt_url, discovery=options.ha_discovery)

    def __call__(self, frame: RxFrame, t: Telegram | None) -> None:
        if not frame.crc_ok:
            return
        meter = t.meter.id if t is not None else frame.telegram[4:8][::-1].hex()
        payload = {"mode": frame.mode, "telegram": frame.telegram.hex(), "rssi_dbfs": round(frame.rssi_dbfs, 1),
                   "t_s": round(frame.t_s, 3)}
        if frame.time_ns is not None:
            payload["time"] = utc_iso(frame.time_ns)
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
