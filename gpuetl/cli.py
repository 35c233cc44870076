"""The `gpuetl` command line. Each subcommand loads the runtime settings (`--settings`, default configs/gpuetl.yaml, merged with
`--set a.b=c` overrides), chooses the backend once, and runs one pipeline; `--config` names a
command's own config (e.g. the dataset definition for `build`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from rich.console import Console
from rich.logging import RichHandler

from gpuetl import __version__
from gpuetl.config import DEFAULT_SETTINGS, ConfigError, Settings, load_settings
from gpuetl.resources import config_path

Command = Callable[[argparse.Namespace, Settings], int]


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes, so they may follow the subcommand's name."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--settings", default=DEFAULT_SETTINGS, metavar="YAML",
                   help="runtime settings (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set gpu.rmm_pool=40GB (repeatable)")
    p.add_argument("--backend", choices=("auto", "gpu", "cpu"), help="shorthand for --set backend=...")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    return p


class CommandError(Exception):
    """A command's failure for the user: `gpuetl <command>: <message>` on stderr, exit `code`, no traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_config_options(p: argparse.ArgumentParser, default: str, what: str, example: str) -> None:
    """`--config YAML` and repeatable `--config-set KEY=VALUE` for a command's own config file."""
    p.add_argument("--config", default=default, metavar="YAML", help=f"{what} config (default: %(default)s)")
    p.add_argument("--config-set", dest="config_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a {what}-config key, e.g. --config-set {example} (repeatable)")


def command_config(load: Callable[[str, list[str]], Any], args: argparse.Namespace) -> Any:
    """The command's config from --config / --config-set; a bad or missing file is a CommandError (exit 2)."""
    try:
        return load(args.config, args.config_overrides)
    except (ConfigError, FileNotFoundError) as err:
        raise CommandError(f"config error: {err}", 2) from None


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl import backend
    from gpuetl.doctor import render, report

    info = report(backend.init(settings), config_path(args.settings))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        render(info, Console())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpuetl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gpuetl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()

    doctor = sub.add_parser("doctor", parents=[common], help="show the backend, GPU, RMM pool and versions")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=_doctor)

    from gpuetl.dataset.cli import add_parser as add_build
    from gpuetl.graphs.cli import add_parser as add_graph
    from gpuetl.jquants.fake.cli import add_parser as add_demo_server
    from gpuetl.pipelines.fetch_cli import add_parser as add_fetch
    from gpuetl.synth.cli import add_parser as add_synth
    from gpuetl.train.cli import add_parser as add_train

    add_fetch(sub, common)
    add_demo_server(sub, common)
    add_synth(sub, common)
    add_build(sub, common)
    add_graph(sub, common)
    add_train(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)])
    overrides = list(args.overrides) + ([f"backend={args.backend}"] if args.backend else [])
    try:
        settings = load_settings(args.settings, overrides)
    except (ConfigError, FileNotFoundError) as err:
        print(f"gpuetl: config error: {err}", file=sys.stderr)
        return 2
    from gpuetl.backend import BackendUnavailable

    try:
        return int(args.run(args, settings))
    except BackendUnavailable as err:
        print(f"gpuetl: {err}", file=sys.stderr)
        return 3
    except CommandError as err:
        print(f"gpuetl {args.command}: {err}", file=sys.stderr)
        return err.code


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
