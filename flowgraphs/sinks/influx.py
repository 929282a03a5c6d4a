"""The ``influx`` output: InfluxDB line protocol, to stdout (``--output influx``) or POSTed to an
InfluxDB server (``--influx URL``).

Points, all stamped with the frame's UTC time from the sample clock in nanoseconds (no timestamp
without a clock: the server then stamps the arrival):

- ``wmbus`` — one per decoded data record: tags ``meter``, ``manufacturer``, ``type``, ``mode``,
  ``quantity``, ``unit``, ``storage``, ``tariff``, ``subunit``, ``function`` (and ``modifiers``
  when the record has some, ``occurrence`` for a second record of the same identity in one
  telegram); field ``value`` (a float, written as the record's exact decimal) or, for a date or
  text record, ``text`` (a string).
- ``wmbus_frame`` — one per frame: tags ``meter``, ``manufacturer``, ``type``, ``mode``; fields
  ``rssi_dbfs``, ``noise_dbfs``, ``snr_db``, ``freq_offset_hz`` and ``sample`` (the absolute input
  sample index, an integer).
- ``wmbus_receiver`` — with ``rx``, once per status interval and at the end: the numbers of the
  live loop's status (``frames``, ``frames_per_min``, ``rejected``, ``dropped_samples``, ``restarts``,
  ``stalls``, ``ppm``, ``cpu_percent`` ...) as float fields, stamped with the host clock.

Escaping follows the line-protocol reference: commas and spaces in the measurement, commas, equals
signs and spaces in tag keys, tag values and field keys with a backslash; double quotes and
backslashes in string fields. The protocol has no escape for a newline or for a backslash at the
end of a tag value, so control characters become a space and a backslash in a tag becomes ``/``
(both only possible in a plain-text unit sent by a meter). Empty tags are left out.

The HTTP writer (``--influx``) never blocks the receive loop: points go into a bounded queue (the
overflow is counted as dropped) and a thread POSTs them in batches; a server that is down or slow
is retried with back-off while the batch is kept; a batch the server refuses (HTTP 4xx: bad
points, wrong database or token) is dropped and logged. Nothing here raises into the loop.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import math
import os
import queue
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from mbus.records import format_decimal

from .base import lines

if TYPE_CHECKING:
    from mbus.telegram import Telegram

    from ..pipelines.live import LiveStatus
    from ..pipelines.receive import RxFrame
    from .base import Sink, SinkOptions

log = logging.getLogger(__name__)

MEASUREMENT = "wmbus"
FRAME_MEASUREMENT = "wmbus_frame"
STATUS_MEASUREMENT = "wmbus_receiver"
TOKEN_ENV = "INFLUX_TOKEN"  # an InfluxDB 2.x API token (or 1.x "user:password")
USER_ENV, PASSWORD_ENV = "INFLUX_USERNAME", "INFLUX_PASSWORD"  # InfluxDB 1.x with auth-enabled

_CONTROL = [*range(0x20), 0x7F]  # a control character becomes a space (escaped where a space must be)
_MEASUREMENT_ESCAPES = str.maketrans({**dict.fromkeys(_CONTROL, r"\ "), ord("\\"): "/", ord(","): r"\,",
                                      ord(" "): r"\ "})
_KEY_ESCAPES = str.maketrans({**dict.fromkeys(_CONTROL, r"\ "), ord("\\"): "/", ord(","): r"\,", ord("="): r"\=",
                              ord(" "): r"\ "})
_STRING_ESCAPES = str.maketrans({**dict.fromkeys(_CONTROL, " "), ord("\\"): "\\\\", ord('"'): '\\"'})


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(text: str) -> str:
    """A tag key, tag value or field key."""
    return text.translate(_KEY_ESCAPES)


def string_field(text: str) -> str:
    return '"' + text.translate(_STRING_ESCAPES) + '"'


def float_field(x: float) -> str | None:
    """A float field value (None for NaN or infinity, which the protocol cannot carry)."""
    x = float(x)
    return repr(x) if math.isfinite(x) else None


def point(measurement: str, tags: dict[str, object], fields: dict[str, str | None], time_ns: int | None) -> str | None:
    """One line: tags sorted by key (as InfluxDB stores them), empty tags and None fields left out;
    None when no field is left. ``fields`` holds values already formatted (see the helpers above)."""
    tag_text = "".join(f",{escape_key(k)}={escape_key(str(v))}" for k, v in sorted(tags.items())
                       if v is not None and str(v) != "")
    field_text = ",".join(f"{escape_key(k)}={v}" for k, v in fields.items() if v is not None)
    if not field_text:
        return None
    stamp = f" {time_ns}" if time_ns is not None else ""
    return f"{escape_measurement(measurement)}{tag_text} {field_text}{stamp}"


def meter_tags(frame: RxFrame, telegram: Telegram | None) -> dict[str, object]:
    if telegram is not None:
        m = telegram.meter
        return {"meter": m.id, "manufacturer": m.manufacturer_code, "type": m.device_type_name, "mode": frame.mode}
    meter = frame.telegram[4:8][::-1].hex() if len(frame.telegram) >= 8 else None
    return {"meter": meter, "mode": frame.mode}


def influx_points(frame: RxFrame, telegram: Telegram | None) -> list[str]:
    """The line-protocol points of one frame (none for a frame that failed its CRC)."""
    if not frame.crc_ok:
        return []
    base = meter_tags(frame, telegram)
    out = []
    signal = point(FRAME_MEASUREMENT, base, {
        "rssi_dbfs": float_field(round(frame.rssi_dbfs, 2)), "noise_dbfs": float_field(round(frame.noise_dbfs, 2)),
        "snr_db": float_field(round(frame.snr_db, 2)), "freq_offset_hz": float_field(round(frame.freq_offset_hz, 1)),
        "sample": f"{frame.sample}i"}, frame.time_ns)
    if signal is not None:
        out.append(signal)
    seen: dict[tuple, int] = {}
    for r in telegram.records if telegram is not None else ():
        if r.error:
            continue
        if r.value is not None:
            if not r.value.is_finite():
                continue
            fields = {"value": format_decimal(r.value)}
        elif r.text is not None:
            fields = {"text": string_field(r.text)}
        else:
            continue
        tags = {**base, "quantity": r.quantity, "unit": r.unit, "storage": r.storage, "tariff": r.tariff,
                "subunit": r.subunit, "function": r.function, "modifiers": "+".join(r.modifiers)}
        identity = tuple(sorted((k, str(v)) for k, v in tags.items()))
        seen[identity] = seen.get(identity, 0) + 1
        if seen[identity] > 1:
            tags["occurrence"] = seen[identity]
        line = point(MEASUREMENT, tags, fields, frame.time_ns)
        if line is not None:
            out.append(line)
    return out


def status_point(status: LiveStatus, time_ns: int | None = None) -> str | None:
    """The live loop's status as one ``wmbus_receiver`` point: its numbers, all as floats (a field
    keeps one type in InfluxDB, and a figure may come as an int once and a float later)."""
    fields: dict[str, str | None] = {}
    for f in dataclasses.fields(status):
        value = getattr(status, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        fields[f.name] = float_field(value)
    return point(STATUS_MEASUREMENT, {}, fields, time_ns if time_ns is not None else time.time_ns())


def influx_event(frame: RxFrame, telegram: Telegram | None) -> str | None:
    """``--output influx`` without ``--influx``: the frame's points on stdout."""
    points = influx_points(frame, telegram)
    return "\n".join(points) if points else None


# --- the HTTP writer ----------------------------------------------------------------------------
def write_target(url: str) -> tuple[str, str]:
    """Check an InfluxDB write URL: ``http[s]://HOST[:PORT]/write?db=DB`` (1.x) or
    ``http[s]://HOST[:PORT]/api/v2/write?org=ORG&bucket=BUCKET`` (2.x), any path prefix before.
    Returns (the URL without user and password, the same without secrets for logs); ValueError
    naming what is wrong."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"--influx {_redact(url)}: use http[s]://HOST:PORT/write?db=DB (InfluxDB 1.x) or "
                         "http[s]://HOST:PORT/api/v2/write?org=ORG&bucket=BUCKET (2.x)")
    query = parse_qs(u.query, keep_blank_values=True)
    if u.path.rstrip("/").endswith("/api/v2/write"):
        missing = [k for k in ("org", "bucket") if not query.get(k, [""])[0]]
    elif u.path.rstrip("/").endswith("/write"):
        missing = [] if query.get("db", [""])[0] else ["db"]
    else:
        raise ValueError(f"--influx {_redact(url)}: the path must end in /write (1.x) or /api/v2/write (2.x)")
    if missing:
        raise ValueError(f"--influx {_redact(url)}: give {' and '.join(missing)} in the query")
    precision = query.get("precision", [None])[0]
    if precision not in (None, "n", "ns"):
        raise ValueError(f"--influx {_redact(url)}: precision={precision}: leave it out, the points carry nanoseconds")
    port = f":{u.port}" if u.port else ""
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    clean = urlunsplit((u.scheme, host + port, u.path, u.query, ""))
    return clean, _redact(clean)


def _redact(url: str) -> str:
    """A URL fit for a log: no user, password or token."""
    u = urlsplit(url)
    netloc = u.hostname or ""
    if u.port:
        netloc += f":{u.port}"
    query = [(k, "***" if k in ("p", "u", "token") else v)
             for k, vs in parse_qs(u.query, keep_blank_values=True).items() for v in vs]
    return urlunsplit((u.scheme, netloc, u.path, urlencode(query, safe="*"), ""))


def read_token(token_file: str | None) -> str | None:
    """The API token from ``token_file`` (first line) or ``$INFLUX_TOKEN``; ValueError naming the file."""
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.readline().strip()
        except OSError as err:
            raise ValueError(f"--influx-token-file {token_file}: {err.strerror or err}") from None
        if not token:
            raise ValueError(f"--influx-token-file {token_file}: the file is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


class InfluxWriter:
    """Batches line-protocol lines and POSTs them to ``url`` from a thread.

    ``put`` never blocks: a full queue drops the new lines (``dropped``). The thread sends a batch
    when it holds ``batch_lines`` lines or ``flush_s`` after its first line; a connection error,
    a timeout, HTTP 429 or 5xx keeps the batch and retries after 1, 2, 4 ... ``max_backoff_s``
    seconds; another HTTP error (400 bad points, 401/403 token, 404 database) drops it
    (``rejected``). ``close()`` sends what is left (one try each, within ``close_timeout_s``)."""

    def __init__(self, url: str, *, token: str | None = None, flush_s: float = 1.0, batch_lines: int = 1000,
                 queue_lines: int = 100_000, timeout_s: float = 10.0, max_backoff_s: float = 30.0,
                 close_timeout_s: float = 15.0):
        self.url, self.where = write_target(url)
        u = urlsplit(url)
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        user = os.environ.get(USER_ENV) or (u.username and _unquote(u.username))
        password = os.environ.get(PASSWORD_ENV) or (u.password and _unquote(u.password))
        if token:
            self._headers["Authorization"] = f"Token {token}"
        elif user:
            basic = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"
        self.flush_s, self.batch_lines, self.timeout_s = flush_s, batch_lines, timeout_s
        self.max_backoff_s, self.close_timeout_s = max_backoff_s, close_timeout_s
        self._queue: queue.Queue[str] = queue.Queue(maxsize=queue_lines)
        self._stop = threading.Event()
        import urllib.request  # noqa: PLC0415 - only when posting (http.client is a tenth of the start-up)

        self._opener = urllib.request.build_opener()
        self.sent = 0  # lines the server accepted
        self.dropped = 0  # lines never sent: queue full, or still unsent at close
        self.rejected = 0  # lines in batches the server refused (4xx)
        self.failures = 0  # failed POST attempts (each retry counts)
        self.last_error: str | None = None
        self._logged_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._thread.start()

    def put(self, lines: list[str]) -> None:
        for line in lines:
            try:
                self._queue.put_nowait(line)
            except queue.Full:
                self.dropped += 1

    def _run(self) -> None:
        batch: list[str] = []
        backoff = 0.0
        while not self._stop.is_set():
            if not batch or len(batch) < self.batch_lines and backoff == 0:
                self._gather(batch)
            if not batch:
                continue
            outcome = self._post(batch)
            if outcome == "retry":
                backoff = min(max(2 * backoff, 1.0), self.max_backoff_s)
                self._stop.wait(backoff)
                continue
            if backoff:
                log.warning("InfluxDB %s: writing again", self.where)
                self._logged_error = None
            backoff = 0.0
            batch = []
        # closing: what is queued, in batches, one try each
        deadline = time.monotonic() + self.close_timeout_s
        while True:
            while len(batch) < self.batch_lines:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return
            if time.monotonic() > deadline or self._post(batch) == "retry":
                self.dropped += len(batch) + self._queue.qsize()
                return
            batch = []

    def _gather(self, batch: list[str]) -> None:
        """Add lines to ``batch`` until it is full or ``flush_s`` passed since its first line."""
        first_at = time.monotonic() if batch else None
        while len(batch) < self.batch_lines and not self._stop.is_set():
            wait = 0.2 if first_at is None else min(0.2, first_at + self.flush_s - time.monotonic())
            if wait <= 0:
                return
            try:
                batch.append(self._queue.get(timeout=wait))
            except queue.Empty:
                continue
            if first_at is None:
                first_at = time.monotonic()

    def _post(self, batch: list[str]) -> str:
        """POST one batch: "ok", "retry" (kept) or "drop" (refused by the server)."""
        import http.client  # noqa: PLC0415 - see __init__
        import urllib.error  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        body = ("\n".join(batch) + "\n").encode()
        request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as err:
            detail = err.read(300).decode("utf-8", "replace").strip()
            self.failures += 1
            if err.code == 429 or err.code >= 500:
                self._failed(f"HTTP {err.code} {detail}", retry=True)
                return "retry"
            self.rejected += len(batch)
            self._failed(f"HTTP {err.code} {detail}", retry=False, lines=len(batch))
            return "drop"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            self.failures += 1
            reason = getattr(err, "reason", None) or err
            self._failed(f"{reason}", retry=True)
            return "retry"
        self.sent += len(batch)
        return "ok"

    def _failed(self, message: str, *, retry: bool, lines: int = 0) -> None:
        self.last_error = message
        if message == self._logged_error:
            log.debug("InfluxDB %s: %s (again)", self.where, message)
            return
        self._logged_error = message
        if retry:
            log.warning("InfluxDB %s: %s; keeping the points and retrying", self.where, message)
        else:
            log.warning("InfluxDB %s: %s; %d points dropped", self.where, message, lines)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(self.close_timeout_s + 2 * self.timeout_s + 1)  # a POST under way, then the last
        level = logging.WARNING if self.dropped or self.rejected else logging.INFO
        log.log(level, "InfluxDB %s: %d points written, %d dropped, %d refused by the server, %d failed attempts",
                self.where, self.sent, self.dropped, self.rejected, self.failures)


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


class InfluxSink:
    """``--influx URL``: each frame's points to an :class:`InfluxWriter`; with ``rx``, the live
    loop's status as a ``wmbus_receiver`` point too (:meth:`on_status`)."""

    def __init__(self, writer: InfluxWriter):
        self.writer = writer

    def __call__(self, frame: RxFrame, telegram: Telegram | None) -> None:
        self.writer.put(influx_points(frame, telegram))

    def on_status(self, status: LiveStatus) -> None:
        line = status_point(status)
        if line is not None:
            self.writer.put([line])

    def close(self) -> None:
        self.writer.close()


def influx_sink(options: SinkOptions) -> Sink:
    """``--output influx``: line protocol on ``options.out``, or POSTed to ``options.influx_url``."""
    if not options.influx_url:
        return lines(influx_event)(options)
    return InfluxSink(InfluxWriter(options.influx_url, token=read_token(options.influx_token_file)))
