"""Scoring one day with a finished run (`gpuetl predict`): a ranked list of the day's codes, written as an output.

What it scores with: the model of the run's last fold, as the run itself used it on that fold's test days (the
GAT's chosen EMA weights, XGBoost's trees cut at the chosen count: checkpoints/fold<k>-seed<s>.*), with the day's
context standardised on that fold's training days and, for a GAT, the lead-lag relation estimated on them. So the
model that ranks is the one whose out-of-sample scores the run's report shows, and on a day of its test year it
gives the run's own predictions. A run of several seeds (`run.seeds`) scores with each seed's model and combines
them as the run did (gpuetl/train/ensemble.py). A model refitted on every labelled day would see a year more but
would have no test score of its own, and would cost a fit more per run; it is not made.

The dataset must be made as the run's was (`gpuetl.train.definition`: the same config and feature definitions;
later days are fine, so a dataset updated every evening is accepted), hold the fold's training days, and hold the
day; its graphs are checked fresh as `gpuetl train` checks them, and a GAT reads the day's graph and the last
`model.window` days of inputs.

    <out>/predictions-<date>.parquet (or .csv)  Date, Code, score, rank (1: the highest score), best first
    <out>/prediction.json                       the run, the dataset and its hash, the day, the fold, the counts

The folder is an output like any other (`gpuetl.lake.outputs`: kind `predictions`, swapped in whole, replaced
only with --overwrite).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from gpuetl.backend import Backend
from gpuetl.config import ConfigError, from_dict
from gpuetl.graphs.io import dataset_digest, graphs_digest
from gpuetl.lake.outputs import Input, check_output_dir, claimed, marker, output_kind, partial_dir, replaced_dir
from gpuetl.tensors import Dataset, DatasetError
from gpuetl.tensors.graphs import graph_dir
from gpuetl.tensors.panel import torch_device
from gpuetl.train.config import GatConfig, XgbConfig, check_gat, check_xgb
from gpuetl.train.data import FoldData, TrainData, load_train_data, resolve_label, select_inputs
from gpuetl.train.definition import changed_keys, dataset_definition, graphs_definition
from gpuetl.train.ensemble import checkpoint, combine, member_seed
from gpuetl.train.learner import TrainError
from gpuetl.train.loop import GATLearner
from gpuetl.train.splits import Fold, Period
from gpuetl.train.xgb import XGBLearner
from gpuetl.version import __version__

KIND = "predictions"
Format = Literal["parquet", "csv"]
FORMATS: tuple[Format, ...] = ("parquet", "csv")
_COMMAND = {"gat": "train", "xgb": "baseline"}  # the command that writes a model's runs
_SUFFIX = {"gat": "pt", "xgb": "ubj"}


class PredictError(RuntimeError):
    """A run, dataset or day that cannot be scored as asked (an unfinished run, a dataset made otherwise, a day the
    dataset lacks); the message names the input and the fix."""


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A finished run folder: its model, config as recorded, and the last fold (as splits.json has it)."""

    path: Path
    model: str  # gat | xgb
    cfg: GatConfig | XgbConfig
    recorded: dict[str, Any]  # config.json
    fold: dict[str, Any]  # the last fold of splits.json: index, test year, periods with their dates

    @property
    def members(self) -> list[tuple[int, Path]]:
        """(fit seed, checkpoint) of each seed's model on the last fold, as the run fitted them (ensemble.py)."""
        k = int(self.fold["fold"])
        return [(member_seed(s, k), checkpoint(self.path / "checkpoints", k, s, _SUFFIX[self.model]))
                for s in self.cfg.run.seeds]

    @property
    def command(self) -> str:
        return _COMMAND[self.model]

    @property
    def reads_graphs(self) -> bool:
        """Whether the model was fitted with the dataset's graphs (so scoring needs them, made the same way)."""
        if "graphs_definition" in self.recorded:
            return self.recorded["graphs_definition"] is not None
        return self.model == "gat" and self.recorded.get("graphs_hash") is not None  # a run from before predict

    def device(self, backend: Backend) -> torch.device:
        """Where the run's config says to compute (auto: the backend's device)."""
        device = torch_device(backend) if self.cfg.run.device == "auto" else torch.device(self.cfg.run.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise PredictError(f"run.device of {self.path} is cuda but torch sees no CUDA device")
        return device


def open_run(path: str | Path) -> TrainedRun:
    """The finished run at `path` (config.json, splits.json, metrics.json and the last fold's checkpoint), or
    PredictError naming what is missing and how to finish it."""
    path = Path(path)
    kind = output_kind(path)
    if kind not in ("gat-run", "xgb-run"):
        left = (marker(partial_dir(path)) or {}).get("kind")
        if left in ("gat-run", "xgb-run"):
            command = _COMMAND[left.removesuffix("-run")]
            raise PredictError(f"--run {path} did not finish (its work is at {partial_dir(path)}): finish it with "
                               f"`gpuetl {command} --resume --out {path}`")
        holds = f" (it holds a gpuetl {kind})" if kind else ""
        raise PredictError(f"--run {path} is not a finished run of `gpuetl train` or `gpuetl baseline`{holds}: "
                           "pass the --out folder of one")
    missing = [n for n in ("config.json", "splits.json", "metrics.json") if not (path / n).is_file()]
    if missing:
        raise PredictError(f"--run {path} lacks {', '.join(missing)}: not a finished run; train it again")
    recorded = json.loads((path / "config.json").read_text())
    model = str(recorded.get("model"))
    if model not in _COMMAND:
        raise PredictError(f"--run {path}: config.json names no model gpuetl knows ({model})")
    config = dict(recorded["config"])
    config["run"] = {**config["run"], "progress": False}  # not recorded: how the run showed its progress
    config["tracking"] = {"tensorboard": False, "mlflow_uri": None, "experiment": ""}  # nor where copies went
    try:
        cfg: GatConfig | XgbConfig
        if model == "gat":
            cfg = from_dict(GatConfig, config)
            check_gat(cfg)
        else:
            cfg = from_dict(XgbConfig, config)
            check_xgb(cfg)
    except ConfigError as err:
        raise PredictError(f"--run {path}: its config.json does not load ({err}); train it again") from None
    folds = json.loads((path / "splits.json").read_text())["folds"]
    if not folds:
        raise PredictError(f"--run {path} has no fold (splits.json): nothing was fitted")
    run = TrainedRun(path, model, cfg, recorded, folds[-1])
    for _, ckpt in run.members:
        if not ckpt.is_file():
            raise PredictError(f"--run {path} lacks {ckpt.relative_to(path)}: finish it with "
                               f"`gpuetl {run.command} --resume --out {path}`")
    return run


def check_dataset(run: TrainedRun, ds: Dataset) -> None:
    """PredictError unless `ds` is made as the run's dataset was (its definition, inputs, label and heads; and the
    graphs' definition when the model reads them); DatasetError (data: exit 1) for stale graphs, as `gpuetl train`
    refuses them, or missing ones the model needs. Reads metadata only."""
    rec = run.recorded
    if "dataset_definition" not in rec:  # a run from before the definitions were recorded: only its very dataset
        if rec.get("dataset_hash") != dataset_digest(ds.path):
            raise PredictError(f"--run {run.path} records no dataset definition (made before `gpuetl predict`) and "
                               f"{ds.path} is not the dataset it was made from: record it with "
                               f"`gpuetl {run.command} --resume --out {run.path}`")
    else:
        changed = changed_keys(rec["dataset_definition"], dataset_definition(ds))
        if changed:
            raise PredictError(f"--dataset {ds.path} is not made as the dataset of run {run.path} was "
                               f"({', '.join(changed)} differ): predict on a dataset built from the same config "
                               "(more days are fine), or train a run on this one")
    ds.graphs_metadata  # noqa: B018  (stale graphs are refused, as `gpuetl train` refuses them)
    if run.reads_graphs:
        if not ds.has_graphs:
            raise DatasetError(f"no graphs at {graph_dir(ds.path)} for the run's {run.model}: run "
                               f"`gpuetl graph --dataset {ds.path}`")
        before, now = rec.get("graphs_definition"), graphs_definition(ds)
        changed = changed_keys(before, now or {}) if before is not None else []
        if changed:
            raise PredictError(f"the graphs of {ds.path} are not made as those of run {run.path} were (graphs "
                               f"{', '.join(changed)} differ): rebuild them with the run's graph config "
                               "(`gpuetl graph --overwrite`)")
    label, heads = resolve_label(ds, run.cfg.data)
    inputs, context = select_inputs(ds, run.cfg.data.inputs)
    now = {"label": label, "heads": list(heads)}
    changed = [k for k, v in now.items() if rec.get(k) != v]
    lacking = [c for c in (*rec.get("inputs", []), *rec.get("context", [])) if c not in (*inputs, *context)]
    if changed or lacking:
        what = [*changed, *(["inputs " + ", ".join(lacking[:5])] if lacking else [])]
        raise PredictError(f"--dataset {ds.path} gives the model of run {run.path} other {'; '.join(what)} than "
                           "it was fitted on: predict on a dataset built from the same config")


def day_index(ds: Dataset, date: str | None) -> int:
    """The index of `date` on the dataset's date axis (None: its latest day); PredictError for a day it lacks."""
    dates = ds.dates
    if date is None:
        return len(dates) - 1
    try:
        when = np.datetime64(str(date), "D")
    except ValueError:
        raise PredictError(f"--date {date!r} is not a date (YYYY-MM-DD)") from None
    pos = int(np.searchsorted(dates, when))
    if pos >= len(dates) or dates[pos] != when:
        raise PredictError(f"--date {date} is not a day of {ds.path} (its trading days {dates[0]} .. {dates[-1]}): "
                           "choose one of them, or update the dataset")
    return pos


def fold_on(run: TrainedRun, ds: Dataset) -> Fold:
    """The run's last fold on the dataset's date axis, found by its dates (a dataset with later days has the same
    indices; one that lost or gained days inside the training period is refused: its context and lead-lag
    relation would not be the run's)."""
    dates = ds.dates

    def period(name: str, required: bool) -> Period:
        p = run.fold[name]
        first, last = (int(np.searchsorted(dates, np.datetime64(p[k], "D"))) for k in ("from", "to"))
        found = last < len(dates) and dates[first] == np.datetime64(p["from"], "D") \
            and dates[last] == np.datetime64(p["to"], "D") and last - first + 1 == int(p["days"])
        if found:
            return Period(first, last)
        if required:
            raise PredictError(f"--dataset {ds.path} does not hold the {p['days']} training days of run {run.path} "
                               f"({p['from']} .. {p['to']}) as they were: predict on the dataset it was trained on, "
                               "or one with later days added")
        return Period(0, -1)  # not needed to score: only the training days set the context and the relations

    return Fold(int(run.fold["fold"]), int(run.fold["test_year"]), period("train", True), period("valid", False),
                period("test", False))


@dataclasses.dataclass(frozen=True)
class PredictJob:
    """A run and a dataset that fit each other, and the day to score: everything checked, no panel read yet."""

    run: TrainedRun
    ds: Dataset
    day: int  # index on the dataset's date axis
    fold: Fold

    @property
    def date(self) -> str:
        return str(self.ds.dates[self.day])


def plan_prediction(run: str | Path | TrainedRun, ds: Dataset, date: str | None = None) -> PredictJob:
    """Check that `run` can score `date` (default: the latest day) of `ds`; PredictError / DatasetError if not."""
    trained = run if isinstance(run, TrainedRun) else open_run(run)
    check_dataset(trained, ds)
    day = day_index(ds, date)
    window = trained.cfg.model.window if isinstance(trained.cfg, GatConfig) else 1
    if day < window - 1:
        raise PredictError(f"--date {ds.dates[day]}: the GAT reads the {window} days of inputs up to the day, and "
                           f"{ds.path} starts {ds.dates[0]}: choose a later day")
    return PredictJob(trained, ds, day, fold_on(trained, ds))


def score(job: PredictJob, device: torch.device) -> tuple[np.ndarray, np.ndarray, int]:
    """The codes that count on the day (a row, and the run's `data.min_history` rows so far), their scores by the
    run's model, and how many codes with a row that day were left out for a shorter history."""
    run, cfg = job.run, job.run.cfg
    data = load_train_data(job.ds, cfg.data, device, cfg.model if isinstance(cfg, GatConfig) else None,
                           (list(run.recorded["inputs"]), list(run.recorded["context"])))  # the model's inputs
    fold = data.fold(job.fold)
    counts = data.eligible[job.day]
    preds = [_member(run, job, data, fold, seed, ckpt) for seed, ckpt in run.members]
    counts = data.eligible[job.day]
    present = data.panel.present[job.day]
    mask = counts.cpu().numpy()  # host-ok: the day's N flags, to name the ranked codes
    if not mask.any():
        raise TrainError(f"no code has {cfg.data.min_history} rows up to {job.date} in {job.ds.path}: nothing to rank")
    scores = combine(preds, counts.unsqueeze(0))[0]  # the seeds' ensemble, as the run combined its test days
    values = scores.cpu().numpy()[mask].astype(np.float32)  # host-ok: the day's N scores, for the ranking file
    if not np.isfinite(values).all():
        raise TrainError(f"the model of run {run.path} gave no finite score to some codes on {job.date}")
    left_out = int((present & ~counts).sum().item())  # host-ok: one count for prediction.json
    return data.panel.codes[mask], values, left_out


def _member(run: TrainedRun, job: PredictJob, data: TrainData, fold: FoldData, seed: int,
            ckpt: Path) -> torch.Tensor:
    """(1, N) scores of the day by one seed's model of the run's last fold."""
    cfg = run.cfg
    learner: GATLearner | XGBLearner
    learner = GATLearner(cfg, data, seed) if isinstance(cfg, GatConfig) else XGBLearner(cfg, seed)
    try:
        if isinstance(learner, XGBLearner):
            learner.restore(ckpt, data.device)
        else:
            learner.restore(ckpt)
    except TrainError as err:
        raise PredictError(f"--run {run.path}: {err}: finish it with `gpuetl {run.command} --resume`") from None
    except RuntimeError as err:  # torch: the saved weights' shapes are not this model's
        raise PredictError(f"the model of run {run.path} does not fit the inputs of {job.ds.path} "
                           f"({str(err).splitlines()[0]})") from None
    return learner.predict(fold, [job.day])


def ranking(date: str, codes: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Date, Code, score, rank: best first (rank 1 = the highest score; ties in code order)."""
    frame = pd.DataFrame({"Date": np.full(len(codes), np.datetime64(date, "ms")), "Code": codes.astype(str),
                          "score": scores.astype(np.float32)})
    frame = frame.sort_values(["score", "Code"], ascending=[False, True], kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1, dtype=np.int32)
    return frame


def file_name(date: str, fmt: Format) -> str:
    return f"predictions-{date}.{fmt}"


def write_ranking(frame: pd.DataFrame, out: Path, fmt: Format, summary: dict[str, Any], *, overwrite: bool = False,
                  read: Sequence[Input] = ()) -> Path:
    """The ranking and prediction.json as a `predictions` output at `out`; the ranking file's path."""
    name = file_name(str(summary["date"]), fmt)
    with replaced_dir(out, KIND, overwrite=overwrite, read=read) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp / name, index=False)
        else:
            frame.assign(Date=frame["Date"].dt.strftime("%Y-%m-%d")).to_csv(tmp / name, index=False)
        (tmp / "prediction.json").write_text(json.dumps(summary, indent=2))
    return out / name


@dataclasses.dataclass(frozen=True)
class PredictResult:
    out: Path
    file: Path
    ranking: pd.DataFrame
    summary: dict[str, Any]


def job_inputs(job: PredictJob) -> list[Input]:
    """What a prediction reads: the run and the dataset (its graphs included)."""
    return [Input(job.run.path, "the run"), Input(job.ds.path, "the dataset")]


def run_prediction(job: PredictJob, out: str | Path, fmt: Format = "parquet", device: torch.device | None = None, *,
                   overwrite: bool = False, read: Sequence[Input] = ()) -> PredictResult:
    """Score the job's day and write the ranking to `out` (checked before the panel is read; never one of the
    job's inputs or `read`)."""
    if fmt not in FORMATS:
        raise PredictError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    read = [*job_inputs(job), *read]
    out = check_output_dir(out, KIND, overwrite=overwrite, read=read)
    run, ds = job.run, job.ds
    with claimed(out):
        codes, scores, left_out = score(job, device or run.device(ds.backend))
        frame = ranking(job.date, codes, scores)
        valid = run.fold["valid"]
        summary = {
            "date": job.date, "model": run.model, "run": str(run.path.resolve()), "dataset": str(ds.path.resolve()),
            "dataset_hash": dataset_digest(ds.path),
            "graphs_hash": graphs_digest(graph_dir(ds.path)) if run.reads_graphs else None,
            "run_dataset_hash": run.recorded.get("dataset_hash"), "label": run.recorded.get("label"),
            "fold": {"index": job.fold.index, "test_year": job.fold.test_year,
                     "train": f"{run.fold['train']['from']} .. {run.fold['train']['to']}",
                     "valid": f"{valid['from']} .. {valid['to']}"},
            "out_of_sample": bool(np.datetime64(job.date, "D") > np.datetime64(valid["to"], "D")),
            "codes": len(frame), "left_out_short_history": left_out, "format": fmt,
            "file": file_name(job.date, fmt), "gpuetl": __version__,
        }
        file = write_ranking(frame, out, fmt, summary, overwrite=overwrite, read=read)
    return PredictResult(out, file, frame, summary)


def predict_day(backend: Backend, run: str | Path, dataset: str | Path, out: str | Path, date: str | None = None,
                fmt: Format = "parquet", *, overwrite: bool = False, read: Sequence[Input] = (),
                device: torch.device | None = None) -> PredictResult:
    """`gpuetl predict` as one call: score `date` (default: the latest day) of `dataset` with the finished run at
    `run` and write the ranking to `out`."""
    job = plan_prediction(run, Dataset(dataset, backend), date)
    return run_prediction(job, out, fmt, device, overwrite=overwrite, read=read)
