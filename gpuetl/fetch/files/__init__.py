"""Import files a user already holds (bulk CSV downloads, the official client's DataFrames saved to CSV or Parquet,
the J-Quants CLI's files, a Kaggle JPX export) into the raw lake, unit for unit as a fetch writes it: `read` finds
and reads the files, `columns` maps their names to the lake's fields, `rows` types the values and counts what it
could not take as it is, `combine` checks duplicates, `calendar` gives the trading days (derived from the daily
bars where the lake has none), `plan` forms the units with the fetch's own planner, `run` writes them and
`report` summarises; `provenance` is the lake's note of what was imported and derived. `gpuetl import` is its
command."""

IMPORTABLE = ("calendar", "bars_daily", "topix", "master", "fins_summary")
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
