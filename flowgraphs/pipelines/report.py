"""HTML report of an analysis: report.json, index.html and matplotlib PNGs (spectrum, spectrogram
with frames marked, instantaneous frequency with chip decisions, eye diagram, meter intervals).

The capture's figures are accumulated while the analysis streams (:class:`CaptureFigures`): the
average spectrum over every 4096-sample segment and a spectrogram of at most ~1600 rows of 1024
samples, so memory stays bounded however long the capture.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

SPECTRUM_NFFT = 4096
SPECTROGRAM_NFFT = 1024
SPECTROGRAM_ROWS = 800  # at least this many rows (if the capture has them), fewer than twice as many


class CaptureFigures:
    """Spectrum and spectrogram of a capture fed in chunks of any size, with the same result
    whatever the chunking (segments are taken at absolute sample positions and summed in order).

    Average spectrum: the mean of |FFT|^2 of Hann-windowed 4096-sample segments. Spectrogram: the
    1024-sample segments whose index is a multiple of ``step``; with ``expected_samples`` known,
    step = rows // 800 (at least 1), else the step starts at 1 and doubles (dropping every other
    kept row) whenever 1600 rows are kept."""

    def __init__(self, expected_samples: int | None = None):
        self.n_samples = 0
        self._win_spec = np.hanning(SPECTRUM_NFFT)
        self._win_rows = np.hanning(SPECTROGRAM_NFFT)
        self._spec_sum = np.zeros(SPECTRUM_NFFT)
        self._spec_count = 0
        self._spec_tail = np.zeros(0, np.complex64)
        self._row_tail = np.zeros(0, np.complex64)
        self._row_index = 0  # absolute index of the next whole 1024-sample segment
        self._fixed = expected_samples is not None
        self.step = max(1, (expected_samples or 0) // SPECTROGRAM_NFFT // SPECTROGRAM_ROWS)
        self._rows: list[tuple[int, np.ndarray]] = []  # (segment index, power spectrum)

    def add(self, samples: np.ndarray) -> None:
        self.n_samples += len(samples)
        x = np.concatenate((self._spec_tail, samples)) if len(self._spec_tail) else samples
        whole = len(x) // SPECTRUM_NFFT * SPECTRUM_NFFT
        for a in range(0, whole, 64 * SPECTRUM_NFFT):  # bounded work arrays
            seg = x[a:min(whole, a + 64 * SPECTRUM_NFFT)].reshape(-1, SPECTRUM_NFFT)
            p = np.abs(np.fft.fftshift(np.fft.fft(seg * self._win_spec, axis=1), axes=1)) ** 2
            for row in p:  # in order: the sum does not depend on the chunking
                self._spec_sum += row
            self._spec_count += len(p)
        self._spec_tail = x[whole:].copy()
        y = np.concatenate((self._row_tail, samples)) if len(self._row_tail) else samples
        nrows = len(y) // SPECTROGRAM_NFFT
        first = self._row_index
        pick = [j for j in range(first, first + nrows) if j % self.step == 0]
        if pick:
            idx = np.array(pick) - first
            seg = y[: nrows * SPECTROGRAM_NFFT].reshape(-1, SPECTROGRAM_NFFT)[idx]
            spec = np.abs(np.fft.fftshift(np.fft.fft(seg * self._win_rows, axis=1), axes=1)) ** 2
            self._rows.extend(zip(pick, spec, strict=True))
        self._row_index += nrows
        self._row_tail = y[nrows * SPECTROGRAM_NFFT:].copy()
        while not self._fixed and len(self._rows) >= 2 * SPECTROGRAM_ROWS:
            self.step *= 2
            self._rows = [(j, r) for j, r in self._rows if j % self.step == 0]

    @property
    def psd(self) -> np.ndarray | None:
        """Mean power spectrum (fftshifted), None before one whole segment."""
        return self._spec_sum / self._spec_count if self._spec_count else None

    @property
    def spectrogram(self) -> np.ndarray | None:
        """Power spectra of the kept rows, one per row (fftshifted)."""
        return np.array([r for _, r in self._rows]) if self._rows else None


def write_report(report: dict, directory: str | Path, figures: CaptureFigures | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    snippets = report.pop("_snippets", [])
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    images = []
    cap = report["capture"]
    fs, fc = cap["sample_rate_hz"], cap["center_freq_hz"]

    psd = figures.psd if figures is not None else None
    if psd is not None:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        nfft = SPECTRUM_NFFT
        f = (np.arange(nfft) - nfft / 2) * fs / nfft + fc
        ax.plot(f / 1e6, 10 * np.log10(psd + 1e-20), lw=0.7)
        ax.set(xlabel="MHz", ylabel="dB", title="Average spectrum")
        _save(fig, out / "spectrum.png", images, "Average spectrum of the capture")
    spec = figures.spectrogram if figures is not None else None
    if spec is not None:
        fig, ax = plt.subplots(figsize=(9, 3.6))
        ax.imshow(10 * np.log10(spec.T + 1e-20), aspect="auto", origin="lower", cmap="viridis",
                  extent=[0, figures.n_samples / fs, (fc - fs / 2) / 1e6, (fc + fs / 2) / 1e6])
        for fr in report["frames"]:
            ax.axvline(fr["t_s"], color="r", lw=0.6)
            ax.text(fr["t_s"], (fc + fs / 2.2) / 1e6, fr["mode"], color="w", fontsize=7)
        ax.set(xlabel="s", ylabel="MHz", title="Spectrogram, decoded frames marked")
        _save(fig, out / "spectrogram.png", images, "Spectrogram with the decoded frames marked")

    for i, sn in enumerate(snippets[:4]):
        x, rate, t0, sps = sn["x"], sn["rate"], sn["t0"], sn["sps"]
        d = np.angle(x[1:] * np.conj(x[:-1])) * rate / (2 * np.pi) - sn["carrier"]
        a, b = max(int(t0 - 20 * sps), 0), min(int(t0 + 120 * sps), len(d))
        fig, ax = plt.subplots(figsize=(9, 3))
        t = np.arange(a, b)
        ax.plot((t - t0) / sps, d[a:b] / 1e3, lw=0.7)
        centres = np.arange(0, int((b - t0) / sps)) + 0.5
        vals = np.interp(t0 + centres * sps, t, d[a:b])
        ax.plot(centres, vals / 1e3, "o", ms=2.5)
        ax.axhline(sn["deviation"] / 1e3, ls=":", c="k", lw=0.6)
        ax.axhline(-sn["deviation"] / 1e3, ls=":", c="k", lw=0.6)
        ax.set(xlabel="chips from the sync word", ylabel="kHz", title=f"{sn['meter']} {sn['mode']}: frequency")
        _save(fig, out / f"frequency_{i}.png", images, f"Instantaneous frequency with chip decisions, {sn['meter']}")
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        span = int(2 * sps)
        for k in range(0, 300):
            s0 = int(t0 + k * sps - sps / 2)
            if s0 < 0 or s0 + span >= len(d):
                break
            ax.plot(np.arange(span) / sps, d[s0:s0 + span] / 1e3, c="b", alpha=0.08, lw=0.8)
        ax.set(xlabel="chips", ylabel="kHz", title=f"Eye, {sn['mode']}")
        _save(fig, out / f"eye_{i}.png", images, f"Eye diagram, {sn['meter']} {sn['mode']}")

    meters = [m for m in report["meters"] if m["interval_s"]]
    if meters:
        fig, ax = plt.subplots(figsize=(6, 3))
        for m in meters:
            times = [f["t_s"] for f in report["frames"] if f["meter"] == m["meter"]]
            ax.hist(np.diff(times), bins=20, alpha=0.6, label=m["meter"])
        ax.set(xlabel="s", ylabel="count", title="Transmission intervals per meter")
        ax.legend(fontsize=7)
        _save(fig, out / "intervals.png", images, "Transmission intervals per meter")
    plt.close("all")
    (out / "index.html").write_text(_html(report, images))
    return out / "index.html"


def _save(fig, path: Path, images: list, caption: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    images.append((path.name, caption))


def _html(report: dict, images: list) -> str:
    from .analyze import text_table

    cap = report["capture"]
    rows = []
    for f in report["frames"]:
        m = f["measurements"]
        bad = [k for k, v in f["verdicts"].items() if v["verdict"] == "FAIL"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            f"{f['t_s']:.4f}", f"{f['mode']}-{f['format']}", f["meter"],
            f"{m['carrier_offset_hz']:+.0f} \u00b1 {m.get('carrier_std_hz', float('nan')):.0f}",
            f"{m['carrier_error_ppm']:+.1f}", f"{m['deviation_hz'] / 1e3:.2f}", f"{m['chip_rate_hz']:.1f}",
            f"{m['chip_rate_error_ppm']:+.0f}", m["preamble_chips"], m["postamble_chips"],
            f"{m['timing_jitter_rms']:.3f}",
            f"{m['eye_opening']:.2f}", f"{m['occupied_bw_hz'] / 1e3:.1f}",
            "FAIL " + ", ".join(bad) if bad else "pass (limits UNSURE)")) + "</tr>")
    figs = "\n".join(f'<figure><img src="{html.escape(n)}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}'
                     f"</figcaption></figure>" for n, c in images)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wmbus-sdr conformance report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}} figure{{display:inline-block;margin:8px}}
img{{max-width:100%;border:1px solid #ddd}} pre{{background:#f6f6f6;padding:8px;font-size:12px}}</style></head>
<body><h1>Conformance report</h1>
<p>{html.escape(str(cap['source']))}: {cap['duration_s']:.2f} s at {cap['sample_rate_hz'] / 1e6:g} Msps,
centre {cap['center_freq_hz'] / 1e6:.4f} MHz, {len(report['frames'])} frames from {len(report['meters'])} meters.
Limits: {html.escape(report['limit_source'])}.</p>
<table><tr><th>t (s)</th><th>mode</th><th>meter</th><th>carrier Hz (\u00b1 std)</th><th>ppm</th><th>dev kHz</th>
<th>chip rate</th><th>ppm</th><th>preamble</th><th>postamble</th><th>jitter</th><th>eye</th><th>OBW 99 % kHz</th>
<th>verdict</th></tr>
{''.join(rows)}</table>
{figs}
<h2>Text summary</h2><pre>{html.escape(text_table(report))}</pre>
<script>
window.addEventListener("load", () => {{
  const imgs = [...document.images];
  document.body.dataset.images = imgs.filter(i => i.complete && i.naturalWidth > 0).length + "/" + imgs.length;
}});
</script>
</body></html>
"""
