"""Security modes of the transport layer (EN 13757-7) and ELL encryption, registered by number.

Each TPL mode module provides ``decrypt(key, ctx, data) -> plaintext`` and
``encrypt(key, ctx, plaintext) -> data``; decryption verifies its plaintext (2F2F) and raises
:class:`~mbus.errors.WrongKeyError` when the check fails. AES and CMAC come from ``cryptography``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dll import Address
from ..errors import UnsupportedModeError
from . import mode5, mode7


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityContext:
    """What a TPL security mode needs besides the key."""

    address: Address  # the meter's address: long TPL header if present, else the link header
    acc: int  # TPL access number
    encrypted_blocks: int  # N from the configuration field (0 = all whole blocks)
    from_meter: bool  # direction: meter -> partner (Kenc/Kmac) or partner -> meter (Lenc/Lmac)
    counter: int | None = None  # message counter for KDF (AFL MCR or TPL counter)


TPL_MODES = {5: mode5, 7: mode7}


def mode_module(mode: int):
    try:
        return TPL_MODES[mode]
    except KeyError:
        raise UnsupportedModeError(f"security mode {mode} is not supported", layer="TPL") from None
