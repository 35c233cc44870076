"""The `gpuetl` command line. Each subcommand loads the runtime settings (`--settings`, default configs/gpuetl.yaml,
merged with `--set a.b=c` overrides), chooses the backend once, and runs one pipeline; `--config` names a
command's own config (e.g. the dataset definition for `build`). Results go to stdout (a table, or JSON
with `--json`); logs, progress and errors go to stderr."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import rich
from rich.console import Console
from rich.logging import RichHandler

from gpuetl.backend import BackendUnavailable
from gpuetl.commands import bench, build, demo_server, fetch, graph, importer, lake, predict, synth, train, tune, update
from gpuetl.commands.common import EXIT_CODES, CommandError, common_options, run_staged
from gpuetl.config import ConfigError, Settings, load_settings
from gpuetl.lake.outputs import OutputError
from gpuetl.resources import config_path
from gpuetl.version import __version__


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl import backend
    from gpuetl.doctor import render, report  # rich tables and version probes: only for this command

    info = report(backend.init(settings), config_path(args.settings))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        render(info, Console())
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the README's promise for usage errors too: one line on stderr naming the fix, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(prog="gpuetl", description=__doc__, epilog=EXIT_CODES,
                                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gpuetl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()

    doctor = sub.add_parser("doctor", parents=[common], help="show the backend, GPU, RMM pool and versions")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=_doctor)

    for command in (fetch, importer, lake, demo_server, synth, build, graph, update, train, tune, predict, bench):
        command.add_parser(sub, common)
    _describe(sub)
    return parser


def _describe(sub: argparse._SubParsersAction) -> None:
    """Each (sub)command's -h: its one-line description and the exit codes."""
    for choice in sub._choices_actions:
        command = sub.choices[choice.dest]
        command.description = command.description or choice.help
        command.epilog, command.formatter_class = EXIT_CODES, argparse.RawDescriptionHelpFormatter
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _describe(action)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error (one line on stderr): its exit code
        return stop.code if isinstance(stop.code, int) else 0
    if extra:
        print(f"gpuetl {args.command}: unrecognized arguments: {' '.join(extra)} (see gpuetl {args.command} -h)",
              file=sys.stderr)
        return 2
    rich.reconfigure(stderr=True)  # logs and progress bars (rich's global console) go to stderr, results to stdout
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)], force=True)
    overrides = list(args.overrides) + ([f"backend={args.backend}"] if args.backend else [])
    try:
        settings = load_settings(args.settings, overrides)
    except (ConfigError, FileNotFoundError) as err:
        print(f"gpuetl {args.command}: config error: {err}", file=sys.stderr)
        return 2
    try:
        return run_staged(args, settings)
    except BackendUnavailable as err:
        return _fail(args, str(err), 3)
    except CommandError as err:
        return _fail(args, str(err), err.code)
    except (ConfigError, OutputError) as err:
        return _fail(args, str(err), 2)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", 130)
    except Exception as err:  # the last line of defence: one line, the traceback only with -v
        return _fail(args, f"{type(err).__name__}: {err} (rerun with -v for the traceback)", 1)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if args.verbose:
        traceback.print_exc()
    print(f"gpuetl {args.command}: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return code


def entry(argv: Sequence[str] | None = None) -> NoReturn:
    """The process entry point (`gpuetl`, `python -m gpuetl`): run `main`, flush, and leave at once.

    Arrow's worker threads can still be alive when the interpreter tears down its C++ statics after a
    dataset scan, which aborts the process with "terminate called without an active exception" after all
    work is done (apache/arrow#39862, intermittent, worse under load). Exiting with os._exit once every
    Python-level stream is flushed skips that teardown; in-process callers use `main` and are unaffected.
    """
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's --help / usage errors
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
