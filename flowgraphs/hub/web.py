"""The hub's dashboard and JSON API (stdlib ``http.server`` in a thread, static files in
``static/``, no third-party script: the pages draw their own SVG plots).

Pages: ``/`` meters, ``/meter/<id>`` one meter's readings over time, ``/receivers``.
API: ``/api/meters`` (each with its 8-digit ``id``, manufacturer, device type, last reading, last
seen, ``receivers``: [{id, rssi}], alarm), ``/api/meters/<id>/readings``, ``/api/receivers``,
``/api/status`` (this hub's counters, rejected input by reason)."""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from .core import iso

log = logging.getLogger(__name__)

_METER_PAGE = re.compile(r"^/meter/([0-9A-Fa-f]{8})$")
_READINGS = re.compile(r"^/api/meters/([0-9A-Fa-f]{8})/readings$")
_STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


def _iso_or_none(ns):
    return iso(ns) if ns else None


def meters_json(store) -> list[dict]:
    out = []
    for m in store.meters():
        out.append({"id": m["id"], "manufacturer": m["manufacturer"], "device_type": m["device_type"],
                    "version": m["version"], "last_seen": _iso_or_none(m["last_seen_ns"]),
                    "last_seen_ns": m["last_seen_ns"], "last_time": _iso_or_none(m["last_time_ns"]),
                    "last_reading": m["last_reading"], "decryption": m["decryption"],
                    "interval_s": m["interval_s"], "alarm": m["alarm"],
                    "alarm_since": _iso_or_none(m["alarm_since_ns"]),
                    "receivers": [{"id": r["id"], "rssi": r["rssi"], "last_seen": _iso_or_none(r["last_seen_ns"])}
                                  for r in m["receivers"]]})
    return out


def readings_json(store, meter: str) -> list[dict]:
    return [{"time": iso(r["time_ns"]), "time_ns": r["time_ns"], "quantity": r["quantity"], "unit": r["unit"],
             "value": r["value"], "storage": r["storage"], "tariff": r["tariff"], "subunit": r["subunit"],
             "idx": r["idx"]} for r in store.readings(meter)]


def receivers_json(store) -> list[dict]:
    return [{"id": r["id"], "last_seen": _iso_or_none(r["last_seen_ns"]), "last_seen_ns": r["last_seen_ns"],
             "frames": r["frames"], "frames_per_min": r["frames_per_min"], "ppm": r["ppm"],
             "dropped_samples": r["dropped_samples"], "source": r["source"], "status": r["status"],
             "status_since": _iso_or_none(r["status_ns"])} for r in store.receivers()]


def _page(kind: str, title: str, meter: str = "") -> bytes:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - wmbus-sdr hub</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body data-page="{kind}" data-meter="{meter}">
<header><b>wmbus-sdr hub</b> <a href="/">Meters</a> <a href="/receivers">Receivers</a>
<span id="status"></span></header>
<main id="main"><h1>{title}</h1></main>
<script src="/static/app.js"></script>
</body></html>
""".encode()


class _Handler(BaseHTTPRequestHandler):
    server_version = "wmbus-sdr-hub"
    hub = None  # set on the subclass made per server

    def log_message(self, fmt, *args) -> None:  # the access log goes to logging, not stderr
        log.debug("http %s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        store = self.hub.store
        try:
            if path == "/api/meters":
                return self._json(meters_json(store))
            if m := _READINGS.match(path):
                return self._json(readings_json(store, m.group(1).lower()))
            if path == "/api/receivers":
                return self._json(receivers_json(store))
            if path == "/api/status":
                return self._json(self.hub.status())
            if path in ("/", "/index.html"):
                return self._send(200, _page("meters", "Meters"), "text/html; charset=utf-8")
            if path == "/receivers":
                return self._send(200, _page("receivers", "Receivers"), "text/html; charset=utf-8")
            if m := _METER_PAGE.match(path):
                meter = m.group(1).lower()
                return self._send(200, _page("meter", f"Meter {meter}", meter), "text/html; charset=utf-8")
            if path.startswith("/static/") and path[8:] in _STATIC:
                body = resources.files(__package__).joinpath("static", path[8:]).read_bytes()
                return self._send(200, body, _STATIC[path[8:]])
            if path == "/favicon.ico":
                return self._send(204, b"", "image/x-icon")
            return self._json({"error": f"no such page: {path}"}, 404)
        except Exception as err:  # noqa: BLE001 - a store error is a 503 for this request, not a dead server
            log.error("http %s: %s: %s", path, type(err).__name__, err)
            return self._json({"error": f"{type(err).__name__}: {err}"}, 503)


class Dashboard:
    """The HTTP server on its own thread; ``url`` once started."""

    def __init__(self, hub, address: str):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--http {address!r}: use HOST:PORT (e.g. 127.0.0.1:8080)")
        handler = type("HubHandler", (_Handler,), {"hub": hub})
        try:
            self.server = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
        except OSError as err:
            raise ValueError(f"--http {address}: {err.strerror or err}") from None
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, name="hub-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
