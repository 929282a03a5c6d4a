"""`wmbus-sdr telegram`: single telegrams, the stdin stream, the JSON contract and errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from flowgraphs.cli import main

from .test_security import F3, F3_KEY, N21, N21_KEY

CONTRACT = ("telegram", "manufacturer", "id", "version", "device_type", "device_type_name", "c_field",
            "ci_chain", "security_mode", "access_number", "decryption", "payload_hex", "records", "errors")


def run(argv, monkeypatch, capsys, stdin: str = ""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_single_json_contract(monkeypatch, capsys):
    rc, out, _ = run(["telegram", N21.hex(), "--key", N21_KEY.hex(), "--output", "json"], monkeypatch, capsys)
    assert rc == 0
    obj = json.loads(out)
    for k in CONTRACT:
        assert k in obj, k
    assert obj["telegram"] == N21.hex()
    assert (obj["manufacturer"], obj["id"], obj["version"], obj["device_type"]) == ("ELS", "12345678", 0x33, 3)
    assert (obj["c_field"], obj["ci_chain"], obj["security_mode"], obj["access_number"]) == (0x44, [0x7A], 5, 0x2A)
    assert obj["decryption"] == "ok"
    assert obj["payload_hex"].startswith("2f2f0c1427048502")
    assert N21_KEY.hex() not in out


def test_explain_lists_every_field(monkeypatch, capsys):
    rc, out, _ = run(["telegram", F3.hex(), "--key", F3_KEY.hex(), "--output", "explain"], monkeypatch, capsys)
    assert rc == 0
    for needle in ("DLL", "ELL", "AFL", "TPL", "MCR", "MAC", "CFE", "decrypted", "AFL MAC verified"):
        assert needle in out, needle
    assert F3_KEY.hex() not in out


def test_stream_keeps_order_and_reports_bad_lines(monkeypatch, capsys):
    lines = "\n".join([
        f"{N21.hex()} {N21_KEY.hex()}",
        "zz11",
        "# a comment",
        "",
        N21.hex(),
        f"T1;1;1;2026-11-25 10:00:00.000;117;102;12345678;0x{N21.hex()}",
        "2e44",
        f"{N21.hex()} 0011",
    ]) + "\n"
    rc, out, err = run(["telegram", "-"], monkeypatch, capsys, lines)
    assert rc == 0
    objs = [json.loads(x) for x in out.splitlines()]
    assert len(objs) == 6
    assert objs[0]["decryption"] == "ok"
    assert "error" in objs[1] and objs[1]["line"] == 2 and "hexadecimal" in objs[1]["error"]
    assert objs[2]["decryption"] == "no_key"
    assert objs[3]["decryption"] == "no_key" and objs[3]["id"] == "12345678"
    assert "error" in objs[4] and objs[4]["line"] == 7
    assert "error" in objs[5] and "32 hex digits" in objs[5]["error"]
    assert "6 lines" in err and "error 3" in err


def test_bad_input_is_one_clear_line(monkeypatch, capsys):
    rc, out, err = run(["telegram", "not-hex"], monkeypatch, capsys)
    assert rc == 1 and out == "" and err.count("\n") == 1 and "hexadecimal" in err
    rc, out, err = run(["telegram", N21.hex(), "--keys", "/nonexistent/keys"], monkeypatch, capsys)
    assert rc == 2 and "/nonexistent/keys" in err and "Traceback" not in err


def test_console_script_help():
    exe = [sys.executable, "-m", "flowgraphs.cli"]
    out = subprocess.run(exe + ["telegram", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--keys" in out and "examples:" in out
