"""A run's params, training curves and metrics in the tools people compare runs with: TensorBoard event files in
the run folder (`tracking.tensorboard`), and MLflow when `tracking.mlflow_uri` is set (a folder: a local store,
SQLite and artifact files; a URL: a tracking server). The run folder's own files stay the record; these are
copies for browsing.

Logged: the resolved config as params (dotted keys; with the dataset, its hash, the label and the device), per
member (fold, seed) its curve per epoch or validation check (`fold<k>/seed<s>/train_loss`, `.../valid_rank_ic`),
each fold's test metrics, the overall, per-seed and per-rule metrics; MLflow also gets report.md, metrics.json,
config.json, splits.json and charts/ as artifacts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gpuetl.train.config import TrackingSettings
from gpuetl.train.learner import FitLog

ARTIFACTS = ("report.md", "metrics.json", "config.json", "splits.json")
RUN_PARAMS = ("dataset", "dataset_hash", "graphs_hash", "gpuetl", "label", "heads", "left_out", "device", "backend")
SCALARS = ("rank_ic", "rank_ic_t", "ic", "hit_rate", "jpx_score", "long_short_cum")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) pairs of a nested config dict; lists as JSON text."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, name + ".")
        else:
            yield name, json.dumps(value) if isinstance(value, list | tuple) else value


def mlflow_store(uri: str) -> tuple[str, str | None]:
    """(tracking URI, artifact location of a new experiment) for MLflow: a URL or database URI as it is (the
    server's artifact store); a folder (relative to the working directory) as a local store in it: the runs in
    <folder>/mlflow.db (SQLite: MLflow no longer develops its plain-file store) and the artifacts in
    <folder>/artifacts. `mlflow ui --backend-store-uri sqlite:///<folder>/mlflow.db` browses it."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", uri) and not re.match(r"^[A-Za-z]:[\\/]", uri):
        return uri, None
    folder = Path(uri).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


class Tracker:
    """One run's writers; `close` (or the context manager) flushes them."""

    def __init__(self, settings: TrackingSettings, out: Path, name: str, config: Mapping[str, Any]) -> None:
        self.writer: Any = None
        self.client: Any = None
        self.run_id: str | None = None
        params = dict(flatten(config.get("config", {})))  # the training config, under its own dotted keys
        params.update({k: config[k] for k in RUN_PARAMS if k in config})
        params["inputs"] = len(config.get("inputs", []))
        if settings.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```")
        if settings.mlflow_uri:
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient

            uri, artifacts = mlflow_store(settings.mlflow_uri)
            self.client = MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(settings.experiment)
            exp_id = exp.experiment_id if exp is not None else \
                self.client.create_experiment(settings.experiment, artifact_location=artifacts)
            run = self.client.create_run(exp_id, run_name=name, tags={"gpuetl.run": str(out.name), "model": name})
            self.run_id = run.info.run_id
            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):  # MLflow's batch limit
                self.client.log_batch(self.run_id, params=items[i: i + 100])

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(failed=exc[0] is not None)

    def member(self, fold: int, seed: int, log: FitLog) -> None:
        """A member's curve: per epoch (GAT) or per validation check (XGBoost, the step is the tree count)."""
        for entry in log.history:
            step = int(entry.get("epoch", entry.get("trees", 0)))
            for key in ("train_loss", "valid_rank_ic"):
                if key in entry and entry[key] is not None:
                    self._scalar(f"fold{fold}/seed{seed}/{key}", float(entry[key]), step)

    def fold(self, fold: int, summary: Mapping[str, float]) -> None:
        for key in SCALARS:
            self._scalar(f"test/{key}", summary.get(key), fold)

    def finish(self, out: Path, metrics: Mapping[str, Any]) -> None:
        """The overall, per-seed and per-rule metrics; the run's files as MLflow artifacts."""
        for key in SCALARS:
            self._scalar(f"overall/{key}", metrics["overall"].get(key), 0)
        for member in metrics.get("seeds", {}).get("each", []):
            self._scalar("seed/rank_ic", member.get("rank_ic"), int(member["seed"]))
        for rule, values in metrics.get("rules", {}).items():
            self._scalar(f"rules/{rule}/rank_ic", values.get("rank_ic"), 0)
        if self.client is not None and self.run_id is not None:
            for name in ARTIFACTS:
                if (out / name).is_file():
                    self.client.log_artifact(self.run_id, str(out / name))
            if (out / "charts").is_dir():
                self.client.log_artifacts(self.run_id, str(out / "charts"), "charts")

    def _scalar(self, key: str, value: Any, step: int) -> None:
        if value is None or value != value:  # None or NaN: nothing to plot
            return
        if self.writer is not None:
            self.writer.add_scalar(key, float(value), step)
        if self.client is not None and self.run_id is not None:
            self.client.log_metric(self.run_id, key, float(value), step=step)

    def close(self, failed: bool = False) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")
            self.run_id = None
