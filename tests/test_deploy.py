"""The deployment files in scripts/deploy/: the systemd unit (checked by systemd-analyze verify when
it is installed) and the Dockerfile (built when a docker engine answers; checked statically always):
both run a `wmbus-sdr rx` command that this version's parser accepts, with the watchdog set."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from flowgraphs.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "scripts" / "deploy"
UNIT = DEPLOY / "wmbus-sdr.service"
DOCKERFILE = DEPLOY / "Dockerfile"


def _unit_entries(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> values of a systemd unit file (continuation lines joined)."""
    out: dict[tuple[str, str], list[str]] = {}
    section = None
    lines = text.replace("\\\n", " ").splitlines()
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep and section, f"{UNIT.name}: not a unit file line: {line!r}"
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def _check_rx_command(argv: list[str], where: str) -> None:
    """``argv`` (after the program) is an rx command this version accepts, with the watchdog set."""
    assert argv and argv[0] == "rx", f"{where}: runs {argv[:1]}, not rx"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as err:
        raise AssertionError(f"{where}: `wmbus-sdr {' '.join(argv)}` is refused by the parser") from err
    assert "--stall-timeout" in argv and "--max-restarts" in argv, f"{where}: the watchdog is not set"
    assert args.stall_timeout > 0 and args.max_restarts >= 1


# --- systemd --------------------------------------------------------------------------------------

def test_unit_runs_rx_with_the_watchdog_and_restarts_on_failure():
    entries = _unit_entries(UNIT.read_text())
    assert entries[("Service", "Restart")] == ["on-failure"]
    assert "plugdev" in entries[("Service", "SupplementaryGroups")][0].split()
    assert entries.get(("Service", "DynamicUser")) == ["yes"] or ("Service", "User") in entries
    (exec_start,) = entries[("Service", "ExecStart")]
    program, *argv = shlex.split(exec_start)
    assert program.endswith("/bin/wmbus-sdr")
    # ${CREDENTIALS_DIRECTORY} is systemd's to fill in; any path will do for the parser
    _check_rx_command([a.replace("${CREDENTIALS_DIRECTORY}", "/run/credentials/wmbus-sdr.service") for a in argv],
                      UNIT.name)
    # USB device nodes stay reachable under the device policy
    assert entries.get(("Service", "DeviceAllow"), ["char-usb_device rw"]) == ["char-usb_device rw"]


def test_unit_passes_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # verify also checks that ExecStart's program exists: point it at this environment's wmbus-sdr
    program = Path(sys.executable).with_name("wmbus-sdr")
    if not program.exists():
        pytest.skip(f"{program} is not installed (pip install -e .): systemd-analyze verify checks ExecStart's program")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/wmbus-sdr/bin/wmbus-sdr", str(program)))
    p = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True, timeout=120)
    said = [line for line in (p.stdout + p.stderr).decode().splitlines() if UNIT.name in line or str(unit) in line]
    assert p.returncode == 0 and not said, (p.stdout + p.stderr).decode()


def test_systemd_analyze_verify_would_catch_a_bad_unit(tmp_path):
    """The check above can fail: a misspelt key and a bad Restart value are reported."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    program = Path(sys.executable).with_name("wmbus-sdr")
    if not program.exists():
        pytest.skip(f"{program} is not installed (pip install -e .)")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/wmbus-sdr/bin/wmbus-sdr", str(program))
                    .replace("Restart=on-failure", "Restart=sometimes").replace("DynamicUser=", "DynamicUsr="))
    p = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True, timeout=120)
    text = (p.stdout + p.stderr).decode()
    assert "sometimes" in text and "DynamicUsr" in text, text


# --- Docker ---------------------------------------------------------------------------------------

def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, f"{DOCKERFILE}: ends inside a continued line"
    return out


def test_dockerfile_static_check():
    """Debian slim; every COPY source exists in the build context (the repository root) and every
    package pyproject.toml installs is copied; pip installs the project with its rtlsdr extra (one
    pyproject.toml defines); ENTRYPOINT is wmbus-sdr and CMD an rx command this version accepts."""
    ins = _instructions(DOCKERFILE.read_text())
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) == 1 and froms[0].startswith("debian:") and froms[0].endswith("-slim"), froms
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    copied = set()
    for i, a in ins:
        if i in ("COPY", "ADD"):
            *sources, _dest = shlex.split(a)
            for src in sources:
                assert not src.startswith("--"), f"COPY option {src}: not expected here"
                assert (REPO / src).exists(), f"{DOCKERFILE.name}: COPY {src}: no such file in the build context"
                copied.add(src.rstrip("/"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"packages not copied into the image: {packages - copied}"
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    runs = " ".join(a for i, a in ins if i == "RUN")
    extras = set(project["project"]["optional-dependencies"])
    installed = [w for w in shlex.split(runs) if w.startswith(".[")]
    assert installed, "the project is not pip-installed"
    wanted = set(installed[0][2:-1].split(","))
    assert "rtlsdr" in wanted and wanted <= extras, (wanted, extras)
    assert "libusb-1.0-0" in runs  # pyrtlsdrlib's librtlsdr needs it
    (entry,) = [json.loads(a) for i, a in ins if i == "ENTRYPOINT"]
    (cmd,) = [json.loads(a) for i, a in ins if i == "CMD"]
    assert entry == ["/opt/wmbus-sdr/bin/wmbus-sdr"] and "python3 -m venv /opt/wmbus-sdr" in runs
    _check_rx_command(cmd, f"{DOCKERFILE.name} CMD")
    assert any(i == "USER" and a != "root" for i, a in ins)
    assert "--device /dev/bus/usb" in DOCKERFILE.read_text()  # the documented USB passthrough
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert all(f"!{src}" in ignore for src in copied), "the .dockerignore leaves out a file the image copies"


def _docker_engine() -> str | None:
    """Why docker cannot build here, or None when an engine answers."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client installed"
    p = subprocess.run([docker, "info"], capture_output=True, timeout=60)
    if p.returncode != 0:
        return f"no docker engine answers (`docker info`: {p.stderr.decode().strip().splitlines()[-1:]})"
    return None


def test_docker_image_builds_and_runs():
    why = _docker_engine()
    if why:
        pytest.skip(why)
    tag = "wmbus-sdr:test-deploy"
    p = subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(REPO)], capture_output=True,
                       timeout=1800)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    try:
        p = subprocess.run(["docker", "run", "--rm", tag, "--version"], capture_output=True, timeout=120)
        assert p.returncode == 0 and p.stdout.decode().startswith("wmbus-sdr "), p
        p = subprocess.run(["docker", "run", "--rm", tag, "rx", "--help"], capture_output=True, timeout=120)
        assert p.returncode == 0 and b"--stall-timeout" in p.stdout
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, timeout=120)
