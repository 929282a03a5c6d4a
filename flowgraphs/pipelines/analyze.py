"""Conformance analysis of a capture: every decoded frame measured (dsp.measure), per-meter timing
(intervals, duty cycle, access numbers), limits per mode, JSON report (schema below).

report.json, schema_version 1:
  capture: {source, sample_rate_hz, center_freq_hz, duration_s}
  limits: {mode: {metric: [min, max]}}, limit_source
  frames: [{t_s, sample, mode, format, meter, telegram, rssi_dbfs, [rssi_dbm with --cal-offset], snr_db,
            measurements: {carrier_offset_hz, carrier_error_ppm, deviation_hz, deviation_peak_hz,
                           modulation_index, chip_rate_hz, chip_rate_error_ppm, timing_jitter_rms,
                           drift_hz, preamble_chips, postamble_chips, sync_ok, eye_opening, code_violations,
                           duration_s, n_transitions, occupied_bw_hz (99 % power), carrier_std_hz and
                           drift_std_hz (standard errors of carrier_offset_hz and drift_hz)},
            verdicts: {metric: {value, min, max, verdict: PASS|FAIL, status: PASS|FAIL|UNSURE}}}]
  meters: [{meter, modes, frames, interval_s: {mean, std, min, max} | null, access_numbers,
            repeats, airtime_s, duty_cycle_percent_per_hour (air time / capture time), duty_cycle_limit_percent,
            duty_cycle_verdict: PASS|FAIL, duty_cycle_status: UNSURE, rssi_dbfs,
            schedule: null (< 3 frames) | {model: periodic|synchronous|irregular,
                      periodic: {period_s, rms_s}, synchronous: {t_nom_s, rms_s, reading, status}}}]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from dsp.measure import LIMIT_SOURCE, conformance_limits, measure, verdicts
from dsp.modes import MODES
from mbus.errors import DecodeError
from mbus.telegram import decode as decode_telegram

from .receive import DEFAULT_MODES, Receiver

SCHEMA_VERSION = 1
DUTY_LIMIT_UNKNOWN = 0.1  # duty cycle assumed for a mode the registry does not know (the strictest band)


def duty_limit(mode: str) -> float:
    """Duty-cycle limit (percent) of the sub-band the mode transmits in (ModeSpec.duty_cycle_percent)."""
    spec = MODES.get(mode)
    return spec.duty_cycle_percent if spec is not None else DUTY_LIMIT_UNKNOWN


def analyze(chunks: Iterable, info, *, modes=DEFAULT_MODES, meter: str | None = None, progress=None,
            cal_offset_db: float | None = None) -> dict:
    """Measure every frame; ``cal_offset_db`` (dBm = dBFS + offset, from one measurement with a
    signal generator at the same gain) adds rssi_dbm to each frame."""
    rx = Receiver(info, modes, keep_detail=True)
    frames, snippets = [], []
    last = 0

    def handle(f):
        if not f.crc_ok:
            return
        xs, r, rate, bin_error = f.detail.samples, f.detail.result, f.detail.sample_rate_hz, f.detail.bin_error_hz
        m = measure(xs, rate, mode=r.mode, canonical=r.telegram, frame_format=r.frame_format,
                    sync_start=r.sync_start, chip_rate_hz=r.chip_rate_hz, channel_offset_hz=bin_error,
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
                       **({} if cal_offset_db is None else {"rssi_dbm": round(f.rssi_dbfs + cal_offset_db, 2)}),
                       "measurements": m.to_json(), "verdicts": verdicts(m)})
        if len(snippets) < 32:
            snippets.append({"meter": who, "mode": f.mode, "x": xs, "rate": rate, "t0": r.sync_start,
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
            "limits": {m: {k: list(v) for k, v in lim.items()} for m, lim in conformance_limits().items()},
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
        limit = min(duty_limit(m) for m in modes)
        duty = 100 * airtime / duration if duration > 0 else 0.0
        out.append({"meter": who, "modes": modes, "frames": len(fs),
                    "interval_s": None if len(iv) == 0 else {"mean": round(float(iv.mean()), 4),
                                                             "std": round(float(iv.std()), 4),
                                                             "min": round(float(iv.min()), 4),
                                                             "max": round(float(iv.max()), 4)},
                    "access_numbers": accs, "repeats": repeats, "airtime_s": round(airtime, 6),
                    "duty_cycle_percent_per_hour": round(duty, 4), "duty_cycle_limit_percent": limit,
                    "duty_cycle_verdict": "PASS" if duty <= limit else "FAIL", "duty_cycle_status": "UNSURE",
                    "rssi_dbfs": {"min": min(f["rssi_dbfs"] for f in fs), "max": max(f["rssi_dbfs"] for f in fs)},
                    "schedule": schedule_fit(times, accs)})
    return out


def _schedule_text(sc: dict | None) -> str:
    if sc is None:
        return "- (fewer than 3 frames)"
    if sc["model"] == "synchronous":
        s = sc["synchronous"]
        return f"synchronous, t_nom {s['t_nom_s']:.4f} s (rms {s['rms_s'] * 1e3:.3f} ms, UNSURE formula)"
    if sc["model"] == "periodic":
        p = sc["periodic"]
        return f"periodic {p['period_s']:.4f} s (rms {p['rms_s'] * 1e3:.3f} ms)"
    return "irregular"


def sync_factor(acc: int) -> float:
    """Interval factor of a synchronous transmission with access number ``acc`` (phy.md §6.3, quoted
    from EN 13757-4 in vendor code, UNSURE): t_ACC = (1 + (|nACC - 128| - 64) / 2048) x t_nom."""
    return 1 + (abs(acc - 128) - 64) / 2048


def schedule_fit(times: np.ndarray, accs: list) -> dict | None:
    """How well the frame times fit a plain period and the synchronous schedule.

    periodic: t_i = t_0 + k_i P (k_i whole, frames may be missed); synchronous: each interval is
    the sum of sync_factor(n) x t_nom over the access numbers it spans, read with the number of the
    frame that ends the interval ("next") or starts it ("previous") — the digest does not say which.
    Residuals are RMS seconds; the better synchronous reading is reported."""
    times = np.asarray(times, dtype=float)
    if len(times) < 3:
        return None
    iv = np.diff(times)
    out: dict = {"periodic": None, "synchronous": None, "model": "irregular"}
    base = float(np.min(iv[iv > 0])) if np.any(iv > 0) else 0.0
    if base > 0:
        k = np.round((times - times[0]) / base)
        (t0, period), *_ = np.linalg.lstsq(np.vstack([np.ones_like(k), k]).T, times, rcond=None)
        res = times - (t0 + period * k)
        out["periodic"] = {"period_s": round(float(period), 6), "rms_s": float(np.sqrt(np.mean(res ** 2)))}
    if all(isinstance(a, int) for a in accs):
        best = None
        for reading in ("next", "previous"):
            weights = []
            for a, b in zip(accs, accs[1:], strict=False):
                steps = (b - a) % 256 or 256
                span = [(a + j) % 256 for j in (range(1, steps + 1) if reading == "next" else range(steps))]
                weights.append(sum(sync_factor(n) for n in span))
            w = np.array(weights)
            t_nom = float(np.dot(w, iv) / np.dot(w, w))
            rms = float(np.sqrt(np.mean((iv - t_nom * w) ** 2)))
            if best is None or rms < best["rms_s"]:
                best = {"t_nom_s": round(t_nom, 6), "rms_s": rms, "reading": reading, "status": "UNSURE"}
        out["synchronous"] = best
    fits = [(v["rms_s"], name) for name, v in (("periodic", out["periodic"]), ("synchronous", out["synchronous"]))
            if v is not None]
    if fits:
        rms, name = min(fits)
        mean_iv = float(np.mean(iv))
        if rms < 1e-3 * mean_iv + 1e-4:  # within 0.1 % of the interval (+0.1 ms of timing noise)
            out["model"] = name
    for v in (out["periodic"], out["synchronous"]):
        if v is not None:
            v["rms_s"] = round(v["rms_s"], 7)
    return out


def text_table(report: dict) -> str:
    lines = [f"{'t (s)':>9} {'mode':<5} {'meter':<14} {'carrier':>9} {'ppm':>6} {'dev kHz':>7} {'h':>5} "
             f"{'chip rate':>10} {'ppm':>7} {'pre':>4} {'post':>4} {'jitter':>6} {'eye':>5} {'drift +-std':>11} "
             f"{'OBW kHz':>7}  verdicts"]
    for f in report["frames"]:
        m = f["measurements"]
        bad = [k for k, v in f["verdicts"].items() if v["verdict"] == "FAIL"]
        unsure = [k for k, v in f["verdicts"].items() if v["status"] == "UNSURE"]
        verdict = ("FAIL " + ",".join(bad)) if bad else ("pass" + (" (limits UNSURE)" if unsure else ""))
        lines.append(f"{f['t_s']:9.4f} {f['mode'] + '-' + (f['format'] or '?'):<5} {f['meter']:<14} "
                     f"{m['carrier_offset_hz'] / 1e3:+8.3f}k {m['carrier_error_ppm']:+6.1f} "
                     f"{m['deviation_hz'] / 1e3:7.2f} {m['modulation_index']:5.2f} {m['chip_rate_hz']:10.1f} "
                     f"{m['chip_rate_error_ppm']:+7.0f} {m['preamble_chips']:4d} {m['postamble_chips']:4d} "
                     f"{m['timing_jitter_rms']:6.3f} "
                     f"{m['eye_opening']:5.2f} {m['drift_hz']:+6.0f}+-{m.get('drift_std_hz', float('nan')):<3.0f} "
                     f"{m['occupied_bw_hz'] / 1e3:7.1f}  {verdict}")
    if report["meters"]:
        lines.append("")
        lines.append(f"{'meter':<14} {'frames':>6} {'interval mean/std s':>20} {'duty %/h':>9} {'limit':>6}  schedule")
        for mt in report["meters"]:
            iv = mt["interval_s"]
            ivs = f"{iv['mean']:.3f} / {iv['std']:.3f}" if iv else "-"
            lines.append(f"{mt['meter']:<14} {mt['frames']:>6} {ivs:>20} {mt['duty_cycle_percent_per_hour']:9.4f} "
                         f"{mt['duty_cycle_limit_percent']:6.1f}  {_schedule_text(mt['schedule'])}")
    lines.append(f"limits: {report['limit_source']}")
    return "\n".join(lines)
