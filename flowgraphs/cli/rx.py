"""``wmbus-sdr rx`` (live reception) and ``wmbus-sdr serve-rtltcp`` (play a recording as rtl_tcp)."""

from __future__ import annotations

import argparse
import signal
import sys

from .options import (
    add_key_options,
    add_modes_option,
    add_sink_options,
    add_source_options,
    key_store,
    open_outputs,
    open_source,
    wanted_modes,
)

HELP_RX = """\
Receive wireless M-Bus live from an SDR and write frames as text, JSON lines, rtl_wmbus lines
(for wmbusmeters' stdin:rtlwmbus), a meter inventory and/or MQTT messages (the outputs of decode).

devices:
  rtlsdr:0                         RTL-SDR over USB (pip install 'wmbus-sdr[rtlsdr]')
  rtltcp://HOST:PORT               an rtl_tcp server
  soapy:driver=hackrf              any SoapySDR device (Debian's python3-soapysdr)
  file:PATH                        a recording replayed at real-time pace

examples:
  wmbus-sdr rx --device rtlsdr:0 --keys meters.keys
  wmbus-sdr rx --device rtltcp://192.168.1.20:1234 --output rtlwmbus | wmbusmeters stdin:rtlwmbus ...
  wmbus-sdr rx --device rtlsdr:0 --mqtt mqtt://localhost/wmbus --dedup 10 --inventory
"""


def add_parser(sub) -> None:
    p = sub.add_parser("rx", help="receive live from an SDR", description=HELP_RX,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(p, device="required", rate_default=1.6e6, rate_help="sample rate (default 1.6e6; 2.4e6 adds C2)",
                       center_default=868.625e6, center_help="centre frequency, Hz (default 868.625e6)", tuner=True)
    add_modes_option(p)
    add_key_options(p)
    add_sink_options(p)
    p.add_argument("--dedup", type=float, default=0.0, metavar="SECONDS", help="suppress repeats within SECONDS")
    p.add_argument("--inventory", action="store_true", help="print the meter inventory at the end")
    p.add_argument("--duration", type=float, help="stop after this many seconds of signal")
    p.add_argument("--save-iq", metavar="DIR", help="write each frame's IQ snippet to DIR as SigMF")
    p.add_argument("--quiet", action="store_true", help="no status line on stderr (the summary stays)")

    s = sub.add_parser("serve-rtltcp", help="serve a cu8 recording to rtl_tcp clients",
                       description="Play a cu8 recording (raw or SigMF) at real-time pace to rtl_tcp clients "
                                   "(rtl_433 -d rtl_tcp:HOST:PORT, SDR++, wmbus-sdr rx --device rtltcp://...).")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=1234)
    s.add_argument("--loop", action="store_true", help="start again at the end")
    s.add_argument("--rate", type=float, help="sample rate if the file does not say")
    s.add_argument("--center", type=float, help="centre frequency if the file does not say")


def run(args) -> int:
    if args.command == "serve-rtltcp":
        return _serve(args)
    return _rx(args)


def _serve(args) -> int:
    import logging

    from sdr.errors import SDRError
    from sdr.rtltcp import RtlTcpServer

    logging.getLogger("sdr").setLevel(logging.INFO)
    try:
        server = RtlTcpServer(args.file, host=args.host, port=args.port, loop=args.loop, sample_rate_hz=args.rate,
                              center_freq_hz=args.center)
    except (ValueError, SDRError, OSError) as err:
        print(f"wmbus-sdr serve-rtltcp: {err}", file=sys.stderr)
        return 2
    print(f"serving {args.file} on {args.host}:{server.port} ({server.rate / 1e6:g} Msps"
          f"{', looping' if args.loop else ''}); Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _rx(args) -> int:
    from sdr.errors import SDRError

    from ..pipelines.live import IqSaver, run_live
    from ..pipelines.receive import Receiver
    from ..sinks import Inventory, close_sinks

    sinks = []
    try:
        keys = key_store(args)
        source = open_source(args)
        rx = Receiver(source.info, wanted_modes(args))
        sinks = open_outputs(args)
        saver = IqSaver(args.save_iq, source.info) if args.save_iq else None
        source.start()
    except (ValueError, SDRError, OSError) as err:
        close_sinks(sinks)
        print(f"wmbus-sdr rx: {err}", file=sys.stderr)
        return 2

    def status(s: dict) -> None:
        if not args.quiet:
            print(f"\r{s['seconds']:7.0f} s  {s['frames']} frames ({s['frames_per_min']:.1f}/min)  "
                  f"{s['meters']} meters  CPU {s['cpu_percent']:.0f} %  dropped {s['dropped']}",
                  end="", file=sys.stderr, flush=True)

    inventory = Inventory()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    result, rc = None, 0
    try:
        result = run_live(source, rx, sinks, keys=keys, dedup_s=args.dedup, inventory=inventory, on_status=status,
                          stop_after_s=args.duration, save_iq=saver)
    except KeyboardInterrupt:
        pass
    except SDRError as err:
        print(f"\nwmbus-sdr rx: {err}", file=sys.stderr)
        rc = 1
    finally:
        source.close()
        close_sinks(sinks)
    frames = result["frames"] if result else sum(s.frames for s in inventory.meters.values())
    extra = ""
    if result:
        extra = (f", {result['rejected']} rejected, {result['duplicates']} duplicates, "
                 f"{result['dropped_samples']} samples dropped, CPU {result['cpu_percent']:.0f} %")
        if result["latency_max_s"] is not None:
            extra += (f", latency median {result['latency_median_s']:.2f} s / max "
                      f"{result['latency_max_s']:.2f} s")
    print(f"\n{args.device}: {frames} frames from {len(inventory.meters)} meters{extra}", file=sys.stderr)
    for sink in sinks:  # e.g. the mqtt output: published, dropped, reconnects
        if hasattr(sink, "summary"):
            print(sink.summary(), file=sys.stderr)
    if args.inventory and inventory.meters:
        print(inventory.table(), file=sys.stderr)
    return rc
