"""Option helpers every command shares: keys, the IQ source, the outputs. Each pair is one
``add_*`` (the argparse options) and one function building the object from the parsed options, so
a command never builds a key store, a source or its sinks by itself.

Imported by every command at start-up: it imports nothing heavy (numpy, the receiver) until a
function below runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from mbus.keys import KeyStore

    from ..sinks import Sink

SOURCE_KINDS = "rtlsdr:N, rtltcp://HOST:PORT, soapy:ARGS or file:PATH"
FORMATS = ("cu8", "cs8", "cs16", "cf32")  # = sdr.formats.FORMATS (tests/test_layout.py), without numpy


# --- keys --------------------------------------------------------------------------------------
KEM_PASSWORD_ENV = "WMBUS_KEM_PASSWORD"


def add_key_options(p: argparse.ArgumentParser, *, key_file: bool = True, key_help: str | None = None) -> None:
    """``--key K`` (one AES-128 key for any meter) and, with ``key_file``, ``--keys FILE`` and
    ``--kem-password``."""
    group = p.add_mutually_exclusive_group() if key_file else p
    group.add_argument("--key", metavar="K", help=key_help or "AES-128 key (32 hex digits) for any meter")
    if key_file:
        group.add_argument("--keys", metavar="FILE",
                           help="key file, format detected: lines 'METER_ID [MANUFACTURER] KEY', CSV with an "
                                "id,key header, JSON lines {\"id\": ..., \"key\": ...}, or a Kamstrup KEM file "
                                "(.kem/.kem2 or a zip holding one)")
        p.add_argument("--kem-password", metavar="PASSWORD",
                       help=f"password of a Kamstrup KEM key file (default: ${KEM_PASSWORD_ENV})")


def key_store(args: argparse.Namespace) -> KeyStore | None:
    """The key store the options name (``--keys FILE``, ``--key K``), None without keys;
    ValueError naming the option for a bad key or key file."""
    import os

    from mbus.keys import KeyStore, parse_key

    if getattr(args, "keys", None):
        password = getattr(args, "kem_password", None) or os.environ.get(KEM_PASSWORD_ENV) or None
        return KeyStore.from_file(args.keys, kem_password=password)
    if getattr(args, "key", None):
        return KeyStore(default=parse_key(args.key, where="--key"))
    return None


def single_key(args: argparse.Namespace) -> bytes | None:
    """``--key K`` as 16 bytes (commands that act as one meter: tx, session, meter)."""
    store = key_store(args)
    return store.default if store is not None else None


# --- the IQ source -------------------------------------------------------------------------------
def add_source_options(p: argparse.ArgumentParser, *, file: str | None = None, device: str | None = None,
                       rate_default: float | None = None, rate_help: str | None = None,
                       center_default: float | None = None, center_help: str | None = None,
                       device_help: str | None = None, tuner: bool = False) -> None:
    """Where IQ comes from. ``file``: "required" (positional FILE) or "optional"; ``device``:
    "required" or "optional" (``--device``); --rate and --center always, --format with a file,
    --gain/--ppm with ``tuner``."""
    if file is not None:
        p.add_argument("file", nargs=None if file == "required" else "?", metavar="FILE",
                       help="recording (cu8/cs8/cs16/cf32, .sigmf-meta, .wav) or '-'" if file == "required"
                       else "recording (as for decode)")
    if device is not None:
        default_help = SOURCE_KINDS if file is None else "live source instead of a file (as for rx)"
        p.add_argument("--device", required=device == "required", help=device_help or default_help)
    if file is not None:
        p.add_argument("--format", dest="fmt", choices=FORMATS, help="sample format (default: from the file)")
    p.add_argument("--rate", type=float, default=rate_default,
                   help=rate_help or "sample rate in samples/s (default: from the file)")
    p.add_argument("--center", type=float, default=center_default,
                   help=center_help or "centre frequency in Hz (default: from the file)")
    if tuner:
        p.add_argument("--gain", dest="rx_gain", default="auto", help="'auto' or a gain in dB")
        p.add_argument("--ppm", type=int, default=0,
                       help="the tuner's frequency error in ppm, as rtl_sdr -p takes it (+ = the tuner is high); "
                            "RTL-SDR and rtl_tcp correct it in the tuner, other devices in software")


def open_source(args: argparse.Namespace, *, sample_rate_hz: float | None = None, center_freq_hz: float | None = None):
    """The source the options name: a recording (``FILE``: :class:`sdr.file.FileSource`) or a live
    device (``--device``: :func:`sdr.registry.open_device`, not started). ``sample_rate_hz`` /
    ``center_freq_hz`` replace --rate / --center (a command's computed defaults)."""
    rate = sample_rate_hz if sample_rate_hz is not None else args.rate
    center = center_freq_hz if center_freq_hz is not None else args.center
    if getattr(args, "file", None):
        from sdr.file import FileSource

        return FileSource(args.file, fmt=getattr(args, "fmt", None), sample_rate_hz=rate, center_freq_hz=center)
    from sdr.registry import open_device

    gain = getattr(args, "rx_gain", "auto")
    try:
        gain_db = None if gain in (None, "auto") else float(gain)
    except ValueError:
        raise ValueError(f"--gain {gain}: give 'auto' or a number of dB") from None
    return open_device(args.device, sample_rate_hz=rate, center_freq_hz=center, gain=gain_db,
                       ppm=getattr(args, "ppm", 0))


def open_tx(uri: str, *, sample_rate_hz: float, center_freq_hz: float, gain_db: float = 0.0,
            max_gain_db: float = 0.0):
    """The TX sink a URI names (:func:`sdr.registry.open_tx_sink`: soapy:ARGS, file:PATH, memory:NAME
    or a registered kind), not opened yet."""
    from sdr.registry import open_tx_sink

    return open_tx_sink(uri, sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz, gain_db=gain_db,
                        max_gain_db=max_gain_db)


# --- outputs ---------------------------------------------------------------------------------
def add_sink_options(p: argparse.ArgumentParser, *, default: str = "text") -> None:
    """``--output NAME[,NAME]`` (repeatable; any sink of :data:`flowgraphs.sinks.SINKS`, or none)
    and the MQTT options (:func:`add_mqtt_options`; ``--mqtt URL`` adds the mqtt sink)."""
    from ..sinks import SINKS

    p.add_argument("--output", action="append", metavar="NAME[,NAME]",
                   help=f"outputs, comma-separated or repeated: {', '.join(SINKS)}, none (default {default})")
    add_mqtt_options(p)
    p.set_defaults(output_default=default)
    add_more_output_options(p)


def add_mqtt_options(p: argparse.ArgumentParser, *, raw: bool = True) -> None:
    """``--mqtt URL`` and how to reach the broker (TLS, credentials, QoS, queue), the receiver id,
    ``--raw`` (with ``raw``) and ``--ha-discovery``; :func:`mqtt_settings` builds them."""
    from ..sinks.base import DEFAULT_QUEUE, PASSWORD_ENV

    g = p.add_argument_group("MQTT")
    g.add_argument("--mqtt", metavar="URL", help="publish each frame to mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT]/PREFIX "
                   "(keeps receiving and queues while the broker is away)")
    g.add_argument("--ha-discovery", action="store_true",
                   help="announce every meter as a Home Assistant device (MQTT discovery), one sensor per record "
                        "it sends, with HA's device and state classes and units; the receiver as a device too")
    g.add_argument("--forget-after", type=float, metavar="SECONDS",
                   help="with --ha-discovery: remove a meter's Home Assistant device when not heard for this long")
    if raw:
        g.add_argument("--raw", action="store_true",
                       help="publish every CRC-valid frame undecrypted to PREFIX/raw/RECEIVER (a hub decodes)")
    g.add_argument("--receiver-id", metavar="NAME", help="this receiver's name in topics and messages "
                   "(default: the host name)")
    g.add_argument("--mqtt-qos", type=int, choices=(0, 1, 2), default=1, help="MQTT QoS of the messages (default 1)")
    g.add_argument("--mqtt-queue", type=int, default=DEFAULT_QUEUE, metavar="N",
                   help=f"messages kept while the broker is away, the oldest dropped beyond (default {DEFAULT_QUEUE})")
    g.add_argument("--mqtt-ca", metavar="FILE", help="mqtts: CA certificate(s) to check the broker with")
    g.add_argument("--mqtt-cert", metavar="FILE", help="mqtts: client certificate (with --mqtt-key)")
    g.add_argument("--mqtt-key", metavar="FILE", help="mqtts: client certificate's private key")
    g.add_argument("--mqtt-insecure", action="store_true", help="mqtts: do not check the broker's certificate")
    g.add_argument("--mqtt-password-file", metavar="FILE",
                   help=f"MQTT password: first line of FILE (else from the URL, else ${PASSWORD_ENV})")


def mqtt_settings(args: argparse.Namespace):
    """The :class:`~flowgraphs.sinks.mqtt_link.MqttSettings` the options name, None without
    ``--mqtt``; ValueError naming the option at fault."""
    if getattr(args, "raw", False) and not args.mqtt:
        raise ValueError("--raw publishes to a broker: give --mqtt mqtt://HOST[:PORT]/PREFIX")
    if not args.mqtt:
        return None
    from ..sinks.mqtt_link import MqttSettings, check_receiver_id, default_receiver_id  # noqa: PLC0415
    receiver = check_receiver_id(args.receiver_id) if args.receiver_id else default_receiver_id()
    return MqttSettings.from_url(args.mqtt, password_file=args.mqtt_password_file, qos=args.mqtt_qos,
                                 queue_size=args.mqtt_queue, receiver_id=receiver, ca_file=args.mqtt_ca,
                                 cert_file=args.mqtt_cert, key_file=args.mqtt_key, insecure=args.mqtt_insecure,
                                 raw=getattr(args, "raw", False))


def output_names(args: argparse.Namespace) -> list[str]:
    names = [n.strip() for o in (args.output or [args.output_default]) for n in o.split(",") if n.strip()]
    if args.mqtt and "mqtt" not in names:
        names.append("mqtt")
    return names + [n for n in more_output_names(args) if n not in names]


def open_outputs(args: argparse.Namespace, out: TextIO | None = None) -> list[Sink]:
    """The sinks the options name, writing lines to ``out`` (stdout); ValueError for an unknown
    name or an unreachable broker. Close them with :func:`flowgraphs.sinks.close_sinks`."""
    from ..sinks import SinkOptions, open_sinks

    return open_sinks(output_names(args), SinkOptions(out=out or sys.stdout, mqtt_url=args.mqtt,
                                                      ha_discovery=args.ha_discovery, mqtt=mqtt_settings(args),
                                                      forget_after_s=_forget_after(args), **more_sink_options(args)))


def _forget_after(args: argparse.Namespace) -> float | None:
    seconds = getattr(args, "forget_after", None)
    if seconds is not None and seconds <= 0:
        raise ValueError(f"--forget-after {seconds:g}: give a positive number of seconds")
    if seconds is not None and not args.ha_discovery:
        raise ValueError("--forget-after removes Home Assistant devices: use it with --ha-discovery")
    return seconds


class _DefaultModes:
    """The receiver's default modes from the mode registry (dsp.modes), looked up only when used:
    dsp imports numpy, which `wmbus-sdr telegram` must start without."""

    def __str__(self) -> str:
        from dsp.modes import default_rx_modes

        return ",".join(default_rx_modes())


DEFAULT_MODES = _DefaultModes()  # str() gives e.g. 'S1,T1,C1'


def add_modes_option(p) -> None:
    p.add_argument("--modes", default=DEFAULT_MODES,
                   help="comma-separated link modes to receive (default: every meter->other mode whose channel "
                        "the captured band holds: %(default)s)")
    p.add_argument("--channel", action="append", default=[], metavar="FREQ:MODE",
                   help="also receive MODE on a channel of your choosing, e.g. 434.475M:T1 (a T1 meter on 434.475 "
                        "MHz); repeatable; the channel must lie inside the captured band")


def add_unknown_option(p) -> None:
    p.add_argument("--save-unknown", metavar="DIR",
                   help="save every burst that carries energy but gives no valid frame to DIR as an annotated "
                        "SigMF snippet (channel, mode guess, reason; at most one per channel every 10 s, 200 in "
                        "all), to send captures of meters we cannot decode yet")


def unknown_saver(args, rx):
    """Hook an :class:`~flowgraphs.pipelines.unknown.UnknownSaver` to ``rx`` when --save-unknown asks."""
    if not getattr(args, "save_unknown", None):
        return None
    from ..pipelines.unknown import UnknownSaver

    saver = UnknownSaver(args.save_unknown, input_rate_hz=rx.info.sample_rate_hz)
    rx.on_unknown = saver
    return saver


def wanted_modes(args) -> list[str]:
    """The receiver's ``modes`` entries: --modes names, then one FREQUENCY:MODE entry per --channel."""
    modes = [m.strip() for m in str(args.modes).split(",") if m.strip()]
    return modes + [c.strip() for c in getattr(args, "channel", None) or [] if c.strip()]


# --- more outputs: RSSI calibration, InfluxDB, Prometheus metrics (added by add_sink_options) -------
def add_more_output_options(p: argparse.ArgumentParser) -> None:
    """``--cal-offset DB`` (the rtlwmbus signal columns), ``--influx URL`` (+ ``--influx-token-file``)
    and ``--metrics HOST:PORT``; each of the last two adds its output."""
    p.add_argument("--cal-offset", type=float, default=0.0, metavar="DB",
                   help="RSSI calibration for the rtlwmbus signal columns, which wmbusmeters labels dBm: "
                        "they are dBFS + DB (default 0: plain dBFS, not dBm); measure DB once with a known signal")
    p.add_argument("--influx", metavar="URL",
                   help="write InfluxDB line protocol to http://HOST:8086/write?db=DB (1.x) or "
                        "http://HOST:8086/api/v2/write?org=ORG&bucket=B (2.x); token from --influx-token-file or "
                        "$INFLUX_TOKEN, 1.x user from $INFLUX_USERNAME/$INFLUX_PASSWORD "
                        "(--output influx alone: stdout)")
    p.add_argument("--influx-token-file", metavar="FILE", help="file holding the InfluxDB API token (first line)")
    p.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9108)")


def more_output_names(args: argparse.Namespace) -> list[str]:
    return [name for name, opt in (("influx", "influx"), ("metrics", "metrics")) if getattr(args, opt, None)]


def more_sink_options(args: argparse.Namespace) -> dict:
    """The :class:`flowgraphs.sinks.SinkOptions` fields of the options above; ValueError for a bad offset."""
    import math

    cal = getattr(args, "cal_offset", 0.0)
    if not math.isfinite(cal):
        raise ValueError(f"--cal-offset {cal}: give a number of dB")
    return {"cal_offset_db": cal, "influx_url": getattr(args, "influx", None),
            "influx_token_file": getattr(args, "influx_token_file", None),
            "metrics_address": getattr(args, "metrics", None)}
