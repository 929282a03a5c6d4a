"""Shared test helpers: the read-only reference material beside the repository (../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DATA = Path(__file__).resolve().parent / "data"


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference material {path} is absent")
    return path


def load_jsonl(*parts: str) -> list[dict]:
    with shared_path(*parts).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def even_hex(text: str) -> bytes:
    """Bytes of a vector's hex; one source has an odd trailing nibble, documented in its notes."""
    return bytes.fromhex(text[: len(text) - len(text) % 2])


@pytest.fixture(scope="session")
def wireless_vectors() -> list[dict]:
    return load_jsonl("vectors", "wireless.jsonl")
