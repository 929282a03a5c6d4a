"""The ``wmbus-sdr`` command: one sub-command per job, each in its own module of this package;
shared option helpers (keys, source, outputs) in :mod:`flowgraphs.cli.options`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# One BLAS thread: the receive chain's small matrix products are cheaper on the calling thread, and
# OpenBLAS's own threads spin on every core while they wait (decode with every default mode cost
# 2.5 times the CPU on two cores). More cores are used by processes (decode --jobs, hub --workers).
# Set before numpy is imported; an explicit setting in the environment wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import importlib  # noqa: E402

# command -> the module of this package that defines it (its add_parser and run); a run imports
# only its own command's module (the others cost ~50 ms of start-up), `--help` all of them
COMMANDS = {"analyze": "analyze", "decode": "decode", "gateway": "gateway", "meter": "meter", "rx": "rx",
            "serve-rtltcp": "rx", "session": "session", "telegram": "telegram", "tx": "tx", "hub": "hub"}


def command_module(name: str):
    """The module that defines command ``name``."""
    return _module(COMMANDS[name])


def _module(module: str):
    return importlib.import_module(f"{__name__}.{module}")


def version() -> str:
    """The installed package's version (its metadata), or a note that it is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("wmbus-sdr")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e . gives it its version)"


class _Version(argparse.Action):
    """--version: the package metadata is read only when asked for (it costs ~50 ms of start-up)."""

    def __init__(self, *args, prefix: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.prefix = prefix

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(f"{self.prefix or parser.prog} {version()}\n")
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` (a command's name) just that command's part."""
    parser = argparse.ArgumentParser(
        prog="wmbus-sdr",
        description="Wireless M-Bus (EN 13757 / OMS) receiver, transmitter and protocol analyser.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, default=argparse.SUPPRESS,
                        help="show program's version number and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in dict.fromkeys(COMMANDS[n] for n in ([only] if only else COMMANDS)):  # rx defines two
        _module(module).add_parser(sub)
    for name, command in sub.choices.items():  # `wmbus-sdr rx --version` too
        command.add_argument("--version", action=_Version, nargs=0, default=argparse.SUPPRESS,
                             help="show the version and exit", prefix=f"wmbus-sdr {name}")
    return parser


def _command_named(argv: list[str]) -> str | None:
    """The command an argument list runs (the first word that is not an option: the top level's
    options take no values), None when there is none or it is not a command."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_named(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s: %(message)s")
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    try:
        return command_module(args.command).run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output closed early (e.g. piped into head): not an error of ours.
        sys.stderr.close()
        return 0

