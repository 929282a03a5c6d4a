"""Output sinks: where frames go once received (and decoded), for ``rx`` and ``decode`` alike.

A sink is any callable ``sink(frame, telegram)`` taking an :class:`~flowgraphs.pipelines.receive.RxFrame` and
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

from .base import Sink, SinkFactory, SinkOptions, lines, utc_iso
from .inventory import Inventory, MeterStats
from .jsonl import frame_json, jsonl_event
from .rtlwmbus import rtlwmbus_event, rtlwmbus_sink


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


# the network sinks are imported when asked for (http.server, ssl and the HA tables are a
# tenth of the command-line start-up)
# and so is the text sink (its explanations: mbus.explain and mbus.wired, ~8 ms) when another is
_LAZY = {"MqttSink": ".mqtt", "MetricsSink": ".metrics", "influx_sink": ".influx", "influx_points": ".influx",
         "format_text": ".text", "text_event": ".text"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SINKS: dict[str, SinkFactory] = {
    "text": lambda options: lines(__getattr__("text_event"))(options),
    "jsonl": lines(jsonl_event),
    "rtlwmbus": rtlwmbus_sink,
    "mqtt": lambda options: __getattr__("MqttSink").from_options(options),
    "inventory": lambda options: Inventory(out=options.out),
    "influx": lambda options: __getattr__("influx_sink")(options),
    "metrics": lambda options: __getattr__("MetricsSink").from_options(options),
}

__all__ = ["SINKS", "Inventory", "MeterStats", "MetricsSink", "MqttSink", "Sink", "SinkFactory", "SinkOptions",
           "close_sinks", "format_text", "frame_json", "influx_points", "influx_sink", "jsonl_event", "lines",
           "open_sinks", "register_sink", "rtlwmbus_event", "rtlwmbus_sink", "text_event", "utc_iso"]
