"""Manufacturer security: the one place a vendor decoder hooks in to open what the standard modes
cannot, and where the decoder decides the outcome when nobody does.

Two situations reach it (both decided in :func:`mbus.layers.open_tpl` / :func:`mbus.telegram.decode`):

1. A transport layer whose configuration field names a mode this stack cannot decrypt: 1 and 4
   (manufacturer / specific usage), 8, 9, 13, 15 and the reserved numbers 6, 11, 12, 14, 16-31
   (Diehl "real data" frames show up as 16-31: ``mbus.vendors`` registers their opener). Every
   registered opener is asked in order; the first that returns an :class:`Opened` wins
   (decryption ``ok``, its ``how`` in the message). When none does, decoding reports
   ``unsupported_mode`` naming the number and parses **no records** from the undecrypted bytes.
2. A manufacturer-specific CI (0xA0-0xB7) after the link layer: the payload belongs to a vendor
   decoder (``mbus.vendors.vendor_payload_records``); when none serves the meter the decryption
   outcome is ``manufacturer_specific`` (:data:`MANUFACTURER_SPECIFIC`) and there are no records.

An opener is a callable ``opener(frame: ManufacturerFrame) -> Opened | None``; register it with
:func:`register_opener`. It must return None for meters it does not know, and verify its own
plaintext (checksum, CRC) before returning it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..dll import Address

MANUFACTURER_SPECIFIC = "manufacturer_specific"


@dataclass(frozen=True, slots=True, kw_only=True)
class ManufacturerFrame:
    """What an opener sees: the frame up to the encrypted data, the data, and the key (if any)."""

    link_address: Address
    c_field: int
    ci: int
    mode: int  # the CF security mode number
    tpl: Any  # the mbus.tpl.TransportLayer (its address, ACC, CF ...)
    header: bytes  # canonical frame bytes before ``data`` (L-field at offset 0)
    data: bytes  # the bytes after the transport header
    key: bytes | None  # the key store's key for this meter, None without one

    def __repr__(self) -> str:  # never show the key
        return (f"ManufacturerFrame(link={self.link_address.manufacturer_code} {self.link_address.id}, "
                f"ci=0x{self.ci:02X}, mode={self.mode}, {len(self.data)} data bytes)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened:
    payload: bytes  # the plaintext application data (records)
    how: str  # e.g. "vendor diehl: LFSR real data, checksum verified"
    in_clear: bool = False  # the data was already plaintext (verified): outcome not_encrypted, a note


Opener = Callable[[ManufacturerFrame], "Opened | None"]
OPENERS: list[Opener] = []
FALLBACK_OPENERS: list[Opener] = []  # asked after every opener (checks for data already in the clear)


def register_opener(opener: Opener, *, fallback: bool = False) -> Opener:
    """Add an opener; the same callable twice is a configuration error. ``fallback`` openers run
    after all others (e.g. "this scrambled format was already descrambled")."""
    if opener in OPENERS or opener in FALLBACK_OPENERS:
        raise ValueError(f"manufacturer opener {getattr(opener, '__name__', opener)!r} is already registered")
    (FALLBACK_OPENERS if fallback else OPENERS).append(opener)
    return opener


def open_frame(frame: ManufacturerFrame) -> Opened | None:
    for opener in (*OPENERS, *FALLBACK_OPENERS):
        opened = opener(frame)
        if opened is not None:
            return opened
    return None
