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
    """The CLI repeats the sample formats and looks the default modes up lazily, so that
    `wmbus-sdr telegram` starts without numpy."""
    from flowgraphs.cli import options
    from flowgraphs.pipelines import receive
    from sdr import formats

    assert options.FORMATS == formats.FORMATS
    assert str(options.DEFAULT_MODES) == ",".join(receive.DEFAULT_MODES)


def test_telegram_command_does_not_import_numpy():
    import subprocess
    import sys

    code = ("import sys; from flowgraphs.cli import main; "
            "main(['telegram', '2e44931578563412330378']); print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def _imported_modules(path: Path, root: Path = REPO) -> set[str]:
    """Fully qualified names of the modules a file imports, relative imports resolved."""
    package = list(path.relative_to(root).parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names |= {f"{prefix}.{a.name}" for a in node.names}  # `from . import cli` imports a module too
    return names


def test_no_library_module_imports_a_cli_module():
    """Command modules live in flowgraphs/cli/ and use the library; nothing else imports them."""
    bad = []
    for package in ("mbus", "dsp", "sdr", "flowgraphs"):
        for path in (REPO / package).rglob("*.py"):
            if (REPO / "flowgraphs" / "cli") in path.parents:
                continue
            hits = {m for m in _imported_modules(path) if m == "flowgraphs.cli" or m.startswith("flowgraphs.cli.")}
            if hits:
                bad.append(f"{path.relative_to(REPO)} imports {sorted(hits)}")
    assert not bad, bad


def test_the_import_check_sees_relative_imports(tmp_path):
    """The rule above is not vacuous: it resolves relative imports of the CLI from any depth."""
    (tmp_path / "flowgraphs" / "sinks").mkdir(parents=True)
    (tmp_path / "flowgraphs" / "live.py").write_text("from .cli import rx\nfrom . import cli\n")
    (tmp_path / "flowgraphs" / "sinks" / "x.py").write_text("def f():\n    from ..cli.options import key_store\n")
    assert {"flowgraphs.cli.rx", "flowgraphs.cli"} <= _imported_modules(tmp_path / "flowgraphs" / "live.py", tmp_path)
    assert "flowgraphs.cli.options" in _imported_modules(tmp_path / "flowgraphs" / "sinks" / "x.py", tmp_path)
