"""The dependency rules between the rooms, read from the source with ``ast`` (every import, also the
ones inside functions, relative ones resolved):

- ``mbus`` is pure bytes: the standard library and ``cryptography`` only — no numpy, nothing from
  ``sdr``, ``dsp`` or ``flowgraphs``;
- ``dsp`` imports nothing from ``flowgraphs``, from ``sdr`` only ``sdr.types``, from ``mbus`` only
  its framing rules (``crc``, ``frame``, ``errors``);
- ``sdr`` knows IQ, not M-Bus: nothing from ``dsp``, ``mbus`` or ``flowgraphs``;
- no library module imports a command module (``cli``, ``*_cli``, anything in a ``cli`` package).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("mbus", "dsp", "sdr", "flowgraphs")

def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def imports(source: str, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every module ``module`` imports, as absolute dotted names: ``from X import y`` counts as
    ``X.y`` when that is a module of the repository, else as ``X``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                if len(base) != len(package) - node.level + 1:
                    raise ValueError(f"{module}: relative import beyond the top package")
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            for alias in node.names:
                sub = f"{base_name}.{alias.name}"
                out.add(sub if sub in modules else base_name)
    return out


def is_cli(module: str) -> bool:
    return any(part == "cli" or part.endswith("_cli") for part in module.split(".")[1:])


def _within(name: str, allowed: set[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def broken_rule(module: str, imported: str) -> str | None:
    """Why ``module`` may not import ``imported``, or None when it may."""
    room, root = module.split(".")[0], imported.split(".")[0]
    if room == "mbus" and root != "mbus" and root not in sys.stdlib_module_names and root != "cryptography":
        return "mbus is pure bytes: the standard library and cryptography only"
    if room == "dsp":
        if root == "flowgraphs":
            return "dsp imports nothing from flowgraphs"
        if root == "sdr" and not _within(imported, {"sdr.types"}):
            return "dsp imports nothing from sdr beyond sdr.types"
        if root == "mbus" and not _within(imported, {"mbus.crc", "mbus.frame", "mbus.errors"}):
            return "dsp uses mbus's framing rules only (crc, frame, errors)"
    if room == "sdr" and root in {"dsp", "mbus", "flowgraphs"}:
        return "sdr knows IQ, not M-Bus: nothing from dsp, mbus or flowgraphs"
    if root in PACKAGES and is_cli(imported) and not is_cli(module):
        return "a library module imports no command module"
    return None


def violations(module: str, path: Path, modules: set[str]) -> list[tuple[str, str, str]]:
    found = imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py", modules)
    return [(module, name, why) for name in sorted(found) if (why := broken_rule(module, name))]


@pytest.mark.parametrize("package", PACKAGES)
def test_dependency_rule(package):
    modules = all_modules()
    bad = [v for m, p in modules.items() if m.split(".")[0] == package for v in violations(m, p, set(modules))]
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


def test_the_rules_catch_what_they_forbid():
    """The checker on made-up modules: each kind of import it must refuse, and the ones it must let
    through (relative imports resolved, ``from package import module`` taken as that module)."""
    modules = set(all_modules())

    def bad(module: str, source: str, is_package: bool = False) -> list[str]:
        return sorted(n for n in imports(source, module, is_package, modules) if broken_rule(module, n))

    assert bad("mbus.x", "import numpy\nfrom dsp import modes\nfrom ..flowgraphs.pipelines import live\n") == [
        "dsp.modes", "flowgraphs.pipelines.live", "numpy"]
    assert bad("mbus.security.x", "import hmac\nfrom ..crc import crc16\nfrom cryptography import x509\n") == []
    assert bad("dsp.x", "from sdr.formats import to_complex\nfrom sdr import types\nfrom mbus import frame\n"
               "def f():\n    from flowgraphs.receive import Receiver\n    from mbus.telegram import decode\n") == [
        "flowgraphs.receive", "mbus.telegram", "sdr.formats"]
    assert bad("sdr.x", "from .types import IQChunk\nimport numpy\nfrom mbus.crc import crc16\n"
               "from dsp.modes import MODES\n") == ["dsp.modes", "mbus.crc"]
    assert bad("flowgraphs.x", "from .cli.decode import main\nfrom . import cli\nfrom .decode_cli import x\n"
               "from .receive import Receiver\n") == [
        "flowgraphs.cli", "flowgraphs.cli.decode", "flowgraphs.decode_cli"]
    assert bad("flowgraphs.rx_cli", "from .decode_cli import frame_json\nfrom .live import run_live\n") == []
    assert bad("flowgraphs.cli.keys", "from ..tx_cli import x\n", is_package=False) == []
    assert bad("flowgraphs.stations.gateway", "from ..cli.keys import key_store\n") == ["flowgraphs.cli.keys"]


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

    code = ("import sys; from flowgraphs.cli import main; "
            "main(['telegram', '2e44931578563412330378']); print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_command_imports_only_its_own_module_and_help_lists_all():
    import subprocess

    code = ("import sys; from flowgraphs.cli import main; main(['telegram', '2e44931578563412330378']); "
            "print(sorted(m for m in sys.modules if m.startswith('flowgraphs.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip().splitlines()[-1] == str(["flowgraphs.cli.options", "flowgraphs.cli.telegram"])
    helped = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "-v", "--help"], capture_output=True, text=True,
                            cwd=REPO)
    from flowgraphs.cli import COMMANDS

    assert helped.returncode == 0 and all(name in helped.stdout for name in COMMANDS)
    wrong = subprocess.run([sys.executable, "-m", "flowgraphs.cli", "decod", "x.cu8"], capture_output=True, text=True,
                           cwd=REPO)
    assert wrong.returncode == 2 and "invalid choice: 'decod'" in wrong.stderr and "serve-rtltcp" in wrong.stderr


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
