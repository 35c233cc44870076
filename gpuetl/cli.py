"""The `gpuetl` command line. Each subcommand loads the runtime settings (`--settings`, default configs/gpuetl.yaml, merged with
`--set a.b=c` overrides), chooses the backend once, and runs one pipeline; `--config` names a
command's own config (e.g. the dataset definition for `build`). Results go to stdout (a table, or JSON
with `--json`); logs, progress and errors go to stderr."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import rich
from rich.console import Console
from rich.logging import RichHandler

from gpuetl import __version__
from gpuetl.config import DEFAULT_SETTINGS, ConfigError, Settings, load_settings
from gpuetl.resources import config_path

Command = Callable[[argparse.Namespace, Settings], int]

EXIT_CODES = """exit codes:
  0  done
  1  data or runtime error (a lake without the data, a corrupt file, a fetch that could not finish)
  2  usage or config error (a bad flag, config key or date; an --out or --lake that cannot be used)
  3  backend unavailable (--backend gpu without a usable GPU)
An error is one line on stderr naming the input and the fix; -v also prints its traceback."""

DEMO_LAKE = "demo/raw"  # under paths.data: the lake `fetch --demo` and `synth` write (never mixed with a real one)
DEMO_DATASET = "demo"  # under paths.datasets: the dataset `make demo` builds
MANIFEST = "_manifest.json"  # gpuetl.lake.manifest.FILENAME, without importing the lake here


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


def add_cluster_option(p: argparse.ArgumentParser) -> None:
    """`--cluster`: run the command's tasks on Dask (settings `cluster:` size a local one)."""
    p.add_argument("--cluster", metavar="local|local-cuda|tcp://HOST:PORT",
                   help="run the tasks on a Dask cluster: a LocalCluster of CPU workers (local), a LocalCUDACluster "
                        "with a worker per GPU (local-cuda) or an existing scheduler (tcp://...); default: this "
                        "process")


def command_config(load: Callable[[str, list[str]], Any], args: argparse.Namespace) -> Any:
    """The command's config from --config / --config-set; a bad or missing file is a CommandError (exit 2)."""
    try:
        return load(args.config, args.config_overrides)
    except (ConfigError, FileNotFoundError) as err:
        raise CommandError(f"config error: {err}", 2) from None


def note(command: str, message: str) -> None:
    """A line for the user that is not a result (stderr)."""
    print(f"gpuetl {command}: {message}", file=sys.stderr)


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars (rich, on stderr) unless --no-progress, and only where stderr is a terminal."""
    return not args.no_progress and Console(stderr=True).is_terminal


def demo_lake(settings: Settings) -> Path:
    return Path(settings.paths.data) / DEMO_LAKE


def lake_dir(arg: str | None, settings: Settings, command: str) -> Path:
    """The lake a reading command uses: --lake, else paths.lake; when paths.lake holds no lake but the demo lake
    does (after `make demo`), the demo lake, said on stderr. A path that is a file is a CommandError (exit 2)."""
    lake = Path(arg or settings.paths.lake)
    if not arg and not (lake / MANIFEST).exists() and (demo_lake(settings) / MANIFEST).exists():
        lake = demo_lake(settings)
        note(command, f"no lake at {settings.paths.lake} (paths.lake); using the demo lake {lake} "
                      "(pass --lake to choose another)")
    if lake.exists() and not lake.is_dir():
        raise CommandError(f"--lake {lake} is a file, not a lake folder", 2)
    return lake


def is_demo_lake(lake: Path, settings: Settings) -> bool:
    return lake.resolve() == demo_lake(settings).resolve()


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
    parser = argparse.ArgumentParser(prog="gpuetl", description=__doc__, epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gpuetl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()

    doctor = sub.add_parser("doctor", parents=[common], help="show the backend, GPU, RMM pool and versions")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=_doctor)

    from gpuetl.bench.cli import add_parser as add_bench
    from gpuetl.dataset.cli import add_parser as add_build
    from gpuetl.graphs.cli import add_parser as add_graph
    from gpuetl.jquants.fake.cli import add_parser as add_demo_server
    from gpuetl.lake.cli import add_parser as add_lake
    from gpuetl.pipelines.fetch_cli import add_parser as add_fetch
    from gpuetl.synth.cli import add_parser as add_synth
    from gpuetl.train.cli import add_parser as add_train

    add_fetch(sub, common)
    add_lake(sub, common)
    add_demo_server(sub, common)
    add_synth(sub, common)
    add_build(sub, common)
    add_graph(sub, common)
    add_train(sub, common)
    add_bench(sub, common)
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
    args = parser.parse_args(argv)
    rich.reconfigure(stderr=True)  # logs and progress bars (rich's global console) go to stderr, results to stdout
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)], force=True)
    overrides = list(args.overrides) + ([f"backend={args.backend}"] if args.backend else [])
    try:
        settings = load_settings(args.settings, overrides)
    except (ConfigError, FileNotFoundError) as err:
        print(f"gpuetl {args.command}: config error: {err}", file=sys.stderr)
        return 2
    from gpuetl.backend import BackendUnavailable
    from gpuetl.lake.atomic import OutputError

    try:
        return int(args.run(args, settings))
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
