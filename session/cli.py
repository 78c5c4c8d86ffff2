"""Command line of the on-VM tool: parses arguments and calls one function per command; nothing else."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from session import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepracer", description="DeepRacer training on this host (also `python -m session`).")
    parser.add_argument("--version", action="version", version=f"deepracer-cloud session {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    host = commands.add_parser("host", help="is this host ready to train? (first-boot state and system.env)")
    host.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "host":
        from session.host import print_host_state

        return print_host_state(as_json=args.json)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
