"""The watchdog: a source that stops delivering samples is reopened (counted, logged with the
device's name), frames keep their true times across the stall, and a source that stays stuck ends
`rx` with status 1 naming the device, so that systemd restarts it. Also the smaller promises of
`rx`: Ctrl-C / SIGTERM keep the summary, --version, the zero-frame hint, errors that name the device."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dsp.channel import Burst, render
from dsp.modes import MODES
from sdr.errors import SDRError
from sdr.formats import from_complex
from sdr.source import Source
from sdr.types import StreamInfo
from tests.air import PacedRtlTcp

REPO = Path(__file__).resolve().parent.parent
RECORDING = REPO / "recordings" / "example_868.625M_2M4.sigmf-meta"
KEYS = REPO / "recordings" / "keys.txt"

_BODY = bytes.fromhex("44931578563412330378") + bytes(range(0xA0, 0xC4))
TEL = bytes([len(_BODY)]) + _BODY


def _t1_capture(seconds: float, *, rate: float = 800_000.0, every_s: float = 0.5, render_rate: float | None = None,
                seed: int = 7):
    """``seconds`` of cu8 on the T1 channel with a T1 frame (each its own telegram) every ``every_s``,
    rendered one segment at a time (little memory): (payload, truth: telegram -> input sample of its
    sync word). ``render_rate``: the rate the signal is really made at, when it is not ``rate``
    (a device that runs at another rate than it is said to)."""
    made_at = render_rate or rate
    seg = int(every_s * made_at)
    sync = 2 * MODES["T1"].preamble_pairs / MODES["T1"].chip_rate * made_at
    rng = np.random.default_rng(seed)
    parts, truth = [], {}
    for k in range(int(seconds / every_s)):
        tel = TEL[:1] + bytes([k & 0xFF, k >> 8]) + TEL[3:]
        x, placed = render([Burst(mode=MODES["T1"], telegram=tel, start_s=0.1, amplitude=0.3)], sample_rate_hz=made_at,
                           center_freq_hz=868.95e6, duration_s=every_s, rng=rng, noise_rms=0.02)
        parts.append(bytes(from_complex(x[:seg], "cu8")))
        truth[tel] = k * seg + placed[0].placement.start + sync
    return b"".join(parts), truth


def _rx(*args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "flowgraphs.cli", "rx", *args], capture_output=True, cwd=REPO,
                          timeout=timeout, **kw)


# --- the acceptance run: an rtl_tcp server that stops sending for 10 s ------------------------------

@pytest.fixture(scope="module")
def long_capture():
    return _t1_capture(17.0)


def test_rx_reopens_after_a_10_s_stall_and_frames_keep_their_true_times(long_capture):
    """The server keeps the connection open but sends nothing from 1.5 s to 11.5 s (inside the
    client's first 3-second rate check): rx, with its default watchdog, logs the stall and the
    reopen naming the device, does
    not mistake the stall for a wrong rate, frames resume, and every frame's UTC time (JSON lines)
    is within 10 ms of when the server sent its sync word."""
    payload, truth = long_capture
    rate = 800_000.0
    server = PacedRtlTcp(payload, rate, stall_at_s=1.5, stall_s=10.0)
    device = f"rtltcp://127.0.0.1:{server.port}"
    try:
        p = _rx("--device", device, "--rate", "8e5", "--center", "868.95e6", "--modes", "T1", "--output", "jsonl",
                "--duration", "16.5", "--quiet")  # the default watchdog: --stall-timeout 5 --max-restarts 5
    finally:
        server.stop()
    err = p.stderr.decode()
    assert p.returncode == 0, err
    assert "Msps" not in err  # no rate complaint
    assert re.search(rf"{re.escape(device)}: no samples for [0-9.]+ s; reopening the device", err), err
    assert re.search(rf"{re.escape(device)}: stalled .*reopened \(restart 1\)", err), err
    assert server.resumed.is_set() and server.connections >= 2
    lines = [json.loads(line) for line in p.stdout.decode().splitlines()]
    before = [o for o in lines if o["sample"] < 1.5 * rate]
    after = [o for o in lines if o["sample"] > 11.5 * rate]
    assert len(before) >= 2 and len(after) >= 8, (len(before), len(after))
    for o in lines:
        sent_ns = server.truth_ns(truth[bytes.fromhex(o["telegram"])])
        from sdr.file import parse_utc

        err_ms = (parse_utc(o["time"], where="rx output") - sent_ns) / 1e6
        assert abs(err_ms) < 10, (o["sample"], err_ms)
        # and the absolute sample index is where the server's clock had that frame
        assert abs(o["sample"] - truth[bytes.fromhex(o["telegram"])]) < 0.01 * rate
    summary = re.search(r"(\d+) stalls, (\d+) reopens", err)
    assert summary and int(summary[1]) >= 1 and int(summary[2]) >= 1, err


def test_a_source_that_stays_stuck_ends_rx_with_status_1_naming_the_device():
    """Header, then never a sample: after --max-restarts reopens that bring nothing, rx exits 1 with
    one line naming the device (systemd's Restart=on-failure then starts it afresh)."""
    server = PacedRtlTcp(bytes(2 * 10_000 * 300), 10_000.0, stall_at_s=0.0, stall_s=3600.0)  # nothing is sent
    device = f"rtltcp://127.0.0.1:{server.port}"
    try:
        p = _rx("--device", device, "--rate", "8e5", "--center", "868.95e6", "--modes", "T1", "--stall-timeout",
                "0.5", "--max-restarts", "2", "--quiet", timeout=90)
    finally:
        server.stop()
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert f"wmbus-sdr rx: {device}: no samples for" in err and "reopened 2 times in a row; giving up" in err, err
    assert server.connections == 3  # the first connection and two reopens
    assert "Traceback" not in err


def test_a_server_that_is_gone_ends_rx_with_status_1_after_max_restarts():
    payload, _ = _t1_capture(2.0, every_s=1.0)
    server = PacedRtlTcp(payload, 800_000.0, drop_at_s=1.0, down_s=3600.0)  # gone at 1 s, for good
    device = f"rtltcp://127.0.0.1:{server.port}"
    try:
        p = _rx("--device", device, "--rate", "8e5", "--center", "868.95e6", "--modes", "T1", "--max-restarts", "2",
                "--quiet", timeout=90)
    finally:
        server.stop()
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert f"{device}: connection lost and 2 attempts to reopen it failed; giving up" in err, err


# --- the watchdog in the source base class (any driver) -----------------------------------------

class QuietDevice(Source):
    """A driver whose reads time out (b"") between blocks of samples: after ``blocks`` reads of
    data it goes quiet until reopened ``quiet_opens`` times."""

    fmt = "cu8"

    def __init__(self, *, blocks: int = 5, quiet_opens: int = 1):
        super().__init__(StreamInfo(sample_rate_hz=100_000, center_freq_hz=868.95e6, source="quiet:0"))
        self.blocks, self.quiet_opens = blocks, quiet_opens
        self.opens = self.reads = 0

    def _open(self):
        self.opens += 1

    def _read(self):
        time.sleep(0.01024)
        if self.opens <= self.quiet_opens and self.reads >= self.blocks:
            return b""
        self.reads += 1
        return bytes(range(256)) * 8  # 1024 samples, about the 10 ms they last at 100 ksps


def test_source_watchdog_reopens_and_places_the_new_stream_on_the_clock():
    src = QuietDevice(blocks=5, quiet_opens=1)
    src.watchdog(stall_timeout_s=0.3, max_restarts=3)
    chunks = []
    with src:
        for chunk in src:
            chunks.append(chunk)
            if len(chunks) == 8:
                break
    assert src.opens == 2 and src.stalls == 1 and src.restarts == 1
    first_after = chunks[5]
    # the silence (stall timeout plus the reopen's back-off) is a counted gap placed by the clock,
    # not samples glued to the end of the last chunk
    assert first_after.dropped > 0 and first_after.start == chunks[4].end + first_after.dropped
    assert first_after.dropped >= 0.5 * 100_000 * 0.3
    assert src.gaps == 1


def test_source_watchdog_gives_up_after_max_restarts_without_samples():
    src = QuietDevice(blocks=2, quiet_opens=99)
    src.watchdog(stall_timeout_s=0.2, max_restarts=2)
    with pytest.raises(SDRError, match=r"quiet:0: no samples for .* reopened 2 times in a row; giving up"):
        with src:
            for _ in src:
                pass
    assert src.opens == 3 and src.stalls == 3


def test_a_driver_call_that_never_returns_is_reported_not_waited_for():
    """A hung USB transfer: the reader thread is stuck inside the driver; the consumer notices and
    ends the stream with an error naming the device (the process then exits for systemd)."""
    release = threading.Event()

    class Hung(Source):
        def _open(self):
            pass

        def _read(self):
            if release.is_set():
                return None
            release.wait(60)
            return None

        def hang_limit_s(self):
            return 1.0

    src = Hung(StreamInfo(sample_rate_hz=1e5, center_freq_hz=868.95e6, source="hung:0"))
    try:
        with pytest.raises(SDRError, match=r"hung:0: the driver has not returned for \d+ s"):
            for _ in src:
                pass
    finally:
        release.set()
        src.close()


def test_watchdog_options_are_checked():
    src = QuietDevice()
    with pytest.raises(ValueError, match="--stall-timeout"):
        src.watchdog(stall_timeout_s=0)
    with pytest.raises(ValueError, match="--max-restarts"):
        src.watchdog(max_restarts=0)
    p = _rx("--device", "rtltcp://127.0.0.1:9", "--stall-timeout", "-1", timeout=30)
    assert p.returncode == 2 and b"--stall-timeout -1" in p.stderr


def test_rate_check_still_refuses_a_wrong_rate_after_a_stall(long_capture):
    """The rate is judged over continuous flow: a server streaming at a quarter of the rate asked is
    still refused, even when a stall came first."""
    from sdr.rtltcp import RtlTcpSource

    payload, _ = long_capture
    server = PacedRtlTcp(payload, 200_000.0, stall_at_s=0.2, stall_s=1.0)
    src = RtlTcpSource(f"127.0.0.1:{server.port}", sample_rate_hz=800_000, center_freq_hz=868.95e6,
                       rate_check_s=1.0)
    src.watchdog(stall_timeout_s=5.0)
    try:
        with pytest.raises(SDRError, match=r"streams about (\d\.\d\d) Msps, not the 0.80 Msps") as err:
            with src:
                for _ in src:
                    pass
    finally:
        server.stop()
    assert server.resumed.is_set()
    # the server paces itself by the host's clock: on a busy machine it falls a little behind
    measured = float(re.search(r"about (\d\.\d\d) Msps", str(err.value))[1])
    assert 0.15 <= measured <= 0.21, str(err.value)


# --- Ctrl-C / SIGTERM, --version, hints, errors that name the device ------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_rx_prints_its_summary_on_ctrl_c_and_sigterm(signum):
    from sdr.rtltcp import RtlTcpServer

    server = RtlTcpServer(str(RECORDING), port=0, loop=True)
    server.start()
    p = subprocess.Popen([sys.executable, "-m", "flowgraphs.cli", "rx", "--device", f"rtltcp://127.0.0.1:{server.port}",
                          "--rate", "2.4e6", "--keys", str(KEYS), "--output", "jsonl", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        first = p.stdout.readline()  # blocks until rx has passed on a frame
        assert first, p.stderr.read().decode()
        p.send_signal(signum)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        server.stop()
    err = err.decode()
    assert p.returncode == 0, err
    m = re.search(r"rtltcp://127\.0\.0\.1:\d+: (\d+) frames from (\d+) meters, .*latency median [0-9.]+ s / max", err)
    written = 1 + len(out.splitlines())
    # the summary counts what was written (one more when the signal came between counting and writing)
    assert m and written <= int(m[1]) <= written + 1, (written, err)
    assert "Traceback" not in err


def test_version_from_the_package_metadata():
    from importlib.metadata import version

    want = version("wmbus-sdr")
    for args, shown in [([], f"wmbus-sdr {want}"), (["rx"], f"wmbus-sdr rx {want}"),
                        (["gateway"], f"wmbus-sdr gateway {want}")]:
        p = subprocess.run([sys.executable, "-m", "flowgraphs.cli", *args, "--version"], capture_output=True,
                           cwd=REPO, timeout=60)
        assert p.returncode == 0 and p.stdout.decode().strip() == shown, p


def test_zero_frame_hint_names_the_likely_wrong_option():
    """From what the receiver saw in the bundled recording read with wrong settings."""
    from flowgraphs.pipelines.live import zero_frame_hint
    from flowgraphs.pipelines.receive import Receiver
    from sdr.file import FileSource

    def stats(**kw):
        src = FileSource(str(RECORDING), **kw)
        rx = Receiver(src.info)
        for c in src:
            list(rx.process(c))
        list(rx.flush())
        return rx, src.info

    rx, info = stats()
    assert zero_frame_hint(rx.stats, rx.modes, sample_rate_hz=info.sample_rate_hz,
                           center_freq_hz=info.center_freq_hz) is None
    rx, info = stats(sample_rate_hz=1.6e6)  # the recording is at 2.4 Msps
    hint = zero_frame_hint(rx.stats, rx.modes, sample_rate_hz=1.6e6, center_freq_hz=info.center_freq_hz)
    assert hint and "transmissions were heard" in hint and "--rate 1.6e6" in hint and "--center" in hint
    assert zero_frame_hint({"bursts": 3, "rejected crc": 3}, ["T1"], sample_rate_hz=1e6, center_freq_hz=868.95e6) \
        .startswith("3 frames were found but rejected (3 crc)")
    assert "nothing was heard" in zero_frame_hint({}, ["T1"], sample_rate_hz=1e6, center_freq_hz=868.95e6)


def test_rx_with_a_device_at_another_rate_than_said_gives_the_hint():
    """A device really running at 1 Msps that rx is told runs at 800 ksps (the server paces it at
    800 ksps, so the rate check cannot tell): bursts but no frame -> the hint names --rate."""
    payload, _ = _t1_capture(3.0, rate=800_000.0, render_rate=1_000_000.0, every_s=0.5)
    server = PacedRtlTcp(payload, 800_000.0)
    try:
        p = _rx("--device", f"rtltcp://127.0.0.1:{server.port}", "--rate", "8e5", "--center", "868.95e6",
                "--modes", "T1", "--duration", "3.2", "--quiet")
    finally:
        server.stop()
    err = p.stderr.decode()
    assert p.returncode == 0, err
    assert ": 0 frames from 0 meters" in err
    assert re.search(r"hint: \d+ transmissions were heard but none carried a sync word of the modes received \(T1\)",
                     err) and "--rate 0.8e6" in err, err


def test_rx_timeout_names_the_device():
    """A server that accepts but never sends the rtl_tcp header: the error names the device."""
    import socket

    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        p = _rx("--device", f"rtltcp://127.0.0.1:{port}", "--rate", "8e5", "--center", "868.95e6", timeout=60)
    finally:
        sock.close()
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert f"wmbus-sdr rx: rtltcp://127.0.0.1:{port}: no 12-byte rtl_tcp header within 5 s" in err, err


def test_gateway_keys_shown_in_its_help_work(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "gateway", "--help"], capture_output=True,
                               cwd=REPO, timeout=60).stdout.decode()
    assert "--keys FILE" in help_text
    base = [sys.executable, "-m", "flowgraphs.cli", "gateway", "--device", f"file:{RECORDING}", "--rate", "2.4e6",
            "--tx", f"file:{tmp_path / 'tx.cu8'}", "--duration", "5"]
    p = subprocess.run([*base, "--keys", str(KEYS)], capture_output=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    readings = int(re.search(rb"readings: (\d+)", p.stderr)[1])
    p0 = subprocess.run(base, capture_output=True, cwd=REPO, timeout=120)
    assert p0.returncode == 0 and readings > int(re.search(rb"readings: (\d+)", p0.stderr)[1]), (p.stderr, p0.stderr)
    (tmp_path / "bad.keys").write_text("12345678 nothex\n")
    p = subprocess.run([*base, "--keys", str(tmp_path / "bad.keys")], capture_output=True, cwd=REPO, timeout=60)
    assert p.returncode == 2 and b"bad.keys" in p.stderr and b"Traceback" not in p.stderr, p.stderr


def test_soapysdr_hint_names_both_files_to_link():
    """Without Debian's python3-soapysdr in the venv, the error says what to install and that both
    the module and its compiled half must be linked into the venv."""
    import importlib.util

    if importlib.util.find_spec("SoapySDR") is not None:
        pytest.skip("the SoapySDR bindings are importable here: the hint is not shown")
    p = _rx("--device", "soapy:driver=nothing", timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert "soapy:driver=nothing" in err and "python3-soapysdr" in err
    assert "SoapySDR.py" in err and "_SoapySDR*.so" in err, err
    from sdr.registry import INSTALL

    assert "SoapySDR.py" in INSTALL["SoapySDR"] and "_SoapySDR*.so" in INSTALL["SoapySDR"]


def test_run_live_hands_a_live_status_to_every_callback_and_survives_ctrl_c():
    """The status hook for outputs (metrics, MQTT diagnostics): every callback gets the same frozen
    LiveStatus values, the last one final; a KeyboardInterrupt (Ctrl-C, SIGTERM in rx) mid-stream
    still returns the summary with the frames so far."""
    import dataclasses

    from flowgraphs.pipelines.live import LiveStatus, run_live
    from flowgraphs.pipelines.receive import Receiver
    from sdr.file import FileSource

    src = FileSource(str(RECORDING))
    a, b = [], []
    result = run_live(src, Receiver(src.info), [], on_status=[a.append, b.append], status_every_s=0.0)
    assert a == b and all(isinstance(s, LiveStatus) for s in a) and len(a) >= 2
    assert [s.final for s in a] == [False] * (len(a) - 1) + [True]
    last = a[-1]
    assert last.frames == result["frames"] == 8 and last.bursts >= 8 and last.rejected == 0
    assert last.restarts == 0 and last.dropped_samples == 0 and not result["interrupted"]
    assert last.signal_s == sum(len(c.samples) for c in FileSource(str(RECORDING))) / src.info.sample_rate_hz
    with pytest.raises(dataclasses.FrozenInstanceError):
        last.frames = 0

    def interrupted(chunks, after):
        for i, c in enumerate(chunks):
            if i == after:
                raise KeyboardInterrupt
            yield c

    src = FileSource(str(RECORDING))
    n_chunks = sum(1 for _ in FileSource(str(RECORDING)))
    statuses = []
    result = run_live(interrupted(src, n_chunks // 2), Receiver(src.info), [], on_status=statuses.append)
    assert result["interrupted"] and 0 < result["frames"] < 8 and statuses[-1].final
    assert statuses[-1].frames == result["frames"]
