"""Link modes N a-f (169 MHz), F2 (433.82 MHz) and R2 (ten channels at 868 MHz), issue #13: one
ModeSpec row each (no new line code), received on any centre frequency with a channeliser per
channel class, sent by our TX and received byte-exact: all six N channels from one 300 ksps
capture, adjacent N channels 20 dB apart, all ten R2 channels at once, F2 formats A and B, and a
mode on a channel of the user's choosing (``--channel 434.475M:T1``)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from dsp import coding
from dsp.channel import Burst, adc_8bit, bit_rate, noise_power, render
from dsp.modes import MODES, N_SYNC_A, N_SYNC_B, R2_CHANNELS_HZ, S_SYNC, default_rx_modes, mode, rx_mode_for
from flowgraphs.pipelines.receive import (
    Receiver,
    channel_entry,
    parse_channel,
    plan_channels,
    plan_receive,
)
from sdr.types import IQChunk, StreamInfo

from .conftest import REPO

N_CENTER = 169.4375e6
N_LETTERS = "abcdef"
N_FREQS = (169.40625e6, 169.41875e6, 169.43125e6, 169.44375e6, 169.45625e6, 169.46875e6)


def _telegram(rng, size: int = 51) -> bytes:
    return bytes([size - 1, 0x44]) + rng.integers(0, 256, size - 2, dtype=np.uint8).tobytes()


def _receive(x: np.ndarray, info: StreamInfo, modes=None, *, chunk: int = 1 << 16, start: int = 0):
    rx = Receiver(info) if modes is None else Receiver(info, modes)
    out = []
    for c in range(0, len(x), chunk):
        out += rx.process(IQChunk(samples=x[c:c + chunk], info=info, start=start + c))
    return [*out, *rx.flush()], rx


def _capture(bursts, *, rate: float, center: float, duration: float, ebn0: float, seed: int,
             weakest: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    amp = min(b.amplitude for b in bursts) if weakest is None else weakest
    rms = float(np.sqrt(noise_power(amp ** 2, ebn0, bit_rate(bursts[0].mode), rate)))
    x, _ = render(bursts, sample_rate_hz=rate, center_freq_hz=center, duration_s=duration, rng=rng, noise_rms=rms)
    return adc_8bit(x)


# --- the rows -------------------------------------------------------------------------------------

def test_mode_rows_carry_the_digest_figures():
    for kind in "12":
        for letter, freq in zip(N_LETTERS, N_FREQS, strict=True):
            m = MODES[f"N{kind}{letter}"]
            slow = letter in "cd"
            assert (m.channel_hz, m.chip_rate, m.deviation_hz, m.gaussian_bt) == (
                freq, 2400.0 if slow else 4800.0, 2400.0, 0.5)
            assert m.coding is coding.NRZ and m.preamble_pairs == 8 and m.postamble == ()
            assert m.syncs == {"A": N_SYNC_A, "B": N_SYNC_B}
            assert int("".join(map(str, N_SYNC_A)), 2) == 0xF68D and int("".join(map(str, N_SYNC_B)), 2) == 0xF672
            limits = dict(m.limits)
            assert limits["deviation_hz"] == (1.68e3, 3.12e3)
            assert limits["carrier_offset_hz"] == ((-2.0e3, 2.0e3) if slow else (-1.5e3, 1.5e3))
            assert limits["chip_rate_error_ppm"] == (-100, 100)
            assert "phy.md" in m.source and f"channel {letter}" in m.source
            assert rx_mode_for(m).name == f"N1{letter}"  # N2x is heard as N1x: the same PHY
    f2, r2 = MODES["F2"], MODES["R2"]
    assert (f2.channel_hz, f2.chip_rate, f2.deviation_hz, f2.coding, f2.gaussian_bt) == (
        433.82e6, 2400.0, 5.5e3, coding.NRZ, None)
    assert f2.syncs == {"A": N_SYNC_A, "B": N_SYNC_B} and f2.preamble_pairs == 39
    assert (r2.chip_rate, r2.deviation_hz, r2.coding, r2.sync, r2.sync_b) == (4800.0, 6e3, coding.MANCHESTER,
                                                                            S_SYNC, None)
    assert r2.all_channels_hz == R2_CHANNELS_HZ and len(R2_CHANNELS_HZ) == 10
    assert R2_CHANNELS_HZ[0] == 868.03e6 and R2_CHANNELS_HZ[5] == pytest.approx(868.33e6)
    assert R2_CHANNELS_HZ[9] == pytest.approx(868.57e6) and r2.channel_hz == pytest.approx(868.33e6)
    assert "UNSURE" in f2.source and "UNSURE" in r2.source
    # no new line code: NRZ and Manchester serve
    assert set(coding.CODINGS) == {"3of6", "manchester", "nrz"}
    assert {"N1a", "N1c", "F2"} <= set(default_rx_modes())
    # every mode in the band by default, R2 too (its ten channels are cut from the S/T/C spectra)
    assert "R2" in default_rx_modes() and r2.rx_by_default


def test_mode_names_in_any_case_and_n2g_named_unsupported():
    assert mode("n1a") is MODES["N1a"] and mode("N2F") is MODES["N2f"] and mode("r2") is MODES["R2"]
    with pytest.raises(ValueError, match="N2g .*not supported yet.*UNSURE"):
        mode("N2g")


# --- channel planning on any centre frequency ------------------------------------------------------

@pytest.mark.parametrize("rate", [240e3, 250e3, 300e3])
def test_six_n_channels_from_a_low_rate_capture_with_one_narrow_channeliser(rate):
    info = StreamInfo(sample_rate_hz=rate, center_freq_hz=N_CENTER)
    plan = plan_channels(info, default_rx_modes())
    assert [f for f, _ in plan.values()] == list(N_FREQS)
    assert [ms for _, ms in plan.values()] == [(f"N1{c}",) for c in N_LETTERS]
    rx = Receiver(info)
    assert len(rx.channelizers) == 1
    cz = rx.channelizer
    # a few samples per chip at 4.8 kcps, and the passband stops short of the next channel
    assert 12e3 <= cz.out_rate <= 20e3  # 2.5-4 samples per chip at 4.8 kcps
    assert rx.modes == [f"N1{c}" for c in N_LETTERS]


def test_868_band_plans_the_ten_r2_channels_beside_s_t_c():
    info = StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=868.625e6)
    wanted = default_rx_modes()  # R2 among them: every mode whose channels lie in the band
    assert "R2" in wanted
    plan = plan_receive(info, wanted)
    r2 = [ch for ch in plan.values() if ch.modes[0].name == "R2"]
    assert [ch.freq_hz for ch in r2] == list(R2_CHANNELS_HZ)
    assert all(ch.modes[0].channel_hz == ch.freq_hz for ch in r2)
    assert [len(names) for _, names in Receiver(info, ["S1", "T1", "C1"]).channelizers] == [2]  # S + T/C only
    rx = Receiver(info)
    assert [len(names) for _, names in rx.channelizers] == [2, 10]  # S + T/C wide, R2 narrow
    wide, narrow = (cz for cz, _ in rx.channelizers)
    assert wide.out_rate == 400e3 and narrow.out_rate < 60e3
    assert rx.modes == ["S1", "T1", "C1", "R2"]
    # the old planning is unchanged for the wide modes
    assert plan_channels(info, ["S1", "T1", "C1"]) == {"868.30": (868.30e6, ("S1",)),
                                                      "868.95": (868.95e6, ("T1", "C1"))}


def test_channel_entries():
    assert parse_channel("434.475M:T1") == (434.475e6, "T1")
    assert parse_channel("169406.25k:n2a") == (169.40625e6, "N2a")
    assert parse_channel("868950000:c1") == (868.95e6, "C1")
    assert parse_channel(channel_entry(434.475e6, "T1")) == (434.475e6, "T1")
    for bad in ("434.475M", "x:T1", "434M:", "434M:Q7", "-3M:T1"):
        with pytest.raises(ValueError):
            parse_channel(bad)
    info = StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=434.475e6)
    plan = plan_receive(info, ["434.475M:T1"])
    (ch,) = plan.values()
    assert ch.explicit and ch.freq_hz == 434.475e6 and ch.modes[0].channel_hz == 434.475e6
    assert ch.modes[0].name == "T1" and ch.modes[0].chip_rate == 100e3
    with pytest.raises(ValueError, match="outside the captured band"):
        plan_receive(info, ["868.95M:T1"])
    # S2 on another channel is heard as S1
    assert [m.name for m in plan_receive(info, ["434.1M:S2"])["434.10"].modes] == ["S1"]


# --- round trips ------------------------------------------------------------------------------------

def test_all_six_n_channels_at_once_from_one_300ksps_capture():
    rng = np.random.default_rng(13)
    bursts, sent = [], {}
    for i, letter in enumerate(N_LETTERS * 2):
        m = MODES[f"N{1 + i % 2}{letter}"]  # N1x and N2x alike
        tol = 2.0e3 if letter in "cd" else 1.5e3
        tel = _telegram(rng, int(rng.integers(12, 80)))
        fmt = "AB"[(i // 6 + i) % 2]
        bursts.append(Burst(mode=m, telegram=tel, frame_format=fmt, start_s=0.4 + 0.9 * (i // 6) + 0.02 * (i % 6),
                            amplitude=0.2, freq_offset_hz=float(rng.uniform(-tol, tol)),
                            chip_rate_error=float(rng.uniform(-1e-4, 1e-4)), preamble_pairs=8))
        sent[tel] = (f"N1{letter}", fmt, m.channel_hz)
    rate = 300e3
    x = _capture(bursts, rate=rate, center=N_CENTER, duration=2.6, ebn0=20, seed=1)
    frames, rx = _receive(x, StreamInfo(sample_rate_hz=rate, center_freq_hz=N_CENTER))
    good = [f for f in frames if f.crc_ok]
    assert sorted((sent[f.telegram], f.channel_hz) for f in good) == sorted((v, v[2]) for v in sent.values())
    assert all(not f.crc_ok for f in frames if f.telegram not in sent)
    # the sync word where the transmitter put it: within 1.25 channel samples (a quarter of a chip)
    for b in bursts:
        f = next(f for f in good if f.telegram == b.telegram)
        sync_at = b.start_s * rate + 2 * b.preamble_pairs * rate / (b.mode.chip_rate * (1 + b.chip_rate_error))
        assert abs(f.sample - sync_at) <= 1.25 * rx.channelizer.decimation
        assert abs(f.chip_rate_hz / b.mode.chip_rate - 1) < 2e-3


def test_adjacent_n_channels_12_5_khz_apart_at_20_db_level_difference():
    rng = np.random.default_rng(5)
    bursts = []
    # strong, weak, strong, weak ... on neighbouring channels, overlapping in time
    for i, letter in enumerate(N_LETTERS):
        strong = i % 2 == 0
        tol = 2.0e3 if letter in "cd" else 1.5e3
        bursts.append(Burst(mode=MODES[f"N1{letter}"], telegram=_telegram(rng), start_s=0.4 + 0.01 * i,
                            amplitude=0.3 if strong else 0.03, freq_offset_hz=float(rng.uniform(-tol, tol)),
                            frame_format="AB"[i % 2]))
    x = _capture(bursts, rate=300e3, center=N_CENTER, duration=1.8, ebn0=20, seed=2)
    frames, _ = _receive(x, StreamInfo(sample_rate_hz=300e3, center_freq_hz=N_CENTER))
    assert sorted(f.telegram for f in frames if f.crc_ok) == sorted(b.telegram for b in bursts)


def test_all_ten_r2_channels_at_once():
    rng = np.random.default_rng(8)
    r2 = MODES["R2"]
    bursts = [Burst(mode=replace(r2, channel_hz=f), telegram=_telegram(rng), start_s=0.3 + 0.01 * i, amplitude=0.2,
                    freq_offset_hz=float(rng.uniform(-8e3, 8e3)), chip_rate_error=float(rng.uniform(-0.015, 0.015)))
              for i, f in enumerate(R2_CHANNELS_HZ)]
    x = _capture(bursts, rate=1.6e6, center=868.625e6, duration=0.8, ebn0=20, seed=3)
    frames, _ = _receive(x, StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=868.625e6), ["R2", "S1"])
    good = sorted((f.channel_hz, f.telegram, f.mode) for f in frames if f.crc_ok)
    assert good == sorted((b.mode.channel_hz, b.telegram, "R2") for b in bursts)


def test_f2_formats_a_and_b_on_a_capture_centred_elsewhere():
    rng = np.random.default_rng(4)
    f2 = MODES["F2"]
    bursts = [Burst(mode=f2, telegram=_telegram(rng), frame_format=fmt, start_s=0.3 + 0.6 * i, amplitude=0.2,
                    freq_offset_hz=off, chip_rate_error=float(rng.uniform(-1e-3, 1e-3)))
              for i, (fmt, off) in enumerate((("A", -6.9e3), ("B", 6.9e3), ("B", -3e3), ("A", 0.0)))]
    center = 433.92e6  # the F channel 100 kHz below the tuner
    x = _capture(bursts, rate=250e3, center=center, duration=2.9, ebn0=20, seed=4)
    frames, _ = _receive(x, StreamInfo(sample_rate_hz=250e3, center_freq_hz=center))
    good = [(f.mode, f.frame_format, f.telegram) for f in frames if f.crc_ok]
    assert good == [("F2", b.frame_format, b.telegram) for b in bursts]
    for f, b in zip((f for f in frames if f.crc_ok), bursts, strict=True):
        assert abs(f.freq_offset_hz - b.freq_offset_hz) < 1e3  # the mode's tolerance is +-7 kHz


@pytest.mark.parametrize("name,rate,center", [("N1a", 300e3, N_CENTER), ("N2c", 300e3, N_CENTER),
                                              ("F2", 250e3, 433.82e6), ("R2", 1.6e6, 868.625e6)])
def test_tx_to_rx_100_of_100_at_20_db(name, rate, center):
    """Our TX's frames (random lengths, both formats where the mode has them, uplink and downlink
    frames, carrier and chip rate within tolerance) all come back byte-exact at Eb/N0 20 dB."""
    m = MODES[name]
    rng = np.random.default_rng(100)
    tol_hz = {"N1a": 1.5e3, "N2c": 2.0e3, "F2": 7e3, "R2": 8e3}[name]
    tol_rate = {"N1a": 1e-4, "N2c": 1e-4, "F2": 1e-3, "R2": 0.015}[name]
    got = 0
    for batch in range(10):
        bursts, t = [], 0.3
        for k in range(10):
            size = int(rng.integers(12, 120))
            c = 0x44 if k % 2 else 0x53  # SND-NR (meter) / SND-UD (other station)
            tel = bytes([size - 1, c]) + rng.integers(0, 256, size - 2, dtype=np.uint8).tobytes()
            b = Burst(mode=m, telegram=tel, frame_format="AB"[k % 2] if m.sync_b else "A", start_s=t, amplitude=0.2,
                      freq_offset_hz=float(rng.uniform(-tol_hz, tol_hz)),
                      chip_rate_error=float(rng.uniform(-tol_rate, tol_rate)))
            bursts.append(b)
            t += (2 * m.preamble_pairs + 16 + (size + 40) * m.coding.chips_per_byte) / m.chip_rate + 0.1
        x = _capture(bursts, rate=rate, center=center, duration=t + 0.2, ebn0=20, seed=batch)
        frames, _ = _receive(x, StreamInfo(sample_rate_hz=rate, center_freq_hz=center), [rx_mode_for(m).name])
        good = [(f.telegram, f.frame_format) for f in frames if f.crc_ok]
        assert good == [(b.telegram, b.frame_format) for b in bursts]
        got += len(good)
    assert got == 100


# --- near the sensitivity target -------------------------------------------------------------------

# (mode, format, capture rate, centre, carrier tolerance, chip-rate tolerance), as benchmarks/sensitivity.py
_WEAK = {"F2": ("F2", "A", 1e6, 433.92e6, 6.9e3, 1e-3), "R2": ("R2", "A", 1.6e6, 868.625e6, 8.7e3, 0.02),
         "N2.4B": ("N1c", "B", 300e3, N_CENTER, 2.0e3, 1e-4)}


def _weak_frames(case: str, ebn0: float, n: int, seed: int, *, deviation_error: float = 0.0):
    """(sent, received) telegrams and the carrier errors (Hz) of the frames received, one frame per
    capture with the carrier and chip rate drawn within the mode's tolerance."""
    from dsp.channel import single_burst

    name, fmt, rate, center, carrier_tol, rate_tol = _WEAK[case]
    info = StreamInfo(sample_rate_hz=rate, center_freq_hz=center)
    rng = np.random.default_rng(seed)
    ok, errors = 0, []
    for _ in range(n):
        tel = _telegram(rng)
        offset = float(rng.uniform(-carrier_tol, carrier_tol))
        x = single_burst(MODES[name], tel, frame_format=fmt, rng=rng, ebn0_db=ebn0, freq_offset_hz=offset,
                         chip_rate_error=float(rng.uniform(-rate_tol, rate_tol)), sample_rate_hz=rate,
                         center_freq_hz=center, pad_s=0.3, deviation_error=deviation_error)
        frames, _ = _receive(x, info, [name])
        good = [f for f in frames if f.crc_ok and f.telegram == tel]
        ok += bool(good)
        errors += [good[0].freq_offset_hz - offset] if good else []
    return ok, np.array(errors)


@pytest.mark.parametrize("case,ebn0", [("F2", 12.5), ("R2", 12.5), ("N2.4B", 11.5)])
def test_frames_near_the_sensitivity_target_with_the_carrier_off_by_its_tolerance(case, ebn0):
    """At the issue's 90 % target (F2, R2 12.5 dB, N 11.5 dB Eb/N0), carrier anywhere in the mode's
    tolerance (F2 +-6.9 kHz, R2 +-8.7 kHz against +-5.5 / +-6 kHz deviation): at least 27 of 30 frames
    (before the carrier was measured on the known chips and the sync searched on the tones: F2 25,
    R2 20, N 2.4 kcps format B 24). The carrier is found to within 300 Hz (before: missed by up to
    1.1 kHz on F2, 1.6 kHz on R2, where 1.2 kHz costs F2's tones half their strength)."""
    ok, errors = _weak_frames(case, ebn0, 30, seed=1300)
    assert ok >= 27
    assert np.abs(errors).max() < 300


@pytest.mark.parametrize("case,deviation_error", [("N2.4B", -0.3), ("N2.4B", 0.3), ("F2", -0.3), ("F2", 0.3)])
def test_a_transmitter_at_its_deviation_limit_still_decodes(case, deviation_error):
    """The receiver tunes its tones to the nominal deviation first (N: times the Gaussian shaping's
    pull on random data); a meter at +-30 % of it (the N limits 1.68 / 3.12 kHz) is read on the
    template's tones and found by the discriminator's search: 19 of 20 at 14 dB (before: N 2.4 kcps
    format B 20 and 15, F2 19 and 13 at -30 % and +30 %)."""
    ok, _ = _weak_frames(case, 14.0, 20, seed=1301, deviation_error=deviation_error)
    assert ok >= 19


# --- chunking and decode --jobs with two channeliser classes ---------------------------------------

def _mixed_capture():
    rng = np.random.default_rng(21)
    r2, s1 = MODES["R2"], MODES["S1"]
    bursts = []
    for i in range(14):
        bursts.append(Burst(mode=replace(r2, channel_hz=R2_CHANNELS_HZ[i % 10]), telegram=_telegram(rng),
                            start_s=0.2 + 0.4 * i, amplitude=0.2))
        bursts.append(Burst(mode=s1, telegram=_telegram(rng), start_s=0.43 + 0.4 * i + 0.01 * (i % 3), amplitude=0.2,
                            preamble_pairs=30))
    # S1 sent between the R2 frames (which lie inside its wide channel); Eb/N0 28 dB for R2 (2.4 kbit/s)
    # is about 20 dB for S1 (16.4 kbit/s)
    return _capture(bursts, rate=1.6e6, center=868.625e6, duration=6.0, ebn0=28, seed=9), bursts


def test_output_does_not_depend_on_chunking_across_channeliser_classes():
    x, bursts = _mixed_capture()
    info = StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=868.625e6)
    a, _ = _receive(x, info, ["S1", "R2"], chunk=1 << 18)
    b, _ = _receive(x, info, ["S1", "R2"], chunk=12345)
    assert a == b
    assert sorted(f.telegram for f in a if f.crc_ok) == sorted(bu.telegram for bu in bursts)


def test_a_run_started_on_the_alignment_grid_gives_the_whole_streams_frames():
    x, _ = _mixed_capture()
    info = StreamInfo(sample_rate_hz=1.6e6, center_freq_hz=868.625e6)
    whole, rx = _receive(x, info, ["S1", "R2"])
    align = rx.alignment
    assert rx.warmup_s >= 2.0  # the narrow finders' longest burst (1.5 s) and floor memory (0.5 s)
    warm = int(np.ceil(rx.warmup_s * 1.6e6 / align)) * align
    start = warm + align  # as decode --jobs plans a segment: on the grid, warm-up before it
    run_from = start - warm
    assert run_from > 0 and start < 5.0 * 1.6e6
    part, _ = _receive(x[run_from:], info, ["S1", "R2"], start=run_from, chunk=99991)
    owned = [f for f in whole if f.sample >= start]
    assert {f.mode for f in owned if f.crc_ok} == {"S1", "R2"} and len(owned) >= 6
    assert [f for f in part if f.sample >= start] == owned


# --- command line ------------------------------------------------------------------------------------

def test_cli_tx_n_and_decode_with_a_channel_of_ones_choosing(tmp_path):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    tel = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3"
    cli = [sys.executable, "-m", "flowgraphs.cli"]
    n = tmp_path / "n1e.cu8"
    subprocess.run([*cli, "tx", "--mode", "n1e", "--format", "B", "--telegram", tel, "--rate", "300e3", "--center",
                    "169.4375e6", "--ebn0", "25", "--out", str(n)], check=True, env=env, timeout=300,
                   capture_output=True)
    out = subprocess.run([*cli, "decode", str(n), "--format", "cu8", "--rate", "300e3", "--center", "169.4375e6",
                          "--output", "jsonl"], env=env, timeout=300, capture_output=True, text=True, check=True)
    assert '"mode": "N1e", "format": "B", "telegram": "' + tel.lower() in out.stdout
    t1 = tmp_path / "t1_434.cu8"
    subprocess.run([*cli, "tx", "--mode", "T1", "--channel", "434.475M", "--telegram", tel, "--rate", "1.6e6",
                    "--out", str(t1)], check=True, env=env, timeout=300, capture_output=True)
    base = [*cli, "decode", str(t1), "--format", "cu8", "--rate", "1.6e6", "--center", "434.475e6", "--output",
            "jsonl"]
    plain = subprocess.run(base, env=env, timeout=300, capture_output=True, text=True, check=True)
    assert plain.stdout == ""  # T1 is not planned at 434 MHz by itself
    chan = subprocess.run([*base, "--channel", "434.475M:T1"], env=env, timeout=300, capture_output=True, text=True,
                          check=True)
    assert '"mode": "T1"' in chan.stdout and tel.lower() in chan.stdout and "T1 1" in chan.stderr
    bad = subprocess.run([*base, "--channel", "868.95M:T1"], env=env, timeout=300, capture_output=True, text=True)
    assert bad.returncode == 2 and "outside the captured band" in bad.stderr and "Traceback" not in bad.stderr
    g = subprocess.run([*cli, "tx", "--mode", "N2g", "--telegram", tel, "--out", str(tmp_path / "g.cu8")], env=env,
                       timeout=300, capture_output=True, text=True)
    assert g.returncode == 2 and "not supported yet" in g.stderr


def test_bundled_169_mhz_recording_decodes_every_annotated_frame():
    import json

    from flowgraphs.pipelines.receive import receive
    from sdr.file import FileSource

    meta = REPO / "recordings" / "example_169.4375M_240k.sigmf-meta"
    notes = json.loads(meta.read_text())["annotations"]
    src = FileSource(str(meta))
    assert src.info.sample_rate_hz == 240e3 and src.info.center_freq_hz == N_CENTER
    frames = [f for f in receive(src, src.info) if f.crc_ok]
    want = sorted((rx_mode_for(MODES[n["wmbus:mode"]]).name, n["wmbus:frame_format"], n["wmbus:telegram"])
                  for n in notes)
    assert sorted((f.mode, f.frame_format, f.telegram.hex()) for f in frames) == want
    assert len({f.channel_hz for f in frames}) == 6  # every N channel
    for n in notes:
        f = next(f for f in frames if f.telegram.hex() == n["wmbus:telegram"])
        mode = MODES[n["wmbus:mode"]]
        sync_start = n["core:sample_start"] + 2 * mode.preamble_pairs / mode.chip_rate * src.info.sample_rate_hz
        assert abs(f.sample - sync_start) < 0.5 / mode.chip_rate * src.info.sample_rate_hz  # within half a chip


# --- donate a sample: --save-unknown ------------------------------------------------------------------

def _unknown_capture():
    """A good N1a frame, then two bursts on channel c that no mode decodes (a sync word of our own
    making), 0.4 s apart, then one on channel e."""
    from dsp.modes import chips

    rng = np.random.default_rng(31)
    alien_c = replace(MODES["N1c"], name="alien", sync=chips("1100110011001100"), sync_b=None)
    alien_e = replace(MODES["N1e"], name="alien", sync=chips("1100110011001100"), sync_b=None)
    good = Burst(mode=MODES["N1a"], telegram=_telegram(rng), start_s=0.3, amplitude=0.2)
    bursts = [good, Burst(mode=alien_c, telegram=_telegram(rng), start_s=0.35, amplitude=0.2),
              Burst(mode=alien_c, telegram=_telegram(rng), start_s=0.75, amplitude=0.2),
              Burst(mode=alien_e, telegram=_telegram(rng), start_s=0.8, amplitude=0.2)]
    return _capture(bursts, rate=300e3, center=N_CENTER, duration=1.5, ebn0=25, seed=6), good


def test_bursts_without_a_valid_frame_are_saved_as_annotated_sigmf(tmp_path):
    import json

    from flowgraphs.pipelines.unknown import UnknownSaver

    x, good = _unknown_capture()
    info = StreamInfo(sample_rate_hz=300e3, center_freq_hz=N_CENTER)
    rx = Receiver(info)
    saver = UnknownSaver(tmp_path / "donate", input_rate_hz=300e3, min_interval_s=10.0)
    rx.on_unknown = saver
    frames = [*rx.process(IQChunk(samples=x, info=info, start=0)), *rx.flush()]
    assert [f.telegram for f in frames if f.crc_ok] == [good.telegram]
    assert (saver.saved, saver.skipped) == (2, 1)  # channel c's second burst is rate-limited
    metas = sorted((tmp_path / "donate").glob("*.sigmf-meta"))
    assert [m.name.split("_")[1] for m in metas] == ["169.43125MHz", "169.45625MHz"]
    for meta, mode_guess, freq in zip(metas, ("N1c", "N1e"), (169.43125e6, 169.45625e6), strict=True):
        doc = json.loads(meta.read_text())
        (note,) = doc["annotations"]
        assert note["wmbus:mode_guess"] == mode_guess and note["wmbus:reason"] == "no sync word"
        assert note["wmbus:band"] == f"{freq / 1e6:.5f} MHz" and note["wmbus:snr_db"] > 6
        assert doc["captures"][0]["core:frequency"] == freq
        data = np.fromfile(meta.with_suffix(".sigmf-data"), dtype=np.complex64)
        assert len(data) == note["core:sample_count"] > 0.1 * rx.channelizer.out_rate  # the whole burst
        assert abs(note["wmbus:stream_sample"] / 300e3 - (0.35 if mode_guess == "N1c" else 0.8)) < 0.05


def test_cli_save_unknown(tmp_path):
    from sdr.formats import from_complex

    x, _ = _unknown_capture()
    path = tmp_path / "n.cu8"
    path.write_bytes(from_complex(x, "cu8"))
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "decode", str(path), "--format", "cu8", "--rate",
                          "300e3", "--center", "169.4375e6", "--save-unknown", str(tmp_path / "d")], env=env,
                         timeout=300, capture_output=True, text=True, check=True)
    assert "2 bursts without a valid frame saved" in out.stderr and "1 more left out" in out.stderr
    assert len(list((tmp_path / "d").glob("*.sigmf-meta"))) == 2
    bad = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "decode", str(path), "--format", "cu8", "--rate",
                          "300e3", "--center", "169.4375e6", "--save-unknown", str(tmp_path / "d"), "--jobs", "2"],
                         env=env, timeout=300, capture_output=True, text=True)
    assert bad.returncode == 2 and "--save-unknown runs with --jobs 1" in bad.stderr
