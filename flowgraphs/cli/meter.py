"""``wmbus-sdr meter``: emulate a meter live — transmit through SoapySDR, listen on any IQ source."""

from __future__ import annotations

import argparse
import re

from . import options
from .gateway import add_radio_options, open_tx, run_live

HELP = """\
Act as a bidirectional meter for testing a gateway: send an installation request (SND-IR, then
readings once a CNF-IR confirms it), access offers (ACC-NR), access demands (ACC-DMD) or readings
(SND-NR) every --interval seconds on the mode's uplink (T2 / C2: 868.95 MHz, S2: 868.30 MHz)
through a TX-capable SoapySDR device; listen in the response window after each frame on the
downlink (T2 / S2: 868.30 MHz, C2: 869.525 MHz) through --device; answer REQ-UD1/2 with RSP-UD and
SND-UD with ACK. Every exchange is logged with the gateway's measured delay and whether it started
inside the window (phy.md §6: T2 2-3 ms, S2 3-50 ms, C2 99.5-100.5 ms).

Before it starts, the meter measures its own turnaround (a request received to its answer
modulated) and says which windows its answers can meet. Timing is kept in host time: without
device timestamps the window is widened by --slack (default 5 ms) for USB buffering.

examples:
  wmbus-sdr meter --device rtlsdr:0 --tx soapy:driver=hackrf --mode C2 --send SND-IR --interval 30
  wmbus-sdr meter --device rtltcp://127.0.0.1:1234 --tx soapy:driver=lime --mode S2 --send ACC-DMD --count 1
  wmbus-sdr meter --device rtlsdr:0 --tx soapy:driver=hackrf --mode T2 --send SND-NR --interval 120 --synchronous
"""


def add_parser(sub) -> None:
    p = sub.add_parser("meter", help="emulate a bidirectional meter live (for testing gateways)", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_radio_options(p, device_help="receive the downlink from this source (as for rx)", center_default=None,
                      center_help="receive centre (default 250 kHz below the downlink channel)",
                      turnaround_help="seconds from a request's end to the answer (default: the middle of the "
                      "window)")
    p.add_argument("--mode", default="C2", type=str.upper, help="T2, S2 or C2 (default C2)")
    p.add_argument("--send", default="SND-IR", type=str.upper, metavar="KIND",
                   help="SND-IR (default), SND-NR, ACC-NR or ACC-DMD")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between scheduled frames (default 10)")
    p.add_argument("--synchronous", action="store_true",
                   help="set the synchronous bit and scale each interval by the access number (phy.md §6.3)")
    p.add_argument("--count", type=int, help="stop scheduling after this many frames")
    p.add_argument("--manufacturer", default="ELS", help="three-letter manufacturer code (default ELS)")
    p.add_argument("--id", default="12345678", help="8-digit meter identification (default 12345678)")
    p.add_argument("--device-type", type=lambda v: int(v, 0), default=7, help="device type (default 7, water)")
    p.add_argument("--volume", type=int, default=12345678, help="the reading, in litres (default 12345678)")
    options.add_key_options(p, key_file=False, key_help="AES-128 key: frames with data are sent with security mode 5")
    p.add_argument("--slack", type=float, default=5e-3, help="widen the listening window by this many seconds "
                   "(host-time uncertainty, default 0.005)")


def run(args) -> int:
    from dsp.modes import MODES

    from ..stations.meter_live import SENDS, LiveMeter, downlink_center
    from ..stations.session import PROFILES, MeterLogic

    LIVE_MODES = ("T2", "S2", "C2")

    def open_station():
        if args.mode not in LIVE_MODES:  # R2 and F2 dialogues run in `session` only (not tried live yet)
            raise ValueError(f"--mode {args.mode}: the live meter runs {', '.join(LIVE_MODES)}")
        profile = PROFILES[args.mode]
        sink = open_tx(args, MODES[profile.uplink].channel_hz)
        if args.send not in SENDS:
            raise ValueError(f"--send {args.send}: a meter sends {', '.join(SENDS)}")
        if not re.fullmatch(r"\d{8}", args.id):
            raise ValueError(f"--id {args.id}: the identification number is 8 decimal digits")
        if not re.fullmatch(r"[A-Za-z]{3}", args.manufacturer):
            raise ValueError(f"--manufacturer {args.manufacturer}: give a three-letter code")
        key = options.single_key(args)
        logic = MeterLogic(profile, manufacturer=args.manufacturer.upper(), id=args.id, device_type=args.device_type,
                           key=key, volume_l=args.volume, synchronous=args.synchronous)
        source = options.open_source(args, center_freq_hz=args.center or downlink_center(profile))
        meter = LiveMeter(source.info, profile, sink, logic, send=args.send, interval_s=args.interval, count=args.count,
                          turnaround_s=args.turnaround, slack_s=args.slack, log=lambda line: print(line, flush=True))
        return meter, source, sink, profile

    return run_live(args, "meter", open_station, LiveMeter.summary)
