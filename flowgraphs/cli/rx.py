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
    add_unknown_option,
    key_store,
    open_outputs,
    open_source,
    unknown_saver,
    wanted_modes,
)

READ_BLOCK_S = 0.1  # seconds of samples per device read and per trip down the receiver

HELP_RX = """\
Receive wireless M-Bus live from an SDR and write frames as text, JSON lines, rtl_wmbus lines
(for wmbusmeters' stdin:rtlwmbus), a meter inventory and/or MQTT messages (the outputs of decode).

devices:
  rtlsdr:0                         RTL-SDR over USB (pip install 'wmbus-sdr[rtlsdr]')
  rtltcp://HOST:PORT               an rtl_tcp server
  soapy:driver=hackrf              any SoapySDR device (Debian's python3-soapysdr)
  file:PATH                        a recording replayed at real-time pace

watchdog: when no samples come for --stall-timeout seconds the device is reopened (rtl_tcp
reconnects, a USB dongle or SoapySDR device is closed and opened again), and frames keep their
true times; after --max-restarts reopens in a row that failed or brought no samples, rx exits with
status 1 naming the device, for systemd (Restart=on-failure) to start it afresh.
Ctrl-C or SIGTERM ends the run with the summary, status 0.

examples:
  wmbus-sdr rx --device rtlsdr:0 --keys meters.keys
  wmbus-sdr rx --device rtltcp://192.168.1.20:1234 --output rtlwmbus | wmbusmeters stdin:rtlwmbus ...
  wmbus-sdr rx --device rtlsdr:0 --center 169.4375e6 --rate 300e3      (mode N: all six 169 MHz channels)
  wmbus-sdr rx --device rtlsdr:0 --center 434.475e6 --channel 434.475M:T1 --save-unknown donate/
  wmbus-sdr rx --device rtlsdr:0 --mqtt mqtt://localhost/wmbus --dedup 10 --inventory
"""


def add_parser(sub) -> None:
    p = sub.add_parser("rx", help="receive live from an SDR", description=HELP_RX,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(p, device="required", rate_default=1.6e6, rate_help="sample rate (default 1.6e6; 2.4e6 adds C2)",
                       center_default=868.625e6, center_help="centre frequency, Hz (default 868.625e6)", tuner=True)
    add_modes_option(p)
    add_unknown_option(p)
    add_key_options(p)
    add_sink_options(p)
    p.add_argument("--auto-ppm", action="store_true",
                   help="correct the tuner's frequency error once the meters heard agree on it (the status line "
                        "and summary show the estimate either way)")
    p.add_argument("--no-gate", action="store_true",
                   help="channelise every sample, not only the stretches where the activity gate hears something "
                        "(more CPU; the same frames)")
    p.add_argument("--dedup", type=float, default=0.0, metavar="SECONDS", help="suppress repeats within SECONDS")
    p.add_argument("--inventory", action="store_true", help="print the meter inventory at the end")
    p.add_argument("--duration", type=float, help="stop after this many seconds of signal")
    p.add_argument("--save-iq", metavar="DIR", help="write each frame's IQ snippet to DIR as SigMF")
    p.add_argument("--quiet", action="store_true", help="no status line on stderr (the summary stays)")
    p.add_argument("--stall-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="reopen the device after this long without samples (default 5)")
    p.add_argument("--max-restarts", type=int, default=5, metavar="N",
                   help="exit (status 1) after N reopens in a row that failed or brought no samples (default 5)")

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


class _Stopper:
    """Ctrl-C and SIGTERM (systemd stopping the service) end the run as the end of the stream does:
    the first asks the source to stop — no exception thrown into whatever runs at that moment — and
    the run ends with its summary, status 0; a second one interrupts at once."""

    def __init__(self):
        self.source = None
        self.requested = False

    def __call__(self, signum, frame) -> None:
        if self.requested or self.source is None:
            raise KeyboardInterrupt
        self.requested = True
        self.source.request_stop()


def _rx(args) -> int:
    from sdr.errors import SDRError

    from ..pipelines.live import IqSaver, LiveStatus, run_live, zero_frame_hint
    from ..pipelines.receive import Receiver
    from ..sinks import Inventory, close_sinks

    def named(err: BaseException) -> str:
        """The error with the device's name in front when it does not say it (a socket's "timed out")."""
        text = str(err) or type(err).__name__
        return text if isinstance(err, ValueError | SDRError) or args.device in text else f"{args.device}: {text}"

    stopper = _Stopper()
    signal.signal(signal.SIGTERM, stopper)
    signal.signal(signal.SIGINT, stopper)
    sinks, source = [], None
    try:
        keys = key_store(args)
        source = open_source(args)
        stopper.source = source
        source.watchdog(stall_timeout_s=args.stall_timeout, max_restarts=args.max_restarts)
        Receiver(source.info, wanted_modes(args))  # a band without wanted channels fails before the device opens
        sinks = open_outputs(args)
        saver = IqSaver(args.save_iq, source.info) if args.save_iq else None
        # 0.1 s per read: a device's usual ~20 ms reads cost about 1 % of a core more in Python
        # overhead (thread wake-ups, hand-over, conversion); a frame's output waits up to 0.1 s longer
        source.read_blocks(READ_BLOCK_S)
        source.start()
        # RTL-SDR, rtl_tcp and SoapySDR devices that can take --ppm correct it in the tuner (opened now:
        # ``ppm`` says what the device applies); the rest is corrected in the channeliser
        device_ppm = float(getattr(source, "ppm", 0) or 0)
        # 0.1 s batches for devices that cannot read blocks: ~20 ms chunks one by one cost about twice
        # the CPU (Receiver.batch_s); blocks of 0.1 s pass straight through
        rx = Receiver(source.info, wanted_modes(args), ppm=args.ppm, device_ppm=device_ppm, calibrate=True,
                      batch_s=READ_BLOCK_S, gate=not args.no_gate)
        unknown = unknown_saver(args, rx)
    except (ValueError, SDRError, OSError) as err:
        if source is not None:
            source.close()
        close_sinks(sinks)
        print(f"wmbus-sdr rx: {named(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        close_sinks(sinks)
        return 0

    def status(s: LiveStatus) -> None:
        if not args.quiet and not s.final:
            restarts = f"  restarts {s.restarts}" if s.restarts else ""
            ppm = f"  ppm {s.ppm:+.1f}" if s.ppm is not None else ""
            print(f"\r{s.seconds:7.0f} s  {s.frames} frames ({s.frames_per_min:.1f}/min)  "
                  f"{s.meters} meters  CPU {s.cpu_percent:.1f} %  dropped {s.dropped_samples}{ppm}{restarts}",
                  end="", file=sys.stderr, flush=True)

    inventory = Inventory()
    result, rc = None, 0
    try:
        # sinks that report the receiver's health (MQTT: HA receiver device, ppm in raw messages)
        watchers = [status, *(s.on_status for s in sinks if hasattr(s, "on_status"))]
        result = run_live(source, rx, sinks, keys=keys, dedup_s=args.dedup, inventory=inventory, on_status=watchers,
                          stop_after_s=args.duration, save_iq=saver, auto_ppm=args.auto_ppm)
    except KeyboardInterrupt:  # a second Ctrl-C while the last bursts were flushed
        pass
    except (SDRError, OSError) as err:
        print(f"\nwmbus-sdr rx: {named(err)}", file=sys.stderr)
        rc = 1
    finally:
        source.close()
        close_sinks(sinks)
    frames = result["frames"] if result else sum(s.frames for s in inventory.meters.values())
    extra = ""
    if result:
        extra = (f", {result['rejected']} rejected, {result['duplicates']} duplicates, "
                 f"{result['dropped_samples']} samples dropped, CPU {result['cpu_percent']:.1f} %")
        if result["restarts"] or result["stalls"]:
            extra += f", {result['stalls']} stalls, {result['restarts']} reopens"
        if result["latency_max_s"] is not None:
            extra += (f", latency median {result['latency_median_s']:.2f} s / max "
                      f"{result['latency_max_s']:.2f} s")
    print(f"\n{args.device}: {frames} frames from {len(inventory.meters)} meters{extra}", file=sys.stderr)
    for sink in sinks:  # e.g. the mqtt output: published, dropped, reconnects
        if hasattr(sink, "summary"):
            print(sink.summary(), file=sys.stderr)
    est = rx.ppm_estimate
    if est is not None:
        advice = f"; run with --ppm {est.ppm:.0f}" if est.settled and abs(est.ppm - rx.correction_ppm) >= 5 else ""
        applied = f" (correction in force: {rx.correction_ppm:g} ppm)" if rx.correction_ppm else ""
        print(f"tuner frequency error: {est.describe()}{applied}{advice}", file=sys.stderr)
    if not frames and rx.samples_in:
        hint = zero_frame_hint(rx.stats, rx.modes, sample_rate_hz=source.info.sample_rate_hz,
                               center_freq_hz=source.info.center_freq_hz)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
    if unknown is not None:
        print(f"--save-unknown: {unknown.saved} bursts without a valid frame saved to {args.save_unknown}"
              + (f" ({unknown.skipped} more left out by the rate limit)" if unknown.skipped else ""), file=sys.stderr)
    if args.inventory and inventory.meters:
        print(inventory.table(), file=sys.stderr)
    return rc
