"""The ``wmbus-sdr`` command: one sub-command per job, each in its own module."""

from __future__ import annotations

import argparse
import logging
import sys

from . import analyze_cli, decode_cli, gateway_cli, meter_cli, rx_cli, session_cli, telegram_cli, tx_cli

COMMANDS = {"analyze": analyze_cli, "decode": decode_cli, "gateway": gateway_cli, "meter": meter_cli, "rx": rx_cli,
            "serve-rtltcp": rx_cli, "session": session_cli, "telegram": telegram_cli, "tx": tx_cli}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmbus-sdr",
        description="Wireless M-Bus (EN 13757 / OMS) receiver, transmitter and protocol analyser.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in dict.fromkeys(COMMANDS.values()):  # rx_cli defines two commands
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s: %(message)s")
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output closed early (e.g. piped into head): not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
