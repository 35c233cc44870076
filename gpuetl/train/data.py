"""What a training run learns from: the dataset's inputs, context and labels as one panel on the device, and
per fold the day lists and the context standardised on that fold's training days."""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np
import torch

from gpuetl.backend import Backend
from gpuetl.config import ConfigError
from gpuetl.dataset.registry import REGISTRY
from gpuetl.tensors import DailyGraphs, Dataset, DatasetError, DaySampler, PanelTensors
from gpuetl.tensors.sampler import eligible_rows
from gpuetl.train.config import DataSettings, InputSettings, LeadLagRelation, ModelSettings, SectorRelation
from gpuetl.train.leadlag import lead_lag_edges
from gpuetl.train.loss import masked_zscore
from gpuetl.train.splits import Fold, Period

_HORIZON = re.compile(r"^(target_[a-z_]+)_(\d+)d$")


def resolve_label(ds: Dataset, cfg: DataSettings) -> tuple[str, tuple[str, ...]]:
    """The evaluated label and the head targets (the label's family at each horizon). A label or horizon the dataset
    lacks is a ConfigError (exit 2): the config asks for it, from the dataset's metadata, before any data is read."""
    label = ds.default_label if cfg.label == "default" else cfg.label
    match = _HORIZON.match(label)
    if label not in ds.targets or match is None:
        raise ConfigError(f"data.label: {label!r} is not a target of {ds.path}; choose one of "
                          f"{', '.join(ds.targets)} (or default: {ds.default_label})", "data.label")
    family, k = match.group(1), int(match.group(2))
    if k not in cfg.horizons:
        raise ConfigError(f"data.horizons: {list(cfg.horizons)} lacks the horizon {k} of data.label {label}; add it",
                          "data.horizons", "data.label")
    heads = tuple(f"{family}_{h}d" for h in cfg.horizons)
    missing = [h for h in heads if h not in ds.targets]
    if missing:
        raise ConfigError(f"data.horizons: {ds.path} has no target(s) {', '.join(missing)} for horizons "
                          f"{list(cfg.horizons)}; use the dataset's target horizons", "data.horizons")
    return label, heads


def select_inputs(ds: Dataset, cfg: InputSettings) -> tuple[list[str], list[str]]:
    """(per-code input columns, day-constant context columns). A feature with no value in any row (the lake lacks
    its data: `Dataset.empty_features`) is no input: its z-score would be 0 and its flag 1 everywhere."""
    features, context = _chosen(ds, cfg)
    empty = set(ds.empty_features)
    kept = [f for f in features if f not in empty]
    inputs = [f + ds.suffix for f in kept]
    if cfg.missing_flags:
        inputs += [f + "_missing" for f in kept]
    if cfg.graph_features:
        if not ds.graph_features:
            raise DatasetError(f"data.inputs.graph_features: no graphs at {ds.path}/graphs (run `gpuetl graph`)")
        inputs += ds.graph_features
    return inputs, context


def empty_inputs(ds: Dataset, cfg: InputSettings) -> list[str]:
    """The per-code features the config chooses that `select_inputs` leaves out for having no value."""
    empty = set(ds.empty_features)
    return [f for f in _chosen(ds, cfg)[0] if f in empty]


def _chosen(ds: Dataset, cfg: InputSettings) -> tuple[list[str], list[str]]:
    """(the per-code features of the chosen groups, their day-constant context columns)."""
    groups = ds.feature_groups
    unknown = [g for g in cfg.groups if g not in groups]
    if unknown:
        raise DatasetError(f"data.inputs.groups: {ds.path} has no feature group(s) {', '.join(unknown)} "
                           f"(it has {', '.join(groups)})")
    features = [f for g in (cfg.groups or groups) for f in groups[g]]
    context = [f for f in features if f.startswith(cfg.context_prefixes)]
    return [f for f in features if f not in context and not f.startswith(cfg.exclude_prefixes)], context


@dataclasses.dataclass(frozen=True)
class TrainData:
    """One panel (inputs | context | head targets) on `device`, and what indexes it."""

    backend: Backend  # whose array module hands tensors to libraries that take arrays (XGBoost)
    panel: PanelTensors
    inputs: tuple[str, ...]
    context_columns: tuple[str, ...]
    heads: tuple[str, ...]
    label: str
    graphs: DailyGraphs | None
    eligible: torch.Tensor  # (D, N) bool: codes that count (a row, and min_history rows so far)
    label_counts: np.ndarray  # (D,) host: codes that count and have the label, per day
    lead_lag: LeadLagRelation | None = None  # estimated per fold (FoldData.graphs)
    sector: SectorRelation | None = None  # the sector relation, when the dataset has its columns
    notes: tuple[str, ...] = ()  # what was left out for want of data, one line each

    @property
    def device(self) -> torch.device:
        return self.panel.values.device

    @property
    def x(self) -> torch.Tensor:
        """(D, N, F) per-code inputs: a view of the panel."""
        return self.panel.values[:, :, : len(self.inputs)]

    @functools.cached_property
    def context(self) -> torch.Tensor:
        """(D, C) raw context: the day's mean over its codes (the columns are day-constant); computed once."""
        raw = self.panel.values[:, :, len(self.inputs): len(self.inputs) + len(self.context_columns)]
        return torch.nanmean(raw, dim=1) if raw.shape[-1] else raw.new_zeros((raw.shape[0], 0))

    @property
    def edge_dim(self) -> int:
        """Edge attributes of a batch: one per relation (the lead-lag one included) and the self-loop flag."""
        return (self.graphs.edge_dim if self.graphs is not None else 1) + (self.lead_lag is not None)

    @property
    def label_index(self) -> int:
        return self.heads.index(self.label)

    @property
    def y(self) -> torch.Tensor:
        """(D, N) the evaluated label."""
        return self.panel.targets[:, :, self.label_index]

    def rows(self, days: list[int], head: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(len(days), N) label (or the target of `head`) and mask of the codes that count, stacked from per-day
        views (no index copy)."""
        y = self.y if head is None else self.panel.targets[:, :, self.heads.index(head)]
        return torch.stack([y[t] for t in days]), torch.stack([self.eligible[t] for t in days])

    def days(self, period: Period, min_codes: int = 2) -> list[int]:
        """Days of `period` with at least `min_codes` codes that count and have the label."""
        return [t for t in period.days if self.label_counts[t] >= min_codes]

    def fold(self, fold: Fold) -> FoldData:
        ctx = self.context
        train = ctx[fold.train.first: fold.train.last + 1]
        mean, std = torch.nanmean(train, dim=0), _nanstd(train)
        z = torch.nan_to_num((ctx - mean) / torch.where(std > 0, std, torch.ones_like(std)), nan=0.0)
        return FoldData(self, fold, z)


@dataclasses.dataclass(frozen=True)
class FoldData:
    """A fold's view of the training data: its periods, and the context standardised on its training days."""

    data: TrainData
    fold: Fold
    context: torch.Tensor  # (D, C)

    @functools.cached_property
    def graphs(self) -> DailyGraphs | None:
        """The daily graphs, plus the lead-lag relation estimated on this fold's training days when configured."""
        d, rel = self.data, self.data.lead_lag
        if rel is None:
            return d.graphs
        train = slice(self.fold.train.first, self.fold.train.last + 1)
        group = d.panel.column(rel.within)[train] if rel.within else None
        src, dst, strength = lead_lag_edges(d.panel.column(rel.column)[train], group, rel.peers, rel.min_days)
        assert d.graphs is not None  # load_train_data gives a lead-lag relation graphs (empty ones at least)
        return d.graphs.with_fixed(src, dst, strength, "lead_lag")

    def sampler(self, window: int, graph: bool = True) -> DaySampler:
        d = self.data
        return DaySampler(d.x, d.eligible, d.panel.targets, window, self.context, self.graphs, graph)


def relations(ds: Dataset, model: ModelSettings | None) -> tuple[SectorRelation | None, LeadLagRelation | None,
                                                                 list[str]]:
    """The sector and lead-lag relations `model` asks for, as far as the dataset has the data, and a line for each
    part left out: without sector codes there is no sector relation, and the lead-lag leaders are sought among all
    codes instead of within the sector; without returns, no lead-lag relation. A column the dataset lacks for want
    of data is one without a value in any row, or one of an enrichment that did not run (a lake without a master
    has no `lst_*` columns); any other unknown column is a DatasetError (a name the dataset does not make)."""
    if model is None:
        return None, None, []
    sector, lead_lag, notes = model.sector, model.lead_lag, []
    if sector is not None:
        lacking = [w for c in (sector.column, sector.size) if (w := _lacks(ds, c, "sector"))]
        if lacking:
            notes.append(f"no sector relation: {'; '.join(lacking)}")
            sector = None
    if lead_lag is not None and (why := _lacks(ds, lead_lag.column, "lead-lag")):
        notes.append(f"no lead-lag relation: {why}")
        lead_lag = None
    if lead_lag is not None and lead_lag.within and (why := _lacks(ds, lead_lag.within, "lead-lag")):
        notes.append(f"lead-lag leaders sought among all codes: {why}")
        lead_lag = dataclasses.replace(lead_lag, within=None)
    return sector, lead_lag, notes


def _lacks(ds: Dataset, column: str, relation: str) -> str | None:
    """Why the dataset lacks the data of `column` (None when it has it); DatasetError for a column it cannot have."""
    if column in ds.features:
        return f"{ds.path} has no values of {column}" if column in ds.empty_features else None
    status = ds.metadata.get("enrich", {})
    for name, op in REGISTRY.of("enrich").items():
        if column in op.outputs({}) and status.get(name, "off") != "on":
            return f"{ds.path} has no {column} (its {name} enrichment is {status.get(name, 'off')})"
    raise DatasetError(f"{ds.path} has no column {column} for the {relation} relation: name one of its features, "
                       f"or set model.{'sector' if relation == 'sector' else 'lead_lag'}: null to go without it")


def load_train_data(ds: Dataset, cfg: DataSettings, device: torch.device | str | None = None,
                    model: ModelSettings | None = None,
                    columns: tuple[list[str], list[str]] | None = None) -> TrainData:
    """Read the dataset's inputs, context and head targets into one panel on `device` (the backend's by default);
    for a graph model (`model`), also its daily graphs with the sector relation, and the columns each fold's
    lead-lag relation is estimated from. The graph-free ablation loads them too (the same edge attributes). What
    the dataset lacks the data for (features without a value, a relation's columns) is left out, one line each in
    `TrainData.notes` (`gpuetl train` and `baseline` print them; the run's config.json records them), and so are
    inputs with one value in every row. `columns`: (inputs, context) exactly as a run recorded them, for the
    model it fitted (`gpuetl predict`), no column left out."""
    label, heads = resolve_label(ds, cfg)
    inputs, context = select_inputs(ds, cfg.inputs) if columns is None else (list(columns[0]), list(columns[1]))
    notes = []
    empty = empty_inputs(ds, cfg.inputs)
    if empty:
        notes.append(f"{len(empty)} feature(s) without a value in {ds.path} are no inputs: {', '.join(empty)}")
    sector, lead_lag, relation_notes = relations(ds, model)
    notes += relation_notes
    relation = [sector.column, sector.size] if sector is not None else []
    if lead_lag is not None:
        relation += [c for c in (lead_lag.column, lead_lag.within) if c and c not in relation]
    panel = per_day_scaled(ds, ds.panel([*inputs, *context, *relation], device, heads), inputs)
    constant = constant_columns(panel, [*inputs, *context]) if columns is None else []
    if constant:  # no information: read the panel again without them (a copy of the rest would double the peak)
        notes.append(f"{len(constant)} input(s) with one value in every row of {ds.path} are left out: "
                     f"{', '.join(constant)}")
        inputs = [c for c in inputs if c not in constant]
        context = [c for c in context if c not in constant]
        del panel
        panel = per_day_scaled(ds, ds.panel([*inputs, *context, *relation], device, heads), inputs)
    eligible = eligible_rows(panel.present, cfg.min_history)
    counts = (eligible & torch.isfinite(panel.targets[:, :, heads.index(label)])).sum(1)
    relation_columns = (panel.column(sector.column), panel.column(sector.size), sector.peers) if sector else None
    if model is not None and ds.graphs_metadata:  # the sector relation added while the edges are read
        daily: DailyGraphs | None = ds.graphs(panel.values.device, relation_columns)
    elif lead_lag is not None:
        d, n = panel.present.shape
        daily = DailyGraphs.empty(d, n, device=panel.present.device)
        daily = daily.with_sector(*relation_columns) if relation_columns is not None else daily
    else:
        daily = None
    return TrainData(backend=ds.backend, panel=panel, inputs=tuple(inputs), context_columns=tuple(context), heads=heads,
                     label=label, graphs=daily, eligible=eligible,
                     label_counts=counts.cpu().numpy(),  # host-ok: D counts, once
                     lead_lag=lead_lag, sector=sector, notes=tuple(notes))


SCALE_DAYS = 64  # days of the panel z-scored or checked at once: a (64, N, F) block, no strided column walks


def per_day_scaled(ds: Dataset, panel: PanelTensors, inputs: list[str]) -> PanelTensors:
    """The panel with its unscaled per-code inputs as per-day z-scores over the day's codes, in place: the graph
    features, and the `<feature>_z` columns the dataset keeps raw (metadata `normalization.by_feature`: "raw":
    flags, counts, ranks, category codes such as lst_s33 = 9050). A network fed 9050 beside z-scores spends its
    first epochs on the scale; trees do not care, and a day's z-score needs no other day (no look-ahead).
    SCALE_DAYS days at a time, every such column together (each (day, column) row reduced as before)."""
    kinds = ds.metadata.get("normalization", {}).get("by_feature", {})
    raw = {f + ds.suffix for f, kind in kinds.items() if kind == "raw"}
    scaled = [j for j, name in enumerate(inputs) if name in raw or name in ds.graph_features]
    if not scaled:
        return panel
    index = torch.tensor(scaled, device=panel.values.device)
    for t0 in range(0, panel.values.shape[0], SCALE_DAYS):
        days = slice(t0, t0 + SCALE_DAYS)
        block = panel.values[days].index_select(2, index)  # (T, N, K)
        x = block.permute(0, 2, 1).contiguous().double()  # (T, K, N) float64: a code of 9050 beside a spread of 1
        ok = panel.present[days].unsqueeze(1) & torch.isfinite(x)  # cancels in float32
        z = torch.where(ok, masked_zscore(x, ok), torch.zeros_like(x))
        panel.values[days].index_copy_(2, index, z.permute(0, 2, 1).float())
    return panel


def constant_columns(panel: PanelTensors, columns: list[str]) -> list[str]:
    """The columns with one value (or none) over the panel's rows: an input that cannot tell codes or days apart
    (after `per_day_scaled`: a per-code input the same for every code on each day is one).
    Running minima and maxima over SCALE_DAYS days of every column at a time, one host read of the flags."""
    if not columns:
        return []
    index = torch.tensor([panel.columns.index(c) for c in columns], device=panel.values.device)
    lo = panel.values.new_full((len(columns),), float("inf"))
    hi = panel.values.new_full((len(columns),), float("-inf"))
    for t0 in range(0, panel.values.shape[0], SCALE_DAYS):
        days = slice(t0, t0 + SCALE_DAYS)
        block = panel.values[days].index_select(2, index)  # (T, N, K)
        ok = panel.present[days].unsqueeze(-1) & torch.isfinite(block)
        lo = torch.minimum(lo, torch.where(ok, block, float("inf")).amin((0, 1)))
        hi = torch.maximum(hi, torch.where(ok, block, float("-inf")).amax((0, 1)))
    constant = (~(hi > lo)).cpu().numpy()  # host-ok: one flag per column, once per run
    return [c for c, flat in zip(columns, constant, strict=True) if flat]


def _nanstd(x: torch.Tensor) -> torch.Tensor:
    mean = torch.nanmean(x, dim=0, keepdim=True)
    return torch.nanmean((x - mean) ** 2, dim=0).sqrt()
