"""The dependency rule: mbus is pure bytes and imports nothing from sdr, dsp, flowgraphs or numpy."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "mbus": {"sdr", "dsp", "flowgraphs", "numpy", "scipy"},
    "dsp": {"flowgraphs"},
    "sdr": {"flowgraphs", "dsp"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_dependency_rule():
    bad = []
    for package, forbidden in FORBIDDEN.items():
        for path in (REPO / package).rglob("*.py"):
            hit = imported_roots(path) & forbidden
            if hit:
                bad.append(f"{path.relative_to(REPO)} imports {sorted(hit)}")
    assert not bad, bad


def test_mbus_modules_import_no_private_names_of_each_other():
    """One public entry per layer: e.g. wired.py opens the transport layer through
    telegram.open_transport, not through telegram's private helpers."""
    bad = []
    for path in (REPO / "mbus").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("mbus")):
                bad += [f"{path.relative_to(REPO)}: {a.name} from {node.module}" for a in node.names
                        if a.name.startswith("_")]
    assert not bad, bad


def test_light_cli_constants_match_their_sources():
    """decode_cli repeats two constants so that `wmbus-sdr telegram` starts without numpy."""
    from flowgraphs import decode_cli, receive
    from sdr import formats

    assert decode_cli.FORMATS == formats.FORMATS
    assert decode_cli.DEFAULT_MODES == receive.DEFAULT_MODES


def test_telegram_command_does_not_import_numpy():
    import subprocess
    import sys

    code = ("import sys; from flowgraphs.cli import main; "
            "main(['telegram', '2e44931578563412330378']); print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
