"""`telegram --output explain`: the analysis tries every decoder that could apply and says which
fitted and why the others did not (issue 14, scope 5)."""

from __future__ import annotations

import io
import sys

from flowgraphs.cli import main
from mbus import explain, frame
from mbus.compact import FormatCache
from mbus.keys import KeyStore

from .test_security import N21, N21_KEY

WIRED_N22 = bytes.fromhex("6820206808fd7278563412931533032a0000000c1427048502046d32371f1502fd1700008916")


def _by(attempts, stage):
    return {a.decoder: a for a in attempts if a.stage == stage}


def test_mode5_telegram_fits_its_mode_and_says_why_the_others_do_not():
    attempts = explain.analyze(N21, keys=KeyStore(default=N21_KEY))
    fr = _by(attempts, "frame")
    assert fr["no CRCs (canonical)"].fitted and not fr["format A (CRC per block)"].fitted
    assert "CRC" in fr["format B (CRC per section)"].reason or "needs" in fr["format B (CRC per section)"].reason
    sec = _by(attempts, "security")
    mode5 = next(a for name, a in sec.items() if name.startswith("mode 5"))
    assert mode5.fitted and "2F2F" in mode5.reason and "announced" in mode5.reason
    others = [a for name, a in sec.items() if not name.startswith("mode 5")]
    assert others and not any(a.fitted for a in others)
    assert all(a.reason for a in others)
    app = _by(attempts, "application")["EN 13757-3 data records"]
    assert app.fitted and app.reason.startswith("3 records")
    vendors = [a for a in attempts if a.stage == "vendor"]
    assert vendors and not any(a.fitted for a in vendors)
    assert all("manufacturer ELS is not" in a.reason for a in vendors)


def test_without_a_key_the_modes_say_they_could_not_be_tried():
    attempts = explain.analyze(N21)
    mode5 = next(a for a in attempts if a.stage == "security" and a.decoder.startswith("mode 5"))
    assert not mode5.fitted and "no key for meter 12345678" in mode5.reason
    assert _by(attempts, "application")["application data"].reason == "not decrypted (no_key)"


def test_format_a_input_fits_format_a_only():
    attempts = explain.analyze(frame.build_format_a(N21), keys=KeyStore(default=N21_KEY))
    fr = _by(attempts, "frame")
    assert fr["format A (CRC per block)"].fitted and fr["format A (CRC per block)"].reason == "every CRC verified"
    assert not fr["format B (CRC per section)"].fitted


def test_vendor_payload_is_served_by_its_decoder_only(wireless_vectors):
    techem = next(r for r in wireless_vectors if r["id"] == "wl-wmbusmeters-0065")  # Techem compact V, CI A2
    attempts = explain.analyze(bytes.fromhex(techem["canonical_hex"]))
    vendors = [a for a in attempts if a.stage == "vendor"]
    fitted = [a for a in vendors if a.fitted]
    assert [a.decoder for a in fitted] == ["vendor techem compact5"]
    assert fitted[0].reason.startswith("decoded (") and "records)" in fitted[0].reason
    vario = next(a for a in vendors if a.decoder == "vendor techem vario451")
    assert "version 0x39 not checked" in vario.reason
    app = _by(attempts, "application")["EN 13757-3 data records"]
    assert "CI 0xA2 does not announce records" in app.reason


def test_compact_frame_without_its_format_says_so():
    compact = bytes.fromhex("18446d5e2611262012167b4100000044c9b2df9a1000000900")
    attempts = explain.analyze(compact, formats=FormatCache())
    app = next(a for a in attempts if a.stage == "application")
    assert not app.fitted and "not learned" in app.reason


def test_wired_frame_fits_the_wired_parser_and_stops_there():
    attempts = explain.analyze(WIRED_N22)
    w = _by(attempts, "wired")["wired M-Bus frame (EN 13757-2)"]
    assert w.fitted and "checksum verified, 3 records" in w.reason
    assert not any(a.fitted for a in attempts if a.stage == "frame")
    assert attempts[-1].decoder == "wireless link layer" and not attempts[-1].fitted


def test_garbage_is_analysed_without_an_exception():
    for data in (b"", b"\x01", bytes(range(40)), b"\xff" * 300):
        attempts = explain.analyze(data)
        assert attempts and not any(a.fitted for a in attempts if a.stage == "frame" and len(data) < 2)


def test_cli_explain_prints_the_analysis_and_never_the_key(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc = main(["telegram", N21.hex(), "--key", N21_KEY.hex(), "--output", "explain"])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert "analysis: every decoder that could apply" in out
    assert any(line.startswith("  fits  security    mode 5") for line in out.splitlines())
    assert N21_KEY.hex() not in out.lower() and N21_KEY.hex().upper() not in out
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{N21.hex()} {N21_KEY.hex()}\n"))
    rc = main(["telegram", "-", "--output", "explain"])
    out, _ = capsys.readouterr()
    assert rc == 0 and "fits  security    mode 5" in out and N21_KEY.hex() not in out.lower()
