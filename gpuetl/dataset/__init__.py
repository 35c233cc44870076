"""The dataset build: raw lake -> (Code, Date) panel -> features, targets, normalisation -> Parquet."""
