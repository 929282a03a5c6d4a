"""Conformance analysis of a capture: every decoded frame measured (dsp.measure), per-meter timing
(intervals, duty cycle, access numbers), limits per mode, JSON report (schema below).

report.json, schema_version 1:
  capture: {source, sample_rate_hz, center_freq_hz, duration_s}
  limits: {mode: {metric: [min, max]}}, limit_source
  frames: [{t_s, sample, mode, format, meter, telegram, rssi_dbfs, snr_db,
            measurements: {carrier_offset_hz, carrier_error_ppm, deviation_hz, deviation_peak_hz,
                           modulation_index, chip_rate_hz, chip_rate_error_ppm, timing_jitter_rms,
                           drift_hz, preamble_chips, sync_ok, eye_opening, code_violations,
                           duration_s, n_transitions, occupied_bw_hz (99 % power)},
            verdicts: {metric: {value, min, max, verdict: PASS|FAIL, status: PASS|FAIL|UNSURE}}}]
  meters: [{meter, modes, frames, interval_s: {mean, std, min, max} | null, access_numbers,
            repeats, airtime_s, duty_cycle_percent_per_hour (air time / capture time), duty_cycle_limit_percent,
            duty_cycle_verdict: PASS|FAIL, duty_cycle_status: UNSURE, rssi_dbfs}]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from dsp.measure import LIMIT_SOURCE, LIMITS, measure, verdicts
from dsp.modes import MODES
from mbus.errors import DecodeError
from mbus.telegram import decode as decode_telegram

from .receive import Receiver

SCHEMA_VERSION = 1
# duty-cycle limits of the 868 MHz sub-bands the modes transmit in (phy.md §7, UNSURE)
DUTY_LIMIT = {"S1": 1.0, "T1": 0.1, "C1": 0.1, "C2": 10.0}


def analyze(chunks: Iterable, info, *, modes=("S1", "T1", "C1"), meter: str | None = None, progress=None) -> dict:
    rx = Receiver(info, modes, keep_detail=True)
    frames, snippets = [], []
    last = 0

    def handle(f):
        if not f.crc_ok:
            return
        xs, r, rate, bin_error = f.detail
        mode = MODES[r.mode]
        sync_len = len(mode.sync_b if r.frame_format == "B" and mode.sync_b else mode.sync)
        sps = rate / r.chip_rate_hz
        m = measure(xs, rate, mode=r.mode, canonical=r.telegram, frame_format=r.frame_format,
                    sync_start=r.position - sync_len * sps, chip_rate_hz=r.chip_rate_hz, channel_offset_hz=bin_error,
                    violations=r.violations)
        try:
            t = decode_telegram(r.telegram, frame_format=None)
            who, acc = f"{t.meter.manufacturer_code} {t.meter.id}", t.access_number
        except DecodeError:
            who, acc = r.telegram[4:8][::-1].hex(), None
        if meter and meter not in who:
            return
        frames.append({"t_s": round(f.t_s, 6), "sample": f.sample, "mode": f.mode, "format": f.frame_format,
                       "meter": who, "access_number": acc, "telegram": f.telegram.hex(),
                       "rssi_dbfs": round(f.rssi_dbfs, 2), "snr_db": round(f.snr_db, 2),
                       "measurements": m.to_json(), "verdicts": verdicts(m)})
        if len(snippets) < 32:
            snippets.append({"meter": who, "mode": f.mode, "x": xs, "rate": rate, "t0": r.position - sync_len * sps,
                             "sps": rate / m.chip_rate_hz, "carrier": m.carrier_offset_hz - bin_error,
                             "deviation": m.deviation_hz})

    for chunk in chunks:
        for f in rx.process(chunk):
            handle(f)
        if progress is not None and chunk.end - last > 10 * info.sample_rate_hz:
            progress(chunk.end / info.sample_rate_hz, len(frames))
            last = chunk.end
    for f in rx.flush():
        handle(f)
    duration = rx.samples_in / info.sample_rate_hz
    return {"schema_version": SCHEMA_VERSION,
            "capture": {"source": info.source, "sample_rate_hz": info.sample_rate_hz,
                        "center_freq_hz": info.center_freq_hz, "duration_s": round(duration, 6)},
            "limits": {m: {k: list(v) for k, v in lim.items()} for m, lim in LIMITS.items()},
            "limit_source": LIMIT_SOURCE, "frames": frames, "meters": _meters(frames, duration),
            "_snippets": snippets}


def _meters(frames: list[dict], duration: float) -> list[dict]:
    by = defaultdict(list)
    for f in frames:
        by[f["meter"]].append(f)
    out = []
    for who, fs in sorted(by.items()):
        times = np.array([f["t_s"] for f in fs])
        iv = np.diff(times)
        airtime = float(sum(f["measurements"]["duration_s"] for f in fs))
        accs = [f["access_number"] for f in fs]
        repeats = sum(1 for a, b in zip(fs, fs[1:], strict=False) if a["telegram"] == b["telegram"])
        modes = sorted({f["mode"] for f in fs})
        limit = min(DUTY_LIMIT.get(m, 0.1) for m in modes)
        duty = 100 * airtime / duration if duration > 0 else 0.0
        out.append({"meter": who, "modes": modes, "frames": len(fs),
                    "interval_s": None if len(iv) == 0 else {"mean": round(float(iv.mean()), 4),
                                                             "std": round(float(iv.std()), 4),
                                                             "min": round(float(iv.min()), 4),
                                                             "max": round(float(iv.max()), 4)},
                    "access_numbers": accs, "repeats": repeats, "airtime_s": round(airtime, 6),
                    "duty_cycle_percent_per_hour": round(duty, 4), "duty_cycle_limit_percent": limit,
                    "duty_cycle_verdict": "PASS" if duty <= limit else "FAIL", "duty_cycle_status": "UNSURE",
                    "rssi_dbfs": {"min": min(f["rssi_dbfs"] for f in fs), "max": max(f["rssi_dbfs"] for f in fs)}})
    return out


def text_table(report: dict) -> str:
    lines = [f"{'t (s)':>9} {'mode':<5} {'meter':<14} {'carrier':>9} {'ppm':>6} {'dev kHz':>7} {'h':>5} "
             f"{'chip rate':>10} {'ppm':>7} {'pre':>4} {'jitter':>6} {'eye':>5} {'drift':>6} {'OBW kHz':>7}  verdicts"]
    for f in report["frames"]:
        m = f["measurements"]
        bad = [k for k, v in f["verdicts"].items() if v["verdict"] == "FAIL"]
        unsure = [k for k, v in f["verdicts"].items() if v["status"] == "UNSURE"]
        verdict = ("FAIL " + ",".join(bad)) if bad else ("pass" + (" (limits UNSURE)" if unsure else ""))
        lines.append(f"{f['t_s']:9.4f} {f['mode'] + '-' + (f['format'] or '?'):<5} {f['meter']:<14} "
                     f"{m['carrier_offset_hz'] / 1e3:+8.3f}k {m['carrier_error_ppm']:+6.1f} "
                     f"{m['deviation_hz'] / 1e3:7.2f} {m['modulation_index']:5.2f} {m['chip_rate_hz']:10.1f} "
                     f"{m['chip_rate_error_ppm']:+7.0f} {m['preamble_chips']:4d} {m['timing_jitter_rms']:6.3f} "
                     f"{m['eye_opening']:5.2f} {m['drift_hz']:+6.0f} {m['occupied_bw_hz'] / 1e3:7.1f}  {verdict}")
    if report["meters"]:
        lines.append("")
        lines.append(f"{'meter':<14} {'frames':>6} {'interval mean/std s':>20} {'duty %/h':>9} {'limit':>6}")
        for mt in report["meters"]:
            iv = mt["interval_s"]
            ivs = f"{iv['mean']:.3f} / {iv['std']:.3f}" if iv else "-"
            lines.append(f"{mt['meter']:<14} {mt['frames']:>6} {ivs:>20} {mt['duty_cycle_percent_per_hour']:9.4f} "
                         f"{mt['duty_cycle_limit_percent']:6.1f}")
    lines.append(f"limits: {report['limit_source']}")
    return "\n".join(lines)
