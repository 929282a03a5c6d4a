"""Output sinks: where frames go once received (and decoded), for ``rx`` and ``decode`` alike.

A sink is any callable ``sink(frame, telegram)`` taking an :class:`~flowgraphs.receive.RxFrame` and
its decoded :class:`~mbus.telegram.Telegram` (None when the CRC failed or the bytes did not
decode); a class only when it must flush or close (``close()`` is called at the end). ``SINKS``
maps a name to a factory ``factory(options) -> sink``; adding an output is one function plus one
``register_sink`` line, and every command that takes ``--output`` offers it::

    def csv(frame, telegram):
        return f"{frame.sample},{frame.mode},{frame.telegram.hex()}"

    register_sink("csv", lines(csv))

Every frame carries its absolute ``sample``, the stream's ``sample_rate_hz`` and, when the source
has a clock, ``time_ns`` (UTC): the formats below print that time as ISO 8601 and print none when
there is no clock.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # this package is imported by light commands: no numpy at import time
    from mbus.telegram import Telegram

    from ..receive import RxFrame

Sink = Callable[["RxFrame", "Telegram | None"], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkOptions:
    """What a sink factory may need: the text stream for line outputs, the MQTT broker."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    mqtt_url: str | None = None
    ha_discovery: bool = False


SinkFactory = Callable[[SinkOptions], Sink]


def utc_iso(time_ns: int) -> str:
    """``2026-12-01T19:55:00.123456Z`` (microseconds, UTC)."""
    s, ns = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1000:06d}Z"


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


def register_sink(name: str, factory: SinkFactory) -> None:
    """Offer ``factory`` as ``--output NAME`` (replaces a sink of that name)."""
    if not name or "," in name or name == "none":
        raise ValueError(f"sink name {name!r}: give a word without commas (and not 'none')")
    SINKS[name] = factory


def open_sinks(names: list[str], options: SinkOptions) -> list[Sink]:
    """The sinks named (``none`` names nothing); ValueError naming an unknown one. Sinks opened
    before a failing one are closed again."""
    unknown = [n for n in names if n != "none" and n not in SINKS]
    if unknown:
        raise ValueError(f"--output {','.join(unknown)}: use {', '.join(SINKS)} or none")
    opened: list[Sink] = []
    try:
        for name in dict.fromkeys(n for n in names if n != "none"):
            opened.append(SINKS[name](options))
    except BaseException:
        close_sinks(opened)
        raise
    return opened


def close_sinks(sinks: list[Sink]) -> None:
    """Call ``close()`` on the sinks that have one (flush files, disconnect, print tables)."""
    for sink in sinks:
        close = getattr(sink, "close", None)
        if close is not None:
            close()


from .inventory import Inventory, MeterStats  # noqa: E402 - the built-in sinks use the names above
from .jsonl import frame_json, jsonl_event  # noqa: E402
from .mqtt import MqttSink  # noqa: E402
from .rtlwmbus import rtlwmbus_event  # noqa: E402
from .text import format_text, text_event  # noqa: E402

SINKS: dict[str, SinkFactory] = {
    "text": lines(text_event),
    "jsonl": lines(jsonl_event),
    "rtlwmbus": lines(rtlwmbus_event),
    "mqtt": MqttSink.from_options,
    "inventory": lambda options: Inventory(out=options.out),
}

__all__ = ["SINKS", "Inventory", "MeterStats", "MqttSink", "Sink", "SinkFactory", "SinkOptions", "close_sinks",
           "format_text", "frame_json", "jsonl_event", "lines", "open_sinks", "register_sink", "rtlwmbus_event",
           "text_event", "utc_iso"]
