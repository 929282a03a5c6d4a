"""Live transmit through SoapySDR, against a stand-in of the SoapySDR module (no radio in CI): the
bursts written to the device decode with our receiver; unsafe or impossible requests are refused."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from flowgraphs.cli import main
from flowgraphs.pipelines.receive import receive
from sdr.types import IQChunk, StreamInfo

N21 = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3"


def fake_soapy(*, tx_channels=1, hardware_time=False):
    """The calls SoapySink makes, recorded; writeStream accepts at most 5000 samples per call like a
    real driver with a small buffer."""
    mod = types.SimpleNamespace(SOAPY_SDR_TX=0, SOAPY_SDR_RX=1, SOAPY_SDR_CF32="CF32", SOAPY_SDR_HAS_TIME=4,
                                SOAPY_SDR_END_BURST=2)
    log = mod.log = {"writes": [], "settings": {}}

    class Device:
        enumerate = staticmethod(lambda args: [{"driver": "fake"}] if "fake" in args else [])

        def __init__(self, args):
            self.clock = 10**9

        def getNumChannels(self, direction):
            return tx_channels if direction == mod.SOAPY_SDR_TX else 1

        def getHardwareKey(self):
            return "FakeRx"

        def setSampleRate(self, d, ch, rate):
            log["settings"]["rate"] = rate

        def setFrequency(self, d, ch, f):
            log["settings"]["freq"] = f

        def setGain(self, d, ch, g):
            log["settings"]["gain"] = g

        def hasHardwareTime(self):
            return hardware_time

        def getHardwareTime(self):
            return self.clock

        def setupStream(self, d, fmt):
            assert d == mod.SOAPY_SDR_TX and fmt == "CF32"
            return "stream"

        def activateStream(self, s):
            log["active"] = True

        def writeStream(self, s, bufs, n, flags, t, timeoutUs):
            k = min(n, 5000)
            log["writes"].append((bufs[0][:k].copy(), flags, t))
            return types.SimpleNamespace(ret=k)

        def deactivateStream(self, s):
            log["active"] = False

        def closeStream(self, s):
            log["closed"] = True

    mod.Device = Device
    return mod


def _bursts(log):
    out, cur = [], []
    for samples, flags, _ in log["writes"]:
        cur.append(samples)
        if flags & 2:
            out.append(np.concatenate(cur))
            cur = []
    return out


@pytest.mark.parametrize("hardware_time", [False, True])
def test_live_transmit_writes_decodable_bursts(monkeypatch, capsys, hardware_time):
    mod = fake_soapy(hardware_time=hardware_time)
    monkeypatch.setitem(sys.modules, "SoapySDR", mod)
    rc = main(["tx", "--mode", "T1", "--telegram", N21, "--device", "soapy:driver=fake", "--rate", "1.2e6",
               "--repeat", "2", "--interval", "0.01"])
    assert rc == 0, capsys.readouterr().err
    assert mod.log["settings"] == {"rate": 1.2e6, "freq": 868.95e6, "gain": 0.0}
    assert mod.log["closed"] and not mod.log["active"]
    bursts = _bursts(mod.log)
    assert len(bursts) == 2
    timed = [t for _, flags, t in mod.log["writes"] if flags & 4]
    assert len(timed) == (2 if hardware_time else 0)
    if hardware_time:
        assert timed[1] - timed[0] == 10_000_000  # --interval 0.01 s, in device time
    info = StreamInfo(sample_rate_hz=1.2e6, center_freq_hz=868.95e6)
    for x in bursts:
        x = np.concatenate((np.zeros(2000, np.complex64), x, np.zeros(2000, np.complex64)))
        frames = [f for f in receive([IQChunk(samples=x, info=info, start=0)], info, ["T1"]) if f.crc_ok]
        assert [f.telegram.hex().upper() for f in frames] == [N21]
    assert "sent 2 T1-A frames" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "mod_kw", "needle"), [
    (["--device", "soapy:driver=fake"], {"tx_channels": 0}, "cannot transmit"),
    (["--device", "soapy:driver=none"], {}, "no SoapySDR device matches"),
    (["--device", "soapy:driver=fake", "--gain", "10"], {}, "exceeds the safe limit"),
    (["--device", "soapy:driver=fake", "--center", "869.6e6"], {}, "outside the T1 channel"),
    (["--device", "rtlsdr:0"], {}, "unknown kind 'rtlsdr'; use soapy:ARGS"),
])
def test_live_transmit_refusals(monkeypatch, capsys, args, mod_kw, needle):
    mod = fake_soapy(**mod_kw)
    monkeypatch.setitem(sys.modules, "SoapySDR", mod)
    rc = main(["tx", "--mode", "T1", "--telegram", N21, *args])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err, err
    assert not mod.log["writes"]


def test_live_transmit_gain_above_default_needs_max_gain(monkeypatch, capsys):
    mod = fake_soapy()
    monkeypatch.setitem(sys.modules, "SoapySDR", mod)
    assert main(["tx", "--mode", "C1", "--telegram", N21, "--device", "soapy:driver=fake", "--gain", "10",
                 "--max-gain", "20"]) == 0
    assert mod.log["settings"]["gain"] == 10


def test_missing_bindings_are_named(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "SoapySDR", None)  # import fails
    assert main(["tx", "--mode", "T1", "--telegram", N21, "--device", "soapy:driver=hackrf"]) == 2
    assert "python3-soapysdr" in capsys.readouterr().err
