"""What every command shares: the common options, the command's own config, one-line errors, the demo lake."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from gpuetl.config import DEFAULT_SETTINGS, ConfigError, Settings
from gpuetl.jquants import spec
from gpuetl.lake.manifest import FILENAME as MANIFEST
from gpuetl.lake.outputs import Input
from gpuetl.remote.urls import is_url
from gpuetl.resources import config_path

EXIT_CODES = """exit codes:
  0  done
  1  data or runtime error (a lake without the data, a corrupt file, a fetch that could not finish)
  2  usage or config error (a bad flag, config key or date; an --out or --lake that cannot be used)
  3  backend unavailable (--backend gpu without a usable GPU)
An error is one line on stderr naming the input and the fix; -v also prints its traceback."""

DEMO_LAKE = "demo/raw"  # under paths.data: the lake `fetch --demo` and `synth` write (never mixed with a real one)
DEMO_DATASET = "demo"  # under paths.datasets: the dataset `make demo` builds


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


def add_output_options(p: argparse.ArgumentParser, summary: str, *, overwrite: bool = False,
                       cluster: bool = False) -> None:
    """The options of a command that writes something and prints a summary: `--json` (the summary as JSON),
    `--no-progress`, and where it applies `--overwrite` (an output folder gpuetl did not write) and `--cluster`."""
    if overwrite:
        p.add_argument("--overwrite", action="store_true",
                       help="replace an existing output of this command's kind (never an input, another kind or a "
                            "folder gpuetl did not write)")
    if cluster:
        add_cluster_option(p)
    p.add_argument("--json", action="store_true", help=f"print the {summary} as JSON (instead of the table)")
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


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


def config_inputs(args: argparse.Namespace) -> list[Input]:
    """The config files a command reads (`--settings`, and `--config` where it has one): never an output."""
    found = []
    for flag, name in (("--settings", "settings"), ("--config", "config")):
        value = getattr(args, name, None)
        if value:
            try:
                found.append(Input(config_path(value), f"the {flag} file"))
            except FileNotFoundError:
                continue  # reported by the config's own loader
    return found


def dataset_names(arg: str | None) -> list[str] | None:
    """`--datasets a,b` as a list of J-Quants dataset names (None when not given); an unknown name is a
    CommandError (exit 2) naming the valid ones."""
    if not arg:
        return None
    names = [d.strip() for d in arg.split(",") if d.strip()]
    unknown = [n for n in names if n not in spec.datasets()]
    if unknown:
        raise CommandError(f"unknown dataset(s) {', '.join(unknown)}; valid: {', '.join(spec.datasets())}", 2)
    return names


def note(command: str, message: str) -> None:
    """A line for the user that is not a result (stderr)."""
    print(f"gpuetl {command}: {message}", file=sys.stderr)


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars (rich, on stderr) unless --no-progress, and only where stderr is a terminal."""
    return not args.no_progress and Console(stderr=True).is_terminal


def demo_lake(settings: Settings) -> Path:
    return Path(settings.paths.data) / DEMO_LAKE


def local_only(value: str | Path, what: str, command: str) -> None:
    """A URL reaching a command that reads only local folders (its flag takes none) is a CommandError (exit 2),
    never a local folder named `s3:`."""
    if is_url(str(value)):
        raise CommandError(f"{what} is a URL ({value}) and `gpuetl {command}` works on local folders: pass a "
                           "folder with its flag", 2)


def lake_url(args: argparse.Namespace, settings: Settings) -> str | None:
    """--lake's default where `paths.lake` is a URL and the flag is not given (the demo lake of --demo is local)."""
    lake = settings.paths.lake
    return lake if not getattr(args, "lake", None) and not getattr(args, "demo", False) and is_url(lake) else None


def dataset_url(settings: Settings, name: str | None) -> str | None:
    """A dataset `name` under `paths.datasets` as a URL, where that setting is one; a folder, a path or a URL as
    given (None)."""
    root = settings.paths.datasets
    if not name or not is_url(root) or is_url(name) or Path(name).is_dir() or len(Path(name).parts) != 1:
        return None
    return f"{root.rstrip('/')}/{name}"


def lake_dir(arg: str | None, settings: Settings, command: str) -> Path:
    """The lake a reading command uses: --lake, else paths.lake; when paths.lake holds no lake but the demo lake
    does (after `make demo`), the demo lake, said on stderr. A path that is a file is a CommandError (exit 2)."""
    local_only(arg or settings.paths.lake, "--lake" if arg else "paths.lake", command)
    lake = Path(arg or settings.paths.lake)
    if not arg and not (lake / MANIFEST).exists() and (demo_lake(settings) / MANIFEST).exists():
        lake = demo_lake(settings)
        note(command, f"no lake at {settings.paths.lake} (paths.lake); using the demo lake {lake} "
                      "(pass --lake to choose another)")
    if lake.exists() and not lake.is_dir():
        raise CommandError(f"--lake {lake} is a file, not a lake folder", 2)
    return lake


def dataset_dir(arg: str | None, default: str, settings: Settings, command: str, *, fallback: bool = False) -> Path:
    """--dataset as a folder or a name under paths.datasets, else `default`; with `fallback`, the demo dataset when
    only that exists (after `make demo`, said on stderr). A folder that is not a dataset is a CommandError (exit 2);
    a missing dataset one (exit 1) that names the datasets there and the flag to pass."""
    name = arg or default
    local_only(name, "--dataset" if arg else "the default dataset", command)
    folder = Path(name).is_dir()
    if not folder:  # a name under paths.datasets
        local_only(settings.paths.datasets, "paths.datasets", command)
    root = Path(settings.paths.datasets)
    dataset = Path(name) if folder else root / name
    if not arg and not dataset.is_dir() and fallback and (root / DEMO_DATASET).is_dir():
        note(command, f"no dataset at {dataset}; using the demo dataset {root / DEMO_DATASET} "
                      "(pass --dataset to choose another)")
        dataset = root / DEMO_DATASET
    if not dataset.is_dir():
        found = sorted(d.name for d in root.iterdir() if (d / "metadata.json").exists()) if root.is_dir() else []
        have = f" (datasets in {root}: {', '.join(found)})" if found else ""
        raise CommandError(f"no dataset at {dataset}: build it with `gpuetl build` (`make demo` for the demo market), "
                           f"or pass --dataset DIR_OR_NAME{have}", 1)
    if not (dataset / "metadata.json").is_file():
        raise CommandError(f"--dataset {dataset} is not a dataset (no metadata.json): pass a folder `gpuetl build` "
                           "wrote", 2)
    return dataset


def is_demo_lake(lake: Path, settings: Settings) -> bool:
    return lake.resolve() == demo_lake(settings).resolve()


# ----------------------------------------------------------------------------- object storage (gpuetl.remote)

class Unpublished(Exception):
    """A command on a remote output returned `code` (not 0): its mirror is not published."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def run_staged(args: argparse.Namespace, settings: Settings) -> int:
    """Run the command on its local mirrors (`staged`); a non-zero exit publishes nothing."""
    try:
        with staged(args, settings) as local:
            code = int(args.run(local, settings))
            if code != 0:
                raise Unpublished(code)
    except Unpublished as stop:
        return stop.code
    return code


@contextlib.contextmanager
def staged(args: argparse.Namespace, settings: Settings) -> Iterator[argparse.Namespace]:
    """`args` with every URL flag the command declares (`set_defaults(remote=...)`: a function of the args giving
    each flag's role, "input" or "output:<kind>") swapped for the local mirror
    of its tree: inputs pulled, outputs pulled under the tree's writer lock and published when the command
    returns 0; `shared` says how a cluster's workers reach those trees (None: no URL). Commands without URLs run
    on `args` as given."""
    from gpuetl.remote import RemoteError, check_not_inside, remote_input, remote_output
    from gpuetl.remote.workers import Shared

    for name in ("data", "cache"):
        if is_url(getattr(settings.paths, name)):
            raise CommandError(f"paths.{name}: {getattr(settings.paths, name)} is a URL; it holds this machine's "
                               "runs, demo data and mirrors, a local folder (paths.lake and paths.datasets may be "
                               "URLs)", 2)
    hook = getattr(args, "url_defaults", None)
    on_urls = is_url(settings.paths.lake) or is_url(settings.paths.datasets)
    defaults = hook(args, settings) if hook and on_urls else {}
    for attr, url in defaults.items():  # flags left to a paths.lake / paths.datasets default that is a URL
        if url:
            setattr(args, attr, url)
    roles: dict[str, str] = args.remote(args) if getattr(args, "remote", None) else {}
    urls = {attr: str(getattr(args, attr)) for attr in roles if is_url(getattr(args, attr, None))}
    if not urls:
        args.shared = None
        yield args
        return
    local = argparse.Namespace(**vars(args))
    inputs = [u for a, u in urls.items() if roles[a] == "input"]
    try:
        for a, u in urls.items():
            if roles[a] != "input":
                check_not_inside(u, inputs)
        with contextlib.ExitStack() as stack:
            trees, outputs = {}, {}
            for attr, url in urls.items():
                role = roles[attr]
                ctx = (remote_input(url, settings.paths.cache) if role == "input" else
                       remote_output(url, settings.paths.cache, kind=role.split(":", 1)[1], command=args.command))
                mirror, trees[str(mirror)] = stack.enter_context(ctx)
                if role != "input":
                    outputs[str(mirror)] = url
                setattr(local, attr, str(mirror))
            local.shared = Shared.of(trees, outputs)  # how a cluster's workers reach these mirrors: the store
            yield local
    except RemoteError as err:
        raise CommandError(str(err), 1) from None
