"""Meter keys: one key store, fed from any of the files utilities and tools hand out.

Keys are never printed, logged or written (reprs hide them, errors name the file and line, never
the key). :meth:`KeyStore.from_file` detects the format:

* **text** (ours), one meter per line, ``#`` starts a comment; separators spaces, tabs, commas or
  semicolons; an id of ``*`` gives a default key::

      # meter id   [manufacturer]   key (32 hex digits, or 16 for a DES key)
      12345678     ELS              0102030405060708090A0B0C0D0E0F11
      55667788                      000102030405060708090A0B0C0D0E0F

  A two-column CSV without a header (``12345678,0102...``, quotes allowed) reads the same way.
* **CSV with a header** naming the columns: ``id`` (or ``meter_id`` / ``meter`` / ``serial``),
  ``key`` (or ``aes_key``), optionally ``manufacturer``; comma, semicolon or tab separated.
* **JSON lines**: ``{"id": "12345678", "key": "...", "manufacturer": "KAM"}`` (manufacturer optional).
* **Kamstrup KEM** (``.kem`` / ``.kem2``, or a zip holding one): XML Encryption
  (``EncryptedData/CipherData/CipherValue``, base64) of an XML meter list, AES-128-CBC with key =
  IV = the password (UTF-8, zero-padded to 16 bytes); needs ``kem_password``. The meter list is
  ``MetersInOrder/Meter`` (``SerialNo``, ``DEK``) or ``Devices/Device`` (``SerialNumber``, key in
  ``Value``) — element names are facts from wmbusmeters' ``utils/kem-import.py``. An already
  decrypted list is read as well.

The OMS TR-03 XML key exchange: its schema is not public (only the TR's title is), so it is not
read; such a file gives an error saying so.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .dll import Address, manufacturer_value

_SPLIT = re.compile(r"[\s,;]+")
_ID_COLUMNS = ("id", "meter_id", "meterid", "meter", "serial", "serial_no", "serialno", "serial_number")
_KEY_COLUMNS = ("key", "aes_key", "aeskey", "dek")
KEY_SIZES = (16, 8)  # AES-128, DES (modes 2 and 3)


def parse_key(text: str, *, where: str = "key") -> bytes:
    """16 key bytes from 32 hex digits (or 8 from 16, a DES key); the message never echoes the key."""
    cleaned = text.strip().replace(" ", "")
    if len(cleaned) not in (32, 16):
        raise ValueError(f"{where}: an AES-128 key has 32 hex digits (a DES key 16), this one has {len(cleaned)}")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"{where}: the key is not hexadecimal") from None


class KeyStore:
    """Keys by meter id (optionally with manufacturer), plus an optional default key."""

    __slots__ = ("_by_id", "default")

    def __init__(self, default: bytes | None = None):
        self.default = default
        self._by_id: dict[str, list[tuple[int | None, bytes]]] = {}

    def __repr__(self) -> str:
        return f"KeyStore({len(self)} keys{', default' if self.default else ''})"

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_id.values())

    def ids(self) -> list[str]:
        """The meter ids that have a key (never the keys)."""
        return sorted(self._by_id)

    def with_default(self, key: bytes | None) -> KeyStore:
        """A view sharing these per-meter keys with another default key (for ``HEX KEY`` lines)."""
        other = KeyStore(default=key if key is not None else self.default)
        other._by_id = self._by_id
        return other

    def add(self, meter_id: str, key: bytes, manufacturer: str | None = None) -> None:
        if len(key) not in KEY_SIZES:
            raise ValueError(f"key for {meter_id} must be 16 bytes (AES-128) or 8 (DES), not {len(key)}")
        if meter_id == "*":
            self.default = key
            return
        meter_id = meter_id.strip()
        if meter_id.isdigit() and len(meter_id) < 8:
            meter_id = meter_id.zfill(8)
        if len(meter_id) != 8 or not re.fullmatch(r"[0-9a-fA-F]{8}", meter_id):
            raise ValueError(f"meter id must have 8 digits, not {meter_id!r}")
        m = manufacturer_value(manufacturer) if manufacturer else None
        self._by_id.setdefault(meter_id.lower(), []).append((m, key))

    def lookup(self, *addresses: Address | None) -> bytes | None:
        """The key for the first address that has one (manufacturer-specific entries first)."""
        for address in addresses:
            if address is None:
                continue
            entries = self._by_id.get(address.id)
            if not entries:
                continue
            generic = None
            for m, key in entries:
                if m is None:
                    generic = generic or key
                elif m == address.manufacturer & 0x7FFF:
                    return key
            if generic is not None:
                return generic
        return self.default

    # --- files ---------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, *, kem_password: str | None = None) -> KeyStore:
        """Read a key file in any supported format (detected from its content)."""
        store = cls()
        store.load(path, kem_password=kem_password)
        return store

    def load(self, path: str | Path, *, kem_password: str | None = None) -> str:
        """Add the keys of ``path``; returns the format found ("text", "csv", "jsonl", "kem")."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise ValueError(f"cannot read key file {path}: {err.strerror}") from None
        if raw[:4] == b"PK\x03\x04":
            self._load_kem_xml(path, _kem_from_zip(path, raw), kem_password)
            return "kem"
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not UTF-8 text (byte {err.start}) and not a zip archive") from None
        first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
        if first.startswith("<"):
            self._load_kem_xml(path, text.encode("utf-8"), kem_password)
            return "kem"
        if first.startswith("{"):
            self._load_jsonl(path, text)
            return "jsonl"
        header = [c.strip().strip('"').lower() for c in re.split(r"[,;\t]", first)]
        if any(c in _KEY_COLUMNS for c in header) and any(c in _ID_COLUMNS for c in header):
            self._load_csv(path, text)
            return "csv"
        self._load_text(path, text)
        return "text"

    def _add_at(self, where: str, meter_id, key_text, manufacturer=None) -> None:
        if not isinstance(meter_id, str) or not isinstance(key_text, str):
            raise ValueError(f"{where}: id and key must be text")
        try:
            self.add(meter_id.strip().strip('"'), parse_key(key_text.strip().strip('"'), where=where),
                     manufacturer.strip().strip('"') if manufacturer else None)
        except ValueError as err:
            msg = str(err)
            raise ValueError(msg if msg.startswith(where) else f"{where}: {msg}") from None

    def _load_text(self, path: Path, text: str) -> None:
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [p for p in _SPLIT.split(line) if p]
            where = f"{path}:{lineno}"
            if len(parts) == 2:
                self._add_at(where, parts[0], parts[1])
            elif len(parts) == 3:
                self._add_at(where, parts[0], parts[2], parts[1])
            else:
                raise ValueError(f"{where}: expected 'ID [MANUFACTURER] KEY', found {len(parts)} fields")

    def _load_csv(self, path: Path, text: str) -> None:
        lines = text.splitlines()
        first = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#"))
        delimiter = max(",;\t", key=lines[first].count)
        reader = csv.reader(io.StringIO("\n".join(lines[first:])), delimiter=delimiter)
        header = [c.strip().lower() for c in next(reader)]
        id_col = next(header.index(c) for c in _ID_COLUMNS if c in header)
        key_col = next(header.index(c) for c in _KEY_COLUMNS if c in header)
        m_col = header.index("manufacturer") if "manufacturer" in header else None
        for offset, row in enumerate(reader, start=1):
            where = f"{path}:{first + 1 + offset}"
            if not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            if len(row) <= max(id_col, key_col):
                raise ValueError(f"{where}: {len(row)} columns, the header names {len(header)}")
            manufacturer = row[m_col] if m_col is not None and m_col < len(row) and row[m_col].strip() else None
            self._add_at(where, row[id_col], row[key_col], manufacturer)

    def _load_jsonl(self, path: Path, text: str) -> None:
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not a JSON object (column {err.colno}: {err.msg})") from None
            if not isinstance(obj, dict) or "id" not in obj or "key" not in obj:
                raise ValueError(f"{where}: expected {{\"id\": ..., \"key\": ...}}")
            self._add_at(where, str(obj["id"]), obj["key"], obj.get("manufacturer"))

    def _load_kem_xml(self, path: Path, xml: bytes, password: str | None) -> None:
        root = _parse_xml(path, xml)
        if _local(root.tag) == "EncryptedData":
            cipher_value = next((e.text for e in root.iter() if _local(e.tag) == "CipherValue"), None)
            if not cipher_value:
                raise ValueError(f"{path}: KEM file without EncryptedData/CipherData/CipherValue")
            if password is None:
                raise ValueError(f"{path}: Kamstrup KEM file: give its password (--kem-password or "
                                 "WMBUS_KEM_PASSWORD)")
            root = _parse_xml(path, kem_decrypt(path, cipher_value, password), decrypted=True)
        found = 0
        kind = _local(root.tag)
        if kind == "MetersInOrder":
            entries = [(m, "SerialNo", "DEK") for m in root.iter() if _local(m.tag) == "Meter"]
        elif kind == "Devices":
            entries = [(d, "SerialNumber", "Value") for d in root.iter() if _local(d.tag) == "Device"]
        elif "TR-03" in xml.decode("utf-8", "replace")[:2000] or "KeyExchange" in kind:
            raise ValueError(f"{path}: OMS TR-03 key exchange files are not supported (their format is not public)")
        else:
            raise ValueError(f"{path}: XML <{kind}> is neither a Kamstrup KEM file nor a decrypted meter list")
        for n, (element, id_tag, key_tag) in enumerate(entries, start=1):
            where = f"{path}: meter {n}"
            serial = _child_text(element, id_tag)
            key = _child_text(element, key_tag)
            if serial is None or key is None:
                raise ValueError(f"{where}: no <{id_tag}> or no <{key_tag}>")
            self._add_at(where, serial, key)
            found += 1
        if not found:
            raise ValueError(f"{path}: the meter list holds no meters")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element, name: str) -> str | None:
    for e in element.iter():
        if _local(e.tag) == name and e.text and e.text.strip():
            return e.text.strip()
    return None


def _parse_xml(path: Path, xml: bytes, *, decrypted: bool = False):
    if b"<!DOCTYPE" in xml[:4096] or b"<!ENTITY" in xml[:4096]:
        raise ValueError(f"{path}: XML with a DOCTYPE / entities is refused")
    try:
        return ElementTree.fromstring(xml)
    except ElementTree.ParseError as err:
        if decrypted:
            raise ValueError(f"{path}: the decrypted KEM content is not XML: wrong password?") from None
        raise ValueError(f"{path}: not well-formed XML (line {err.position[0]}, column {err.position[1]})") from None


def kem_key(password: str) -> bytes:
    """The AES-128 key (and IV) of a KEM file: the password, UTF-8, zero-padded to 16 bytes."""
    key = password.encode("utf-8")
    if len(key) > 16:
        raise ValueError(f"a KEM password has at most 16 bytes in UTF-8, this one has {len(key)}")
    return key + bytes(16 - len(key))


def kem_decrypt(path: Path, cipher_value: str, password: str) -> bytes:
    try:
        data = base64.b64decode("".join(cipher_value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{path}: KEM CipherValue is not base64") from None
    if not data or len(data) % 16:
        raise ValueError(f"{path}: KEM CipherValue holds {len(data)} bytes, not whole AES blocks")
    key = kem_key(password)
    d = Cipher(algorithms.AES(key), modes.CBC(key)).decryptor()
    plain = d.update(data) + d.finalize()
    pad = plain[-1]
    if 1 <= pad <= 16 and plain[-pad:] == bytes([pad]) * pad:
        plain = plain[:-pad]  # PKCS#7
    plain = plain.rstrip(b"\x00")
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: KEM content does not decrypt to text: wrong password?") from None
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)  # control characters some files carry
    return text.encode("utf-8")


def kem_encrypt(xml: bytes, password: str) -> str:
    """The base64 CipherValue of ``xml`` (PKCS#7-padded) as a KEM file holds it (tests, tools)."""
    key = kem_key(password)
    pad = 16 - len(xml) % 16
    e = Cipher(algorithms.AES(key), modes.CBC(key)).encryptor()
    return base64.b64encode(e.update(xml + bytes([pad]) * pad) + e.finalize()).decode("ascii")


def _kem_from_zip(path: Path, raw: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            names = [n for n in z.namelist() if n.lower().endswith((".kem", ".kem2", ".xml"))]
            if not names:
                raise ValueError(f"{path}: zip archive without a .kem file")
            info = z.getinfo(names[0])
            if info.file_size > 64 << 20:
                raise ValueError(f"{path}: {names[0]} in the zip is {info.file_size} bytes; refused")
            return z.read(names[0])
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path}: damaged zip archive ({err})") from None
