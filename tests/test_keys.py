"""Issue 14 keys: one key store fed by our text format, CSV, JSON lines and Kamstrup KEM files
(made here from a known password with ``cryptography``), per-telegram keys on `telegram -`, and
no key ever in an output, error or log line."""

from __future__ import annotations

import base64
import io
import json
import logging
import sys
import zipfile

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from flowgraphs.cli import main
from mbus.keys import KeyStore
from mbus.telegram import decode

from .test_security import N21, N21_KEY, N53

N53_KEY = bytes(range(16))
PASSWORD = "Kundenr 4711ÆØ"  # non-ASCII on purpose: UTF-8, zero-padded to 16 bytes
SECRET_KEYS = (N21_KEY.hex(), N53_KEY.hex())

METERS_IN_ORDER = f"""<?xml version="1.0" encoding="utf-8"?>
<MetersInOrder>
  <Meter><MeterName>MC21</MeterName><ConsumptionType>Water</ConsumptionType><MeterNo>1</MeterNo>
    <SerialNo>12345678</SerialNo><VendorId>KAM</VendorId><ConfigNo>1</ConfigNo><TypeNo>021</TypeNo>
    <DEK>{N21_KEY.hex().upper()}</DEK></Meter>
  <Meter><MeterName>MC21</MeterName><ConsumptionType>Water</ConsumptionType><MeterNo>2</MeterNo>
    <SerialNo>55667788</SerialNo><VendorId>KAM</VendorId><ConfigNo>1</ConfigNo><TypeNo>021</TypeNo>
    <DEK>{N53_KEY.hex().upper()}</DEK></Meter>
</MetersInOrder>"""

DEVICES = f"""<?xml version="1.0" encoding="utf-8"?>
<Devices><Device><ShortName>KWM2210</ShortName><SerialNumber>12345678</SerialNumber>
  <EncryptionKey><Value>{N21_KEY.hex()}</Value></EncryptionKey></Device></Devices>"""


def kem_file(xml: str, password: str) -> str:
    """A KEM file the way Kamstrup makes them: XML Encryption, AES-128-CBC, key = IV = password."""
    key = password.encode("utf-8").ljust(16, b"\0")
    data = xml.encode("utf-8")
    data += bytes([16 - len(data) % 16]) * (16 - len(data) % 16)
    enc = Cipher(algorithms.AES(key), modes.CBC(key)).encryptor()
    cipher_value = base64.b64encode(enc.update(data) + enc.finalize()).decode()
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element">'
            '<EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            f'<CipherData><CipherValue>{cipher_value}</CipherValue></CipherData></EncryptedData>')


def assert_both_meters(store: KeyStore) -> None:
    assert decode(N21, keys=store).decryption == "ok"
    assert decode(N53, keys=store).decryption == "ok"
    assert store.default is None and len(store) == 2


def assert_no_key(text: str) -> None:
    low = text.lower()
    for k in SECRET_KEYS:
        assert k not in low
        assert k[:16] not in low  # not even half a key


# --- formats ------------------------------------------------------------------------------------

def test_text_format(tmp_path):
    path = tmp_path / "meters.keys"
    path.write_text(f"# ours\n12345678 ELS {N21_KEY.hex()}\n55667788\t{N53_KEY.hex()}\n")
    assert_both_meters(KeyStore.from_file(path))


def test_csv_with_header_semicolons_quotes_and_manufacturer(tmp_path):
    path = tmp_path / "keys.csv"
    path.write_text(f'"meter_id";"manufacturer";"key"\n"12345678";"ELS";"{N21_KEY.hex()}"\n'
                    f'55667788;;{N53_KEY.hex()}\n')
    assert_both_meters(KeyStore.from_file(path))
    path.write_text(f"key,id\n{N21_KEY.hex()},12345678\n{N53_KEY.hex()},55667788\n")  # any column order
    assert_both_meters(KeyStore.from_file(path))


def test_two_column_csv_without_header(tmp_path):
    path = tmp_path / "keys.csv"
    path.write_text(f'12345678,{N21_KEY.hex()}\n"55667788","{N53_KEY.hex()}"\n')
    assert_both_meters(KeyStore.from_file(path))


def test_json_lines(tmp_path):
    path = tmp_path / "keys.jsonl"
    path.write_text(json.dumps({"id": "12345678", "key": N21_KEY.hex(), "manufacturer": "ELS"}) + "\n"
                    + json.dumps({"id": 55667788, "key": N53_KEY.hex()}) + "\n")
    assert_both_meters(KeyStore.from_file(path))


def test_kem_file_made_from_a_known_password_imports_its_keys(tmp_path):
    for n, xml in enumerate((METERS_IN_ORDER, DEVICES)):
        path = tmp_path / f"meters{n}.kem"
        path.write_text(kem_file(xml, PASSWORD), encoding="utf-8")
        store = KeyStore.from_file(path, kem_password=PASSWORD)
        assert decode(N21, keys=store).decryption == "ok"
    assert_both_meters(KeyStore.from_file(tmp_path / "meters0.kem", kem_password=PASSWORD))


def test_kem_inside_a_zip(tmp_path):
    path = tmp_path / "from-utility.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "keys inside")
        z.writestr("order 4711.kem2", kem_file(METERS_IN_ORDER, PASSWORD))
    assert_both_meters(KeyStore.from_file(path, kem_password=PASSWORD))


def test_kem_wrong_or_missing_password_is_a_clear_error_without_keys(tmp_path):
    path = tmp_path / "meters.kem"
    path.write_text(kem_file(METERS_IN_ORDER, PASSWORD), encoding="utf-8")
    with pytest.raises(ValueError, match="kem-password") as err:
        KeyStore.from_file(path)
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match="wrong password") as err:
        KeyStore.from_file(path, kem_password="not it")
    assert str(path) in str(err.value)
    assert_no_key(str(err.value))


def test_tr03_key_exchange_is_reported_as_not_supported(tmp_path):
    path = tmp_path / "tr03.xml"
    path.write_text('<?xml version="1.0"?><KeyExchange><!-- OMS TR-03 --><Key id="1">00</Key></KeyExchange>')
    with pytest.raises(ValueError, match="TR-03 key exchange files are not supported"):
        KeyStore.from_file(path)


# --- errors name file and line, never the key ---------------------------------------------------

@pytest.mark.parametrize("name, content, where", [
    ("a.keys", f"12345678 {N21_KEY.hex()}\n55667788 {N53_KEY.hex()[:-1]}\n", ":2:"),
    ("b.keys", f"12345678 {N21_KEY.hex()}\n5566778 X{N53_KEY.hex()[1:]}\n", ":2:"),
    ("c.csv", f"id,key\n12345678,{N21_KEY.hex()}\n\n55667788,{N53_KEY.hex()}zz\n", ":4:"),
    ("d.jsonl", f'{{"id": "12345678", "key": "{N21_KEY.hex()}"}}\n{{"id": "55667788", "key": "{N53_KEY.hex()}"\n',
     ":2:"),
    ("e.jsonl", f'{{"id": "1234567890", "key": "{N53_KEY.hex()}"}}\n', ":1:"),
])
def test_bad_key_files_name_file_and_line_never_the_key(tmp_path, caplog, name, content, where):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        KeyStore.from_file(path)
    assert f"{path}{where}" in str(err.value)
    assert_no_key(str(err.value) + caplog.text)


def test_store_repr_and_ids_hide_keys(tmp_path):
    path = tmp_path / "k.keys"
    path.write_text(f"12345678 {N21_KEY.hex()}\n")
    store = KeyStore.from_file(path)
    assert_no_key(repr(store) + str(store.ids()))


# --- the CLI ------------------------------------------------------------------------------------

def run(argv, monkeypatch, capsys, stdin: str = ""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_keys_kem_with_password_option_and_environment(tmp_path, monkeypatch, capsys):
    path = tmp_path / "meters.kem"
    path.write_text(kem_file(METERS_IN_ORDER, PASSWORD), encoding="utf-8")
    rc, out, err = run(["telegram", N21.hex(), "--keys", str(path), "--kem-password", PASSWORD, "--output", "json"],
                       monkeypatch, capsys)
    assert rc == 0 and json.loads(out)["decryption"] == "ok"
    monkeypatch.setenv("WMBUS_KEM_PASSWORD", PASSWORD)
    rc, out, err = run(["telegram", N53.hex(), "--keys", str(path), "--output", "json"], monkeypatch, capsys)
    assert rc == 0 and json.loads(out)["decryption"] == "ok"
    monkeypatch.setenv("WMBUS_KEM_PASSWORD", "wrong")
    rc, out, err = run(["telegram", N53.hex(), "--keys", str(path)], monkeypatch, capsys)
    assert rc == 2 and str(path) in err and "Traceback" not in err
    assert_no_key(out + err)


def test_stream_json_lines_with_per_telegram_keys(monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    lines = "\n".join([
        json.dumps({"_": "decode", "telegram": N21.hex(), "key": N21_KEY.hex()}),  # wmbusmeters' stdin:jsonl
        json.dumps({"telegram": N53.hex(), "key": N53_KEY.hex().upper()}),
        json.dumps({"_": "decode", "telegram": N21.hex(), "key": "NOKEY"}),
        json.dumps({"_": "decode", "telegram": N21.hex(), "key": N53_KEY.hex()}),  # wrong key
        json.dumps({"_": "decode", "telegram": "zz" + N21.hex(), "key": N21_KEY.hex()}),  # bad telegram
        json.dumps({"_": "decode", "telegram": N21.hex(), "key": N21_KEY.hex()[:-2]}),  # bad key
        '{"_": "decode", "telegram": "' + N21.hex() + '", "key": "' + N21_KEY.hex() + '"',  # broken JSON
        json.dumps({"_": "status", "key": N21_KEY.hex()}),
    ]) + "\n"
    rc, out, err = run(["telegram", "-"], monkeypatch, capsys, lines)
    assert rc == 0
    objs = [json.loads(x) for x in out.splitlines()]
    assert [o.get("decryption", "error") for o in objs] == [
        "ok", "ok", "no_key", "wrong_key", "error", "error", "error", "error"]
    assert objs[4]["input"] == "zz" + N21.hex() and "hexadecimal" in objs[4]["error"]
    assert objs[5]["input"] == N21.hex() and "32 hex digits" in objs[5]["error"]
    assert "not repeated" in objs[6]["input"]
    assert_no_key(out + err + caplog.text)


def test_stream_hex_key_lines_never_echo_the_key(monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    lines = "\n".join([
        f"{N21.hex()} {N21_KEY.hex()}",
        f"{N21.hex()}zz {N21_KEY.hex()}",  # bad telegram, good key
        f"{N21.hex()} {N21_KEY.hex()[:-1]}",  # bad key
        f"{N21.hex()} {N21_KEY.hex()} extra",  # too many fields
        f"{N21.hex()} {N53_KEY.hex()}",  # wrong key
    ]) + "\n"
    for output in ("json", "text", "explain"):
        rc, out, err = run(["telegram", "-", "--output", output], monkeypatch, capsys, lines)
        assert rc == 0 and "5 lines" in err
        assert_no_key(out + err + caplog.text)
    rc, out, err = run(["telegram", "-"], monkeypatch, capsys, lines)
    objs = [json.loads(x) for x in out.splitlines()]
    assert objs[0]["decryption"] == "ok" and objs[4]["decryption"] == "wrong_key"
    assert objs[1]["input"] == f"{N21.hex()}zz (key not repeated)"
    assert objs[2]["input"] == f"{N21.hex()} (key not repeated)"
