"""`gpuetl bench`: the stage-by-stage benchmark of gpuetl (GPU and CPU backends) against its peers.

The same numbers are computed five ways: gpuetl on the GPU and on the CPU (`gpuetl_stages`), an idiomatic
lazy, multi-threaded Polars implementation on Polars' CPU and GPU engines (`polars_peer`), and the plain pandas
a researcher writes (`pandas_peer`: groupby-apply per code, a per-day loop for graphs). Every stage's output of
every backend is checked equal to the CPU backend's (`compare`) before its timings count (`--no-check` skips).

- `spec`: sizes, stages, the feature set and the graph settings every backend computes;
- `inputs`: the synthetic lake cached per size, and the inputs a stage starts from;
- `measure`: warm-up, repetitions, median and spread, peak host RSS and device memory, machine facts;
- `worker`: one backend's stages in a process of its own (`python -m gpuetl.bench.worker`);
- `report`: results.json, results.md, a PNG chart and the console table; the command is
  `gpuetl.commands.bench`.
"""
