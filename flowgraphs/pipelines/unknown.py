"""Donate a sample: bursts with energy but no valid frame, saved as annotated SigMF snippets
(``rx`` / ``decode --save-unknown DIR``), so users can send captures of meters we cannot decode yet.

Each snippet is the burst as the receiver's channeliser cut it: complex baseband at the channel
rate, centred on the channel (small: a 1 s N burst is 15 ksps), with one annotation naming the band
and channel, the modes planned there (the best guess of what it was), why nothing came out (no sync
word, or the rejection reason of the best attempt) and the burst's SNR. Rate-limited: at most one
snippet per channel every ``min_interval_s`` of stream time and ``max_files`` in all, so a busy band
or a jammer cannot fill the disk.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sdr.file import write_sigmf

from .receive import UnknownBurst, channel_name

log = logging.getLogger(__name__)


class UnknownSaver:
    """Callable for ``Receiver.on_unknown``: writes the bursts it is given, within its limits."""

    def __init__(self, directory: str | Path, *, input_rate_hz: float, min_interval_s: float = 10.0,
                 max_files: int = 200):
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"--save-unknown {directory}: cannot create the directory ({err.strerror})") from None
        self.input_rate_hz = float(input_rate_hz)
        self.min_interval_s = float(min_interval_s)
        self.max_files = int(max_files)
        self.saved = 0
        self.skipped = 0  # bursts left out by the rate limit
        self._last: dict[str, float] = {}  # channel -> stream time of its last snippet

    def __call__(self, burst: UnknownBurst) -> None:
        t = burst.sample / self.input_rate_hz
        last = self._last.get(burst.channel)
        if self.saved >= self.max_files or (last is not None and t - last < self.min_interval_s):
            self.skipped += 1
            return
        self._last[burst.channel] = t
        name = f"unknown_{channel_name(burst.channel_hz)}MHz_{burst.sample}"
        guess = "/".join(burst.modes)
        note = {"core:sample_start": 0, "core:sample_count": len(burst.samples),
                "core:freq_lower_edge": burst.channel_hz - burst.sample_rate_hz / 2,
                "core:freq_upper_edge": burst.channel_hz + burst.sample_rate_hz / 2,
                "core:label": f"unknown burst, {guess}?", "core:comment": f"no valid frame: {burst.reason}",
                "wmbus:band": f"{channel_name(burst.channel_hz)} MHz", "wmbus:mode_guess": guess,
                "wmbus:reason": burst.reason, "wmbus:snr_db": round(burst.snr_db, 1),
                "wmbus:stream_sample": burst.sample}
        if burst.time_ns is not None:
            note["wmbus:time_ns"] = burst.time_ns
        try:
            write_sigmf(self.dir / name, np.asarray(burst.samples, dtype=np.complex64).tobytes(), fmt="cf32",
                        sample_rate_hz=burst.sample_rate_hz, center_freq_hz=burst.channel_hz, annotations=[note],
                        description=f"wmbus-sdr --save-unknown: a burst on {channel_name(burst.channel_hz)} MHz "
                                    f"({guess}) that gave no valid frame ({burst.reason}); stream sample "
                                    f"{burst.sample}")
        except OSError as err:
            log.warning("--save-unknown: cannot write %s: %s", self.dir / name, err.strerror)
            return
        self.saved += 1
