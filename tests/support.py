"""Small helpers several test files share: free ports, waiting for a condition, a frame to render,
the bundled recording with a known start time."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from flowgraphs.pipelines.receive import RxFrame

REPO = Path(__file__).resolve().parent.parent
RECORDING = REPO / "recordings" / "example_868.625M_2M4.sigmf-meta"
T0 = "2026-12-01T19:55:00.250Z"  # the start time timed_recording() gives the bundled recording
T0_NS = 1_796_154_900_250_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout_s: float = 60.0, what: str = "condition"):
    """Poll ``condition`` every 0.1 s until it returns something true (returned); AssertionError
    naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sample_frame(**kw) -> RxFrame:
    """A CRC-valid T1 frame with a known time and signal; ``kw`` replaces fields."""
    base = dict(mode="T1", frame_format="A", telegram=bytes.fromhex("0a44b3212659413101047a00"), crc_ok=True,
                reason="ok", sample=2_400_000, end_sample=2_410_000, sample_rate_hz=2.4e6,
                time_ns=1_796_154_900_123_456_789, rssi_dbfs=-30.25, noise_dbfs=-60.0, snr_db=30.25,
                freq_offset_hz=1e3, chip_rate_hz=100e3, channel_hz=868.95e6, violations=0)
    return RxFrame(**{**base, **kw})


def timed_recording(tmp_path: Path) -> Path:
    """The bundled recording with a core:datetime (T0), so every frame has a known UTC time."""
    meta = RECORDING.read_text().replace('"core:frequency"', f'"core:datetime": "{T0}", "core:frequency"', 1)
    (tmp_path / "r.sigmf-meta").write_text(meta)
    (tmp_path / "r.sigmf-data").symlink_to(RECORDING.with_suffix(".sigmf-data"))
    return tmp_path / "r.sigmf-meta"
