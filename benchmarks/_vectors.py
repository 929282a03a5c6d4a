"""Helpers for benchmarks: the shared vectors, when present."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def wireless_vectors() -> list[dict]:
    path = SHARED / "vectors" / "wireless.jsonl"
    if not path.exists():
        sys.exit(f"benchmark needs {path} (the shared reference material)")
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def even_hex(text: str) -> bytes:
    return bytes.fromhex(text[: len(text) - len(text) % 2])
