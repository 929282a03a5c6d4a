"""Extension points of the I/O wings, each shown by adding a dummy one the way a user would: an
output sink is one function plus one registry line and works in both `rx` and `decode`; an SDR
source and a TX sink are one module (written here into tmp_path) plus one registration line, opened
by name and imported only then; the built-in TX sinks (file, memory) place bursts by their time."""

from __future__ import annotations

import json
import signal
import sys

import numpy as np
import pytest

from flowgraphs import sinks
from flowgraphs.cli import main
from flowgraphs.pipelines.receive import RxFrame
from sdr import registry
from sdr.errors import SDRError
from sdr.file import FileSource

from .conftest import REPO

RECORDING = str(REPO / "recordings" / "example_868.625M_2M4.sigmf-meta")
KEYS = str(REPO / "recordings" / "keys.txt")
NOTES = json.loads(open(RECORDING).read())["annotations"]


@pytest.fixture
def registries(monkeypatch):
    """Registrations made by a test are undone after it (the tables are module state)."""
    monkeypatch.setattr(sinks, "SINKS", dict(sinks.SINKS))
    monkeypatch.setattr(registry, "SOURCES", dict(registry.SOURCES))
    monkeypatch.setattr(registry, "TX_SINKS", dict(registry.TX_SINKS))
    old = signal.getsignal(signal.SIGTERM)  # rx installs its own handler
    yield
    signal.signal(signal.SIGTERM, old)


# --- an output sink: one function, one registry line --------------------------------------------
def meter_line(frame: RxFrame, telegram) -> str:
    who = f"{telegram.meter.manufacturer_code} {telegram.meter.id} {telegram.decryption}" if telegram else "-"
    return f"{frame.mode} {frame.sample} {frame.sample_rate_hz:g} {who}"


def _lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line]


def test_output_sink_added_by_one_line_works_in_rx_and_decode(registries, capsys):
    sinks.register_sink("meterline", sinks.lines(meter_line))

    assert main(["decode", RECORDING, "--keys", KEYS, "--output", "meterline", "--quiet"]) == 0
    decoded = _lines(capsys)
    assert main(["rx", "--device", f"file:{RECORDING}", "--rate", "2.4e6", "--keys", KEYS, "--output", "meterline",
                 "--duration", "2.1", "--quiet"]) == 0
    live = _lines(capsys)

    assert len(decoded) == len(NOTES) == 8
    assert live == decoded  # the same frames at the same absolute samples, whatever the chunking
    assert [line.split()[0] for line in decoded] == [n["wmbus:mode"] for n in NOTES]
    for line, note in zip(decoded, NOTES, strict=True):  # the sync word sits inside the frame's annotation
        sample = int(line.split()[1])
        assert note["core:sample_start"] <= sample < note["core:sample_start"] + note["core:sample_count"]
    assert "2.4e+06 HMS 31415926 ok" in "\n".join(decoded)


def test_registered_sinks_combine_with_the_built_in_ones(registries, capsys):
    got: list[tuple[str, bool]] = []
    sinks.register_sink("collect", lambda options: lambda frame, telegram: got.append((frame.mode,
                                                                                       telegram is not None)))
    assert main(["decode", RECORDING, "--output", "collect", "--output", "jsonl,none", "--quiet"]) == 0
    objs = [json.loads(line) for line in _lines(capsys)]
    assert got == [(o["mode"], True) for o in objs] and len(got) == 8
    assert all(o["time"] is None for o in objs)  # a recording without a clock claims no time


def test_unknown_output_is_one_clear_line(capsys):
    assert main(["decode", RECORDING, "--output", "text,nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "jsonl" in err and err.count("\n") == 1


def test_line_formats_print_utc_time_when_the_frame_has_one():
    frame = RxFrame(mode="T1", frame_format="A", telegram=bytes.fromhex("0a44b3212659413101047a00"), crc_ok=True,
                    reason="ok", sample=2_400_000, end_sample=2_410_000, sample_rate_hz=2.4e6,
                    time_ns=1_796_154_900_123_456_789, rssi_dbfs=-30.0, noise_dbfs=-60.0, snr_db=30.0,
                    freq_offset_hz=1e3, chip_rate_hz=100e3, channel_hz=868.95e6, violations=0)
    assert sinks.utc_iso(frame.time_ns) == "2026-12-01T19:55:00.123456Z"
    obj = json.loads(sinks.jsonl_event(frame, None))
    assert (obj["time"], obj["sample"], obj["t_s"]) == ("2026-12-01T19:55:00.123456Z", 2_400_000, 1.0)
    assert sinks.text_event(frame, None).startswith("2026-12-01T19:55:00.123456Z     1.0000 s  T1-A  CRC ok")
    assert sinks.rtlwmbus_event(frame, None).split(";")[3] == "2026-12-01 19:55:00.123"
    no_clock = RxFrame(**{**{k: getattr(frame, k) for k in RxFrame.__dataclass_fields__}, "time_ns": None})
    assert json.loads(sinks.jsonl_event(no_clock, None))["time"] is None
    assert sinks.text_event(no_clock, None).startswith("   1.0000 s  T1-A")
    bad = RxFrame(**{**{k: getattr(frame, k) for k in RxFrame.__dataclass_fields__}, "crc_ok": False})
    assert sinks.rtlwmbus_event(bad, None) is None  # wmbusmeters would reject it


# --- an SDR source: one module, one registration line --------------------------------------------
SOURCE_MODULE = '''
"""A dummy backend: a cu8 file read in 4096-sample blocks, as a live source."""
from sdr.source import Source
from sdr.types import StreamInfo


class BlockFileSource(Source):
    fmt = "cu8"

    def __init__(self, path, *, sample_rate_hz, center_freq_hz, gain=None):
        super().__init__(StreamInfo(sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz,
                                    source=f"blockfile:{path}"))
        self.path, self.gain = path, gain

    def _open(self):
        self._f = open(self.path, "rb")

    def _read(self):
        return self._f.read(8192) or None

    def _close(self):
        self._f.close()
'''


def test_sdr_source_added_as_one_module_and_one_line_is_opened_by_name(registries, tmp_path, monkeypatch, caplog):
    (tmp_path / "blockfile_driver.py").write_text(SOURCE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = np.arange(3 * 8192, dtype=np.uint32).astype(np.uint8).tobytes()
    (tmp_path / "x.cu8").write_bytes(raw)

    registry.register_source("blockfile", "blockfile_driver", "BlockFileSource")
    assert "blockfile_driver" not in sys.modules  # registering imports nothing
    src = registry.open_device(f"blockfile:{tmp_path / 'x.cu8'}", sample_rate_hz=1e6, center_freq_hz=868.95e6,
                               gain=20.0, ppm=3)  # ppm: not taken by this driver, left out with a warning
    assert type(src).__name__ == "BlockFileSource" and src.gain == 20.0
    assert "ppm=3 does not apply" in caplog.text
    with src:
        chunks = list(src)
    assert [c.start for c in chunks] == [0, 4096, 8192]  # 8192 bytes = 4096 cu8 samples per read
    expect = (np.frombuffer(raw, np.uint8).astype(np.float32) - 127.5) / 127.5
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]).view(np.float32), expect)


def test_missing_driver_package_is_an_sdr_error_naming_it(registries, tmp_path, monkeypatch):
    (tmp_path / "needs_pkg.py").write_text("import wmbus_no_such_driver_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register_source("needy", "needs_pkg", "NeedySource")
    with pytest.raises(SDRError, match=r"needy driver needs the Python package 'wmbus_no_such_driver_pkg'; "
                                       r"pip install wmbus_no_such_driver_pkg"):
        registry.open_device("needy:0", sample_rate_hz=1e6, center_freq_hz=868.95e6)
    with pytest.raises(ValueError, match="rtlsdr:N, rtltcp://HOST:PORT.*needy:..."):
        registry.open_device("airspy:0", sample_rate_hz=1e6, center_freq_hz=868.95e6)


# --- a TX sink: one module, one registration line ---------------------------------------------------
TX_MODULE = '''
"""A dummy transmitter: keeps each burst as bytes with its time (hardware-timed)."""
from sdr.sink import TxSink


class ByteSink(TxSink):
    hardware_time = True

    def __init__(self, label, *, sample_rate_hz, center_freq_hz):
        super().__init__(name=f"bytes:{label}", sample_rate_hz=sample_rate_hz, center_freq_hz=center_freq_hz)
        self.got = []

    def _write(self, samples, at_ns):
        self.got.append((at_ns, samples.tobytes()))
'''


def test_tx_sink_added_as_one_module_and_one_line_is_opened_by_name(registries, tmp_path, monkeypatch):
    (tmp_path / "bytesink_driver.py").write_text(TX_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register_tx_sink("bytes", "bytesink_driver", "ByteSink")
    assert "bytesink_driver" not in sys.modules
    sink = registry.open_tx_sink("bytes:lab", sample_rate_hz=1.2e6, center_freq_hz=868.95e6)
    burst = np.exp(1j * np.linspace(0, 20, 500)).astype(np.complex64)
    with pytest.raises(SDRError, match="before open"):
        sink.send(burst)
    with sink:
        sink.send(burst, at_ns=5_000_000)
        sink.send(burst[:100])
    assert sink.got == [(5_000_000, burst.tobytes()), (None, burst[:100].tobytes())]
    assert (sink.sent, sink.bursts, sink.name) == (600, 2, "bytes:lab")


def test_gateway_transmits_through_any_registered_tx_sink(capsys):
    """--tx names a TX sink by kind; a kind that is no transmitter is one clear line."""
    assert main(["gateway", "--device", "rtlsdr:0", "--tx", "rtlsdr:0", "--mode", "C2"]) == 2
    err = capsys.readouterr().err
    assert "soapy:ARGS" in err and "memory:NAME" in err and err.count("\n") == 1


def test_file_tx_sink_places_bursts_by_time_and_decodes_again(tmp_path, capsys):
    """The bundled recording sent as two bursts through file:..., the second 1 s after the first
    began: the file is the recording with 400 000 zero samples inserted, and decodes to the same
    frames, those of the second burst 400 000 samples later."""
    src = FileSource(RECORDING)
    x = np.concatenate([c.samples for c in src])
    split, gap = 2_000_000, 400_000  # between the 4th and 5th frame; (split + gap) / 2.4 Msps = 1 s
    out = tmp_path / "sent_868.625M_2M4.cu8"
    sink = registry.open_tx_sink(f"file:{out}", sample_rate_hz=2.4e6, center_freq_hz=868.625e6)
    with sink:
        assert sink.hardware_time and sink.now_ns() == 0
        sink.send(x[:split], at_ns=0)
        sink.send(x[split:], at_ns=1_000_000_000)
        assert sink.now_ns() == round((len(x) + gap) / 2.4e6 * 1e9)
    raw = out.read_bytes()
    original = open(RECORDING.replace(".sigmf-meta", ".sigmf-data"), "rb").read()
    assert raw == original[:2 * split] + bytes([128, 128]) * gap + original[2 * split:]

    assert main(["decode", RECORDING, "--output", "jsonl", "--quiet"]) == 0
    before = [json.loads(line) for line in _lines(capsys)]
    assert main(["decode", str(out), "--output", "jsonl", "--quiet"]) == 0
    after = [json.loads(line) for line in _lines(capsys)]
    assert [o["telegram"] for o in after] == [o["telegram"] for o in before]
    shifted = [o["sample"] + (gap if o["sample"] >= split else 0) for o in before]
    assert [o["sample"] for o in after[:4]] == shifted[:4]  # before the gap: the same stream
    # after 1/6 s of digital silence the receiver's noise floor restarts, which may move its sync
    # estimate by a sample; the bytes above show the burst itself sits exactly where it was sent
    assert all(abs(a["sample"] - s) <= 2 for a, s in zip(after[4:], shifted[4:], strict=True))


def test_memory_tx_sink_keeps_bursts_untimed_without_hardware_time():
    sink = registry.open_tx_sink("memory:loop", sample_rate_hz=1e6, center_freq_hz=868.3e6)
    burst = np.ones(10, np.complex64)
    with sink:
        sink.send(burst, at_ns=123)  # no hardware time: the time is not passed on
    assert [(t, s.tolist()) for t, s in sink.bursts_sent] == [(None, burst.tolist())]
