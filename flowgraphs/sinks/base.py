"""What every output sink shares: the sink type, the options its factory gets, line outputs, UTC time."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # this package is imported by light commands: no numpy at import time
    from mbus.telegram import Telegram

    from ..pipelines.receive import RxFrame
    from .mqtt_link import MqttSettings

Sink = Callable[["RxFrame", "Telegram | None"], None]

# the MQTT link's defaults, here so that the command line's options name them without importing the
# link (socket, ssl: ~13 ms of every start-up)
PASSWORD_ENV = "WMBUS_MQTT_PASSWORD"
DEFAULT_QUEUE = 10_000  # 30 s of outage at 300 messages/s, or hours at a house's few meters


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkOptions:
    """What a sink factory may need: the text stream for line outputs, the MQTT broker, the RSSI
    calibration (``cal_offset_db``: dBm = dBFS + offset, for outputs that claim dBm), the InfluxDB
    write URL and token file, the address to serve Prometheus metrics on."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    mqtt_url: str | None = None
    ha_discovery: bool = False
    mqtt: MqttSettings | None = None  # all the --mqtt-* options (built from mqtt_url when None)
    forget_after_s: float | None = None  # Home Assistant: remove a meter not heard for this long
    cal_offset_db: float = 0.0
    influx_url: str | None = None
    influx_token_file: str | None = None
    metrics_address: str | None = None


SinkFactory = Callable[[SinkOptions], Sink]


def utc_datetime(time_ns: int) -> datetime:
    """ns since the epoch as an aware UTC datetime, to the microsecond (truncated)."""
    s, ns = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(s, UTC) + timedelta(microseconds=ns // 1000)


_ISO_SECONDS: dict[int, str] = {}  # a second's date and time, formatted once (a busy hub prints thousands a second)


def utc_iso(time_ns: int) -> str:
    """``2026-12-01T19:55:00.123456Z`` (microseconds, truncated; UTC)."""
    s, ns = divmod(time_ns, 1_000_000_000)
    head = _ISO_SECONDS.get(s)
    if head is None:
        if len(_ISO_SECONDS) >= 4096:
            _ISO_SECONDS.clear()
        head = _ISO_SECONDS[s] = utc_datetime(s * 1_000_000_000).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{head}.{ns // 1000:06d}Z"


def lines(format_event: Callable[[RxFrame, Telegram | None], str | None]) -> SinkFactory:
    """A factory for a line output: ``format_event(frame, telegram)`` gives the text (None: nothing),
    written to ``options.out`` with a newline and flushed, so a pipe sees each frame at once."""

    def factory(options: SinkOptions) -> Sink:
        out = options.out

        def sink(frame: RxFrame, telegram: Telegram | None) -> None:
            text = format_event(frame, telegram)
            if text is not None:
                out.write(text + "\n")
                out.flush()
        return sink
    return factory
