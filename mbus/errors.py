"""The exception tree of the protocol stack.

Bad bytes from the air are expected; they raise a :class:`DecodeError` subclass that names the
layer, the byte offset (in the canonical telegram, L-field = offset 0) and a machine-readable
``reason``. The top-level decoder turns these into a partial telegram with problems.

Examples::

    CRCError          block 2 of a format A frame fails its CRC (reason "crc")
    TruncatedError    L says 0x2E but only 20 bytes arrived (reason "truncated")
    FieldError        an AFL whose AFLL is shorter than its own flags demand (reason "field")
    MissingKeyError   mode 5 payload and no key for meter 12345678 (reason "no_key")
    WrongKeyError     decrypted payload does not start with 2F2F (reason "wrong_key")
    MACMismatchError  the AFL CMAC differs from the one computed with Kmac (reason "mac_mismatch")
    UnsupportedModeError  security mode 9 (AES-GCM) is not supported (reason "unsupported_mode")
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Bytes that do not form a valid frame or layer."""

    reason = "malformed"

    def __init__(self, message: str, *, layer: str = "", offset: int | None = None):
        self.layer = layer
        self.offset = offset
        self.message = message
        where = []
        if layer:
            where.append(layer)
        if offset is not None:
            where.append(f"byte {offset}")
        super().__init__(f"{' '.join(where)}: {message}" if where else message)

    def shifted(self, by: int) -> DecodeError:
        """The same error with its offset moved by ``by`` bytes (a layer parsed from a slice)."""
        if self.offset is None or by == 0:
            return self
        return type(self)(self.message, layer=self.layer, offset=self.offset + by)


class TruncatedError(DecodeError):
    """Fewer bytes than the length fields announce."""

    reason = "truncated"


class CRCError(DecodeError):
    """A link-layer block CRC, or a checksum, does not match."""

    reason = "crc"


class FieldError(DecodeError):
    """A field holds a value the standard does not allow here."""

    reason = "field"


class SecurityError(DecodeError):
    """Decryption or authentication did not succeed."""

    reason = "security"


class MissingKeyError(SecurityError):
    """The payload is encrypted and no key is known for the meter."""

    reason = "no_key"


class WrongKeyError(SecurityError):
    """Decryption gave a plaintext that fails its check (2F2F filler or ELL payload CRC)."""

    reason = "wrong_key"


class MACMismatchError(SecurityError):
    """The message authentication code does not verify."""

    reason = "mac_mismatch"


class UnsupportedModeError(SecurityError):
    """A security mode (or authentication type) this stack does not implement."""

    reason = "unsupported_mode"
