"""``wmbus-sdr gateway``: answer meters live — receive from any IQ source, transmit through SoapySDR."""

from __future__ import annotations

import argparse
import sys

from . import options

HELP = """\
Listen for meter frames and answer them inside the meter's window: CNF-IR to an installation
request (SND-IR), ACK to an access demand (ACC-DMD) followed by the queued --request, the next
request or SND-NKE after the meter's RSP-UD. Replies go out through a TX-capable SoapySDR device
on the mode's downlink channel (T2: 868.30 MHz, S2: 868.30 MHz, C2: 869.525 MHz).

Before listening, the gateway measures its own turnaround on this machine (the chunk still
filling after a frame, demodulation, the reply's modulation) and says which modes' windows it can
meet: C2's 100 ms and usually S2's 3-50 ms are within reach over USB; T2's 2-3 ms is not without
hardware timestamps. A reply that would start after the window is logged as MISSED, not sent.

examples:
  wmbus-sdr gateway --device rtlsdr:0 --tx soapy:driver=hackrf --mode C2 --request REQ-UD2 --keys meters.keys
  wmbus-sdr gateway --device rtltcp://127.0.0.1:1234 --tx soapy:driver=lime --mode S2 --duration 600
"""


def add_radio_options(p, *, device_help: str, center_default: float | None, center_help: str,
                      turnaround_help: str) -> None:
    """The options a live station (gateway or meter) needs for its receiver and its TX sink."""
    options.add_source_options(p, device="required", device_help=device_help, rate_default=1.6e6,
                               rate_help="receive sample rate (default 1.6e6)", center_default=center_default,
                               center_help=center_help)
    p.add_argument("--tx", required=True, metavar="SINK",
                   help="transmit through this TX sink: soapy:ARGS (a SoapySDR device), file:PATH.cu8, memory:NAME")
    p.add_argument("--tx-rate", type=float, default=1.2e6, help="transmit sample rate (default 1.2e6)")
    p.add_argument("--gain", type=float, default=0.0, help="TX gain in dB (default 0, the safe limit)")
    p.add_argument("--max-gain", type=float, default=0.0, help="raise the TX gain limit")
    p.add_argument("--turnaround", type=float, help=turnaround_help)
    p.add_argument("--duration", type=float, help="stop after this many seconds")


def open_tx(args, center_freq_hz: float):
    """The TX sink named by ``--tx`` (not opened yet); ValueError when it names none."""
    return options.open_tx(args.tx, sample_rate_hz=args.tx_rate, center_freq_hz=center_freq_hz, gain_db=args.gain,
                           max_gain_db=args.max_gain)


def run_live(args, role: str, open_station, summary) -> int:
    """A live station (gateway or meter) from its options to the exit status: ``open_station()``
    builds it and returns (station, source, sink, profile), raising ValueError for a bad option;
    say which windows this machine can meet (its measured turnaround), run the station on the
    source's chunks with the sink open, for --duration or until the source ends, then print
    ``summary(station)``. Status 2 for an option or device error, 0 otherwise (Ctrl-C too)."""
    from sdr.errors import SDRError

    from ..pipelines.live import for_seconds
    from ..stations.gateway_live import measure_turnaround
    from ..stations.session import reachable_statement

    station = None
    try:
        station, source, sink, profile = open_station()
        measured = measure_turnaround(source.info, profile, 1 << 15, args.tx_rate, role=role)
        print(reachable_statement(measured), file=sys.stderr, flush=True)
        with sink:  # for_seconds opens and closes the source
            station.run(for_seconds(source, args.duration or float("inf")))
    except (ValueError, SDRError, OSError) as err:
        print(f"wmbus-sdr {role}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    if station is not None:
        print(summary(station), file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("gateway", help="answer meters live (installation, access demand)", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_radio_options(p, device_help="receive from this source (as for rx)", center_default=868.625e6,
                      center_help="receive centre (default 868.625e6)",
                      turnaround_help="seconds from a meter frame's end to the reply (default: the middle of the "
                      "window)")
    p.add_argument("--mode", default="C2", choices=("T2", "S2", "C2"), type=str.upper)
    p.add_argument("--request", action="append", default=[], metavar="KIND",
                   help="queue a request for the next access (REQ-UD2, REQ-UD1, SND-NKE); repeatable")
    options.add_key_options(p, key_help="AES-128 key for any meter (to log decrypted readings)")


def run(args) -> int:
    from dsp.modes import MODES
    from mbus.builder import KINDS

    from ..stations.gateway_live import LiveGateway
    from ..stations.session import PROFILES, GatewayLogic

    profile = PROFILES[args.mode]

    def open_station():
        sink = open_tx(args, MODES[profile.downlink].channel_hz)
        for kind in args.request:
            if kind.upper() not in KINDS or KINDS[kind.upper()].from_meter:
                raise ValueError(f"--request {kind}: use a request to a meter (REQ-UD1, REQ-UD2, SND-NKE, ...)")
        logic = GatewayLogic(options.key_store(args))
        logic.queue.extend(k.upper() for k in args.request)
        source = options.open_source(args)
        gw = LiveGateway(source.info, profile, sink, logic=logic, turnaround_s=args.turnaround,
                         log=lambda line: print(line, flush=True))
        return gw, source, sink, profile

    return run_live(args, "gateway", open_station, _summary)


def _summary(gw) -> str:
    sent = sum(e.sent for e in gw.events)
    return f"{sent} replies sent, {len(gw.events) - sent} missed; readings: {len(gw.logic.readings)}"
