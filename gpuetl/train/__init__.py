"""Training on a built dataset: walk-forward splits, metrics, the loss, the GAT and its loop, the XGBoost
baseline, the run folder's report, and the `gpuetl train` / `gpuetl baseline` commands. Imports nothing heavy
here: `gpuetl train` loads torch only when it runs."""
