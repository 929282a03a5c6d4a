"""The ``metrics`` output (``--metrics HOST:PORT``): Prometheus metrics served over HTTP at
``/metrics`` in the text exposition format 0.0.4.

- ``wmbus_frames_total{mode}`` (counter): frames with a good CRC passed to the outputs (after
  ``--dedup``), per link mode;
- ``wmbus_rejected_frames_total{reason}`` (counter): frames that failed, per reason — the
  receiver's own count with ``rx`` (the live loop's status), else those the sink was given
  (``decode --show-bad``);
- ``wmbus_dropped_samples_total`` (counter): IQ samples the source lost (``rx``);
- ``wmbus_frequency_error_ppm`` (gauge): the tuner's frequency error the meters show, as ``rx``'s
  status line gives it (rtl_sdr -p convention); absent until known (and with ``decode``);
- ``wmbus_source_restarts_total``, ``wmbus_source_stalls_total``, ``wmbus_duplicate_frames_total``
  (counters, ``rx``): device reopens, stalls of the sample stream, repeats suppressed by ``--dedup``;
- ``process_cpu_seconds_total`` (counter): CPU time of this process (all threads);
- ``wmbus_meter_rssi_dbfs{meter,manufacturer}`` and ``wmbus_meter_last_frame_timestamp_seconds``
  (gauges): each meter's last frame; ``wmbus_last_frame_timestamp_seconds``: the last frame of
  any meter (UTC from the sample clock; absent when the source has no clock); ``wmbus_meters``.

The format is written here rather than with ``prometheus_client``: it is a few lines of text, this
way ``--metrics`` needs nothing beyond the standard library (a Raspberry Pi install stays small),
and the sink keeps its numbers in one object instead of a process-wide registry (several
receivers or test runs in one process do not collide). The tests parse the output with
``prometheus_client``'s parser and ``promtool check metrics``.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.live import LiveStatus
    from ..pipelines.receive import RxFrame
    from .base import SinkOptions

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``:PORT`` (127.0.0.1) -> (host, port); ValueError naming it."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--metrics {text}: give HOST:PORT, e.g. 127.0.0.1:9108")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def number(x: float) -> str:
    """A sample value as the format writes it (Go's float syntax: NaN, +Inf, -Inf)."""
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(x)


def label_value(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def family(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> list[str]:
    """One metric family: HELP, TYPE and its samples (labels in the order given)."""
    out = [f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + 'n')}",
           f"# TYPE {name} {kind}"]
    for labels, value in samples:
        text = ",".join(f'{k}="{label_value(v)}"' for k, v in labels.items())
        out.append(f"{name}{{{text}}} {number(value)}" if text else f"{name} {number(value)}")
    return out


class Metrics:
    """The numbers, updated by the sink calls (and :meth:`on_status`), rendered on each scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames: Counter = Counter()  # mode -> frames passed on
        self.rejected_seen: Counter = Counter()  # reason -> bad frames given to the sink
        self.rejected_receiver: dict[str, int] | None = None  # reason -> count, from the live loop
        self.dropped_samples: int | None = None  # these from the live loop's status (rx)
        self.restarts: int | None = None
        self.stalls: int | None = None
        self.duplicates: int | None = None
        self.ppm: float | None = None
        self.meters: dict[tuple[str, str], tuple[float, int | None]] = {}  # (id, manufacturer) -> (rssi, time_ns)
        self.last_frame_ns: int | None = None

    def add(self, frame: RxFrame, telegram: Telegram | None) -> None:
        with self._lock:
            if not frame.crc_ok:
                self.rejected_seen[frame.reason] += 1
                return
            self.frames[frame.mode] += 1
            if telegram is not None:
                key = (telegram.meter.id, telegram.meter.manufacturer_code)
            else:
                key = (frame.telegram[4:8][::-1].hex() if len(frame.telegram) >= 8 else "", "")
            self.meters[key] = (frame.rssi_dbfs, frame.time_ns)
            if frame.time_ns is not None:
                self.last_frame_ns = max(frame.time_ns, self.last_frame_ns or frame.time_ns)

    def on_status(self, status: LiveStatus) -> None:
        """The live loop's figures: dropped samples, rejections by reason, restarts, stalls,
        duplicates and the tuner's ppm (kept while the estimate is unknown)."""
        with self._lock:
            self.dropped_samples = status.dropped_samples
            self.rejected_receiver = dict(status.rejected_reasons)
            self.restarts, self.stalls, self.duplicates = status.restarts, status.stalls, status.duplicates
            if status.ppm is not None and math.isfinite(status.ppm):
                self.ppm = float(status.ppm)

    def render(self) -> str:
        with self._lock:
            rejected = self.rejected_receiver if self.rejected_receiver is not None else self.rejected_seen
            out: list[str] = []
            out += family("wmbus_frames_total", "counter",
                          "Frames with a good CRC passed to the outputs, by link mode.",
                          [({"mode": m}, n) for m, n in sorted(self.frames.items())])
            out += family("wmbus_rejected_frames_total", "counter", "Frames that failed, by reason.",
                          [({"reason": r}, n) for r, n in sorted(rejected.items())])
            out += family("wmbus_dropped_samples_total", "counter", "IQ samples lost by the source.",
                          [] if self.dropped_samples is None else [({}, self.dropped_samples)])
            for name, help_text, value in (
                    ("wmbus_source_restarts_total", "Device reopens (watchdog, lost device or connection).",
                     self.restarts),
                    ("wmbus_source_stalls_total", "Times no samples came for the stall timeout.", self.stalls),
                    ("wmbus_duplicate_frames_total", "Repeated frames suppressed by --dedup.", self.duplicates)):
                out += family(name, "counter", help_text, [] if value is None else [({}, value)])
            out += family("wmbus_frequency_error_ppm", "gauge",
                          "The tuner's frequency error the meters show, in ppm (rtl_sdr -p convention).",
                          [] if self.ppm is None else [({}, round(self.ppm, 3))])
            out += family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                          [({}, round(time.process_time(), 3))])
            meters = sorted(self.meters.items())
            out += family("wmbus_meters", "gauge", "Meters heard since the start.", [({}, len(meters))])
            out += family("wmbus_meter_rssi_dbfs", "gauge", "Signal of the meter's last frame in dBFS.",
                          [({"meter": i, "manufacturer": m}, round(rssi, 2)) for (i, m), (rssi, _) in meters])
            out += family("wmbus_meter_last_frame_timestamp_seconds", "gauge",
                          "UTC time of the meter's last frame (sample clock), seconds since the epoch.",
                          [({"meter": i, "manufacturer": m}, t / 1e9) for (i, m), (_, t) in meters if t is not None])
            out += family("wmbus_last_frame_timestamp_seconds", "gauge",
                          "UTC time of the last frame (sample clock), seconds since the epoch.",
                          [] if self.last_frame_ns is None else [({}, self.last_frame_ns / 1e9)])
        return "\n".join(out) + "\n"


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics  # set on the subclass made per server

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, ctype, code = self.metrics.render().encode(), CONTENT_TYPE, 200
        elif path == "/":
            body, ctype, code = b'wmbus-sdr: metrics at <a href="/metrics">/metrics</a>\n', "text/html", 200
        else:
            body, ctype, code = b"not found\n", "text/plain", 404
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        log.debug("metrics %s: " + format, self.address_string(), *args)


class MetricsSink:
    """``--metrics HOST:PORT``: counts every frame it is given and serves the numbers from a thread."""

    def __init__(self, address: str):
        host, port = parse_address(address)
        handler = type("MetricsHandler", (_Handler,), {"metrics": Metrics()})
        server_class = ThreadingHTTPServer
        if ":" in host:
            server_class = type("MetricsServer6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        try:
            self.server = server_class((host, port), handler)
        except OSError as err:
            raise ValueError(f"--metrics {address}: cannot listen there: {err.strerror or err}") from None
        self.server.daemon_threads = True
        self.metrics: Metrics = handler.metrics
        self.host, self.port = host, self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        log.info("metrics at http://%s:%d/metrics", host, self.port)

    @classmethod
    def from_options(cls, options: SinkOptions) -> MetricsSink:
        if not options.metrics_address:
            raise ValueError("--output metrics needs --metrics HOST:PORT (e.g. 127.0.0.1:9108)")
        return cls(options.metrics_address)

    def __call__(self, frame: RxFrame, telegram: Telegram | None) -> None:
        self.metrics.add(frame, telegram)

    def on_status(self, status: LiveStatus) -> None:
        self.metrics.on_status(status)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
