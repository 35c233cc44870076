"""`gpuetl tune`: Optuna over a declared search space (gpuetl/train/tune_config.py), scored on validation days only.

Which days. The walk-forward plan of the training config (gpuetl/train/splits.py) fixes the test years. A later
fold trains and validates on an earlier fold's test year, so tuning on all the plan's folds would choose the
settings on test days. The tuning folds are therefore the plan's first fold and the same fold made for the
years before it (`splits.test_years` folds in all, as far as the data allow: the fold for year Y trains on the
days up to its validation period, the `splits.valid_days` days before Y less the gap); their test periods are not
used, and every day they read ends, with its label's reach and the embargo, before the first test day. Each
trial fits the learner on a tuning fold's training days (epochs or trees chosen on its validation days, as
`gpuetl train` does) and scores those validation days; the objective is the mean daily RankIC over the pooled
validation days of all tuning folds (day-weighted). No test day of the plan is fitted, predicted or scored
(`check_tuning_folds`; tests/test_tune.py records every day read).

The output folder (kind `tune`, gpuetl/lake/outputs.py) holds

    <out>/study.db     the Optuna study (SQLite; `--storage URL` puts it elsewhere): a rerun continues it
    <out>/best.yaml    the training config with the best trial's values (`gpuetl train --config <out>/best.yaml`)
    <out>/trials.csv   every trial: its values, state, objective, per-fold validation RankIC, seconds
    <out>/tune.json    the summary the command prints

It is written beside `out` and swapped in when the requested trials are done; a run that stops keeps its folder
and the next run of the command continues it (the trials already finished are not run again).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import yaml

from gpuetl.config import ConfigError, to_dict
from gpuetl.lake.outputs import Input, marker, output_kind, partial_dir, replaced_dir
from gpuetl.tensors import Dataset
from gpuetl.train.config import GatConfig, XgbConfig
from gpuetl.train.data import TrainData, load_train_data
from gpuetl.train.learner import Learner, TrainError
from gpuetl.train.loop import GATLearner
from gpuetl.train.metrics import daily_rank_ic
from gpuetl.train.splits import SplitError, Splits, check_splits, make_splits
from gpuetl.train.tune_config import SearchParam, TuneConfig, load_train, value_text
from gpuetl.train.walkforward import finite_json, plan_folds, run_inputs
from gpuetl.train.xgb import XGBLearner

KIND = "tune"
_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class TuneError(TrainError):
    """A study that cannot go on as asked (made from another config, dataset or space; no tuning fold)."""


class SampledConfigError(ValueError):
    """A combination of sampled values the training config's cross-field rules reject: that trial fails, the
    study goes on."""


# ----------------------------------------------------------------------------- the days a trial reads


def tuning_plan(dates: np.ndarray, cfg: GatConfig | XgbConfig, plan: Splits) -> Splits:
    """The folds a trial is scored on: those of the same walk-forward plan (`splits.*`) for the last
    `splits.test_years` calendar years up to the plan's first test year, whose training and validation days all
    end before that first test day, less the gap (the plan's own first fold is the latest of them). Their test
    periods are not used. TuneError when none fits."""
    first = plan.folds[0]
    every = make_splits(dates, dataclasses.replace(cfg.splits, test_years=len(dates)), plan.reach)
    chosen = [f for f in every.folds if f.test_year <= first.test_year][-cfg.splits.test_years:]
    if not chosen:
        raise TuneError(f"no tuning fold fits before the first test year {first.test_year}: "
                        f"{'; '.join(every.skipped)}")
    folds = tuple(dataclasses.replace(f, index=i) for i, f in enumerate(chosen))
    tuning = Splits(plan.reach, plan.embargo, folds, ())
    check_splits(tuning, dates, max(cfg.data.horizons))
    check_tuning_folds(tuning, plan)
    return tuning


def check_tuning_folds(tuning: Splits, plan: Splits) -> None:
    """SplitError unless every training and validation day of the tuning folds, with its label's reach and the
    embargo, ends before the first test day of `plan`."""
    first_test = min(f.test.first for f in plan.folds)
    for f in tuning.folds:
        for name, p in (("train", f.train), ("valid", f.valid)):
            if p.last + plan.reach + plan.embargo >= first_test:
                raise SplitError(f"tuning fold {f.index}: {name} day {p.last} (+ reach {plan.reach} + embargo "
                                 f"{plan.embargo}) reaches the first test day {first_test}")


# ----------------------------------------------------------------------------- one trial


def suggest(trial: optuna.Trial, p: SearchParam) -> str:
    """The trial's value of `p`, as override text. Categories are offered to Optuna as their text, so a list
    (feature groups) is one choice."""
    if p.type == "categorical":
        return str(trial.suggest_categorical(p.key, [value_text(c) for c in p.choices]))
    assert p.low is not None and p.high is not None  # check_tune
    if p.type == "int":
        return str(trial.suggest_int(p.key, int(p.low), int(p.high), log=p.log))
    return value_text(float(trial.suggest_float(p.key, float(p.low), float(p.high), log=p.log)))


def first_seed(cfg: GatConfig | XgbConfig) -> int:
    """The run's seed (the first of `run.seeds`: a trial fits one model per fold, not the ensemble)."""
    return cfg.run.seeds[0]


def make_learner(cfg: GatConfig | XgbConfig, data: TrainData, seed: int) -> Learner:
    return GATLearner(cfg, data, seed) if isinstance(cfg, GatConfig) else XGBLearner(cfg, seed)


class Objective:
    """Optuna's objective: one trial = the training config with the sampled values, fitted and scored on every
    tuning fold's validation days; the running pooled value is reported after each fold (for the pruner)."""

    def __init__(self, tcfg: TuneConfig, base: list[str], ds: Dataset, device: torch.device, folds: Splits,
                 data: TrainData, data_key: str) -> None:
        self.tcfg, self.base, self.ds, self.device, self.folds = tcfg, base, ds, device, folds
        self._data: tuple[str, TrainData] = (data_key, data)

    def data_for(self, cfg: GatConfig | XgbConfig) -> TrainData:
        """The panel of a trial's inputs: reloaded only when the sampled values change what is read (the last
        one is kept, so a space without data keys loads the dataset once)."""
        key = data_key(cfg)
        if key != self._data[0]:
            self._data = (key, load_train_data(self.ds, cfg.data, self.device, _model(cfg)))
        return self._data[1]

    def __call__(self, trial: optuna.Trial) -> float:
        overrides = [f"{p.key}={suggest(trial, p)}" for p in self.tcfg.space]
        trial.set_user_attr("overrides", overrides)
        try:
            cfg = load_train(self.tcfg, [*self.base, *overrides], flag="space")
        except ConfigError as err:
            trial.set_user_attr("error", str(err))
            raise SampledConfigError(str(err)) from None
        data = self.data_for(cfg)
        daily: list[np.ndarray] = []
        per_fold: list[float] = []
        chosen: list[int] = []
        for step, fold in enumerate(self.folds.folds):
            valid = data.days(fold.valid)
            fd = data.fold(fold)
            model = make_learner(cfg, data, first_seed(cfg) + fold.index)
            with tempfile.TemporaryDirectory(prefix="gpuetl-tune-") as tmp:  # a trial's checkpoints: not kept
                log = model.fit(fd, Path(tmp) / f"fold{fold.index}.{model.checkpoint_suffix}", False, None)
            label, mask = data.rows(valid)
            scores = daily_rank_ic(model.predict(fd, valid), label, mask)
            daily.append(scores.double().cpu().numpy())  # host-ok: the fold's daily validation RankIC, once a fold
            per_fold.append(_mean(daily[-1]))
            chosen.append(log.best)
            value = _mean(np.concatenate(daily))
            trial.set_user_attr("folds", per_fold)
            trial.set_user_attr("chosen", chosen)
            trial.set_user_attr("valid_days", int(sum(np.isfinite(d).sum() for d in daily)))
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"fold {fold.index}: pooled validation RankIC {value:+.4f}")
        return value


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.nan


def _model(cfg: GatConfig | XgbConfig) -> Any:
    return cfg.model if isinstance(cfg, GatConfig) else None


def data_key(cfg: GatConfig | XgbConfig) -> str:
    """What `load_train_data` reads for a config: its data section and, for the GAT, its relations."""
    model = _model(cfg)
    relations = [to_dict(model.sector), to_dict(model.lead_lag)] if model is not None else None
    return json.dumps([to_dict(cfg.data), relations], sort_keys=True)


# ----------------------------------------------------------------------------- the study


def made_from(tcfg: TuneConfig, cfg: GatConfig | XgbConfig, ds: Dataset, folds: Splits) -> dict[str, Any]:
    """What a study's trials are comparable under: the training config (where it runs aside), the dataset and
    its graphs, the space, the objective and the tuning folds. A rerun must match it."""
    inputs = run_inputs(cfg, ds)
    config = inputs["config"]
    config.pop("tracking", None)
    for key in ("device", "threads", "out", "progress"):
        config["run"].pop(key, None)
    found = {"config": config, "dataset_hash": inputs["dataset_hash"], "graphs_hash": inputs["graphs_hash"],
             "space": to_dict(tcfg.space), "objective": tcfg.objective, "learner": tcfg.learner,
             "folds": folds.to_json(ds.dates)["folds"]}
    return dict(json.loads(json.dumps(found)))


def check_study(study: optuna.Study, now: dict[str, Any], storage: str) -> None:
    """TuneError when the study was made from another config, dataset, space or folds; a new study records it."""
    before = study.user_attrs.get("made_from")
    if before is None:
        study.set_user_attr("made_from", now)
        return
    changed = sorted(k for k in now if before.get(k) != now[k])
    if changed:
        what = {"dataset_hash": "dataset (rebuilt since)", "graphs_hash": "graphs (rebuilt since)"}
        raise TuneError(f"the study {study.study_name} in {storage} was made from another "
                        f"{', '.join(what.get(k, k) for k in changed)}: pass --overwrite to start afresh (default "
                        "storage), or choose another --out or --storage")


@dataclasses.dataclass
class Progress:
    """One line per finished trial: its value, the best so far, the time spent and an estimate of what is left."""

    todo: int
    say: Callable[[str], None] | None
    start: float = dataclasses.field(default_factory=time.perf_counter)
    done: int = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.done += 1
        if self.say is None:
            return
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.done * (self.todo - self.done)
        value = f"{trial.value:+.4f}" if trial.value is not None else trial.user_attrs.get("error", "-")[:80]
        if trial.state == optuna.trial.TrialState.PRUNED:
            value = f"pruned after {len(trial.intermediate_values)} fold(s) at " \
                    f"{trial.intermediate_values[max(trial.intermediate_values)]:+.4f}"
        best = _best(study)
        shown = f"best {best.value:+.4f} (trial {best.number})" if best is not None and best.value is not None \
            else "no best yet"
        self.say(f"trial {trial.number} ({self.done}/{self.todo}) {trial.state.name.lower()}: {value}; {shown}; "
                 f"{elapsed:.0f} s, ~{left:.0f} s left")


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def tune(tcfg: TuneConfig, base: list[str], ds: Dataset, device: torch.device, out: Path, *,
         trials: int | None = None, storage: str | None = None, overwrite: bool = False,
         read: Sequence[Input] = (), say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the study at `out` (continuing the one there) up to `trials` finished trials in all (the config's
    by default); write study.db, best.yaml, trials.csv and tune.json; return the summary."""
    cfg = load_train(tcfg, base)
    data = load_train_data(ds, cfg.data, device, _model(cfg))
    plan = plan_folds(cfg, ds, data)
    folds = tuning_plan(ds.dates, cfg, plan)
    now = made_from(tcfg, cfg, ds, folds)
    target = trials if trials is not None else tcfg.trials
    resume = not overwrite and KIND in (output_kind(out), (marker(partial_dir(out)) or {}).get("kind"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shown = storage or f"sqlite:///{Path(os.path.abspath(out)) / 'study.db'}"
    before_run = _existing(tcfg.name, storage, out, resume)
    if before_run is not None:  # refused before the folder is touched
        check_study(before_run, now, shown)
    with replaced_dir(out, KIND, overwrite=overwrite, read=[Input(ds.path, "the dataset"), *read], resume=resume,
                      resumable=True) as work:
        url = storage or f"sqlite:///{work / 'study.db'}"
        pruner: optuna.pruners.BasePruner = optuna.pruners.MedianPruner(n_startup_trials=tcfg.pruner_startup_trials) \
            if tcfg.pruner == "median" else optuna.pruners.NopPruner()
        study = optuna.create_study(study_name=tcfg.name, storage=url, direction="maximize", load_if_exists=True,
                                    pruner=pruner)
        check_study(study, now, shown)
        if storage is None:  # ours alone (the folder is locked): a killed run's unfinished trials failed
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        before = len(study.get_trials(deepcopy=False, states=_FINISHED))
        # a resumed study draws afresh: the same seed would repeat the first trials' values
        study.sampler = optuna.samplers.TPESampler(seed=tcfg.seed + len(study.trials))
        todo = max(target - before, 0)
        if say is not None:
            say(f"{tcfg.name}: {before} trial(s) in {shown}, running {todo} to reach {target}; tuning folds "
                f"{_folds_text(ds, folds)}; test years {', '.join(str(f.test_year) for f in plan.folds)} never read")
        if todo:
            objective = Objective(tcfg, base, ds, device, folds, data, data_key(cfg))
            study.optimize(objective, n_trials=todo, catch=(SampledConfigError,), callbacks=[Progress(todo, say)])
        summary = _write(tcfg, base, ds, study, work, shown, folds, plan, before)
    return summary


def _existing(name: str, storage: str | None, out: Path, resume: bool) -> optuna.Study | None:
    """The study a run would continue (None when there is none yet), read where it lies now."""
    if storage is None:
        if not resume:
            return None
        found = [d / "study.db" for d in (partial_dir(out), Path(out)) if (d / "study.db").is_file()]
        if not found:
            return None
        storage = f"sqlite:///{found[0]}"
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # no study of that name there
        return None


def _folds_text(ds: Dataset, folds: Splits) -> str:
    return ", ".join(f"{f.index}: valid {ds.dates[f.valid.first]}..{ds.dates[f.valid.last]}" for f in folds.folds)


# ----------------------------------------------------------------------------- the outputs


def _write(tcfg: TuneConfig, base: list[str], ds: Dataset, study: optuna.Study, work: Path, url: str,
           folds: Splits, plan: Splits, before: int) -> dict[str, Any]:
    rows = trial_rows(study, tcfg)
    write_trials(work / "trials.csv", rows, tcfg)
    best = _best(study)
    best_path = work / "best.yaml"
    if best is not None:
        write_best(best_path, tcfg, base, ds, best, study.study_name)
    else:
        best_path.unlink(missing_ok=True)
    summary = {"study": study.study_name, "storage": url, "learner": tcfg.learner, "train_config": tcfg.train,
               "dataset": str(ds.path), "objective": tcfg.objective, "trials": rows, "ran": len(rows) - before,
               "tuning_folds": [{k: v for k, v in f.items() if k != "test"}  # their test periods: not used
                                for f in folds.to_json(ds.dates)["folds"]],
               "test_years_never_read": [f.test_year for f in plan.folds],
               "best": None if best is None else {"trial": best.number, "value": best.value, "params": best.params,
                                                  "overrides": best.user_attrs.get("overrides", [])}}
    (work / "tune.json").write_text(json.dumps(finite_json(summary), indent=2))
    return summary


def trial_rows(study: optuna.Study, tcfg: TuneConfig) -> list[dict[str, Any]]:
    out = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        out.append({"trial": t.number, "state": t.state.name.lower(), "value": t.value,
                    **{p.key: t.params.get(p.key) for p in tcfg.space},
                    "fold_valid_rank_ic": t.user_attrs.get("folds", []), "chosen": t.user_attrs.get("chosen", []),
                    "valid_days": t.user_attrs.get("valid_days"), "seconds": seconds,
                    "error": t.user_attrs.get("error", "")})
    return out


def write_trials(path: Path, rows: list[dict[str, Any]], tcfg: TuneConfig) -> None:
    columns = ["trial", "state", "value", *(p.key for p in tcfg.space), "fold_valid_rank_ic", "chosen",
               "valid_days", "seconds", "error"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ";".join(f"{v:.6g}" for v in row[k]) if isinstance(row[k], list) else row[k]
                             for k in columns})


def write_best(path: Path, tcfg: TuneConfig, base: list[str], ds: Dataset, best: optuna.trial.FrozenTrial,
               study: str) -> None:
    """The whole training config with the best trial's values (and the --config-set overrides of the study),
    run on the tuned dataset under `<name>-tuned`; loaded back with the training config's loader to check it."""
    overrides = list(best.user_attrs["overrides"])
    cfg = load_train(tcfg, [*base, *overrides])
    data = to_dict(cfg)
    data["name"] = f"{cfg.name}-tuned"
    data["data"]["dataset"] = str(ds.path)
    head = [f"# gpuetl tune: study {study}, best trial {best.number}, mean daily validation RankIC {best.value:+.5f}",
            f"# tuned from {tcfg.train}" + (f" with --config-set {' '.join(base)}" if base else ""),
            *(f"#   {o}" for o in overrides),
            f"# train it: gpuetl {'train' if tcfg.learner == 'gat' else 'baseline'} --config {path.name}", ""]
    path.write_text("\n".join(head) + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=120))
    again = load_train(dataclasses.replace(tcfg, train=str(path)))
    if to_dict(again) != data:
        raise TuneError(f"{path} does not load back as the best trial's config")


class _Dumper(yaml.SafeDumper):
    """Block mappings and flow lists, as the shipped configs are written (`horizons: [1]`)."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def table(summary: dict[str, Any], top: int = 5) -> str:
    """The best trials, one line each, best first, in aligned columns."""
    done = sorted((r for r in summary["trials"] if r["state"] == "complete" and r["value"] is not None),
                  key=lambda r: -r["value"])
    keys = [k for k in (summary["trials"][0] if summary["trials"] else {}) if "." in k]
    rows = [["trial", "valid RankIC", *keys]]
    rows += [[str(r["trial"]), f"{r['value']:+.4f}", *(_short(r[k]) for k in keys)] for r in done[:top]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    states = {s: sum(r["state"] == s for r in summary["trials"]) for s in ("complete", "pruned", "fail")}
    lines.append(f"{len(summary['trials'])} trial(s): " + ", ".join(f"{n} {s}" for s, n in states.items() if n))
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
