"""AES keys per meter. Keys are never printed, logged or written to JSON: reprs hide them.

Key file format (``--keys FILE``), one meter per line, ``#`` starts a comment::

    # meter id   [manufacturer]   key (32 hex digits)
    12345678     ELS              0102030405060708090A0B0C0D0E0F11
    55667788                      000102030405060708090A0B0C0D0E0F

Separators may be spaces, tabs, commas or semicolons. An id of ``*`` gives a default key.
"""

from __future__ import annotations

import re
from pathlib import Path

from .dll import Address, manufacturer_value

_SPLIT = re.compile(r"[\s,;]+")


def parse_key(text: str, *, where: str = "key") -> bytes:
    """16 key bytes from 32 hex digits; the message never echoes the key."""
    cleaned = text.strip().replace(" ", "")
    if len(cleaned) != 32:
        raise ValueError(f"{where}: an AES-128 key has 32 hex digits, this one has {len(cleaned)}")
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

    def with_default(self, key: bytes | None) -> KeyStore:
        """A view sharing these per-meter keys with another default key (for ``HEX KEY`` lines)."""
        other = KeyStore(default=key if key is not None else self.default)
        other._by_id = self._by_id
        return other

    def add(self, meter_id: str, key: bytes, manufacturer: str | None = None) -> None:
        if len(key) != 16:
            raise ValueError(f"key for {meter_id} must be 16 bytes")
        if meter_id == "*":
            self.default = key
            return
        if len(meter_id) != 8:
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

    @classmethod
    def from_file(cls, path: str | Path) -> KeyStore:
        store = cls()
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ValueError(f"cannot read key file {path}: {err.strerror}") from None
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = _SPLIT.split(line)
            where = f"{path}:{lineno}"
            if len(parts) == 2:
                meter_id, manufacturer, key = parts[0], None, parts[1]
            elif len(parts) == 3:
                meter_id, manufacturer, key = parts
            else:
                raise ValueError(f"{where}: expected 'ID [MANUFACTURER] KEY', found {len(parts)} fields")
            try:
                store.add(meter_id, parse_key(key, where=where), manufacturer)
            except ValueError as err:
                msg = str(err)
                raise ValueError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        return store
