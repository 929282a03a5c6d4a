"""Thin wrappers over ``cryptography`` for the primitives the modes use (never hand-rolled)."""

from __future__ import annotations

from cryptography.hazmat.primitives import cmac as _cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ZERO_IV = bytes(16)


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(data) + d.finalize()


def cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return e.update(data) + e.finalize()


def ctr_crypt(key: bytes, icb: bytes, data: bytes) -> bytes:
    """AES-CTR with a 16-byte initial counter block incremented as a big-endian integer."""
    c = Cipher(algorithms.AES(key), modes.CTR(icb)).encryptor()
    return c.update(data) + c.finalize()


def cmac(key: bytes, data: bytes) -> bytes:
    c = _cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()
