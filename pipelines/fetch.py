"""Fetch J-Quants data into the raw lake: `python pipelines/fetch.py --start 2016-01-01 --end 2025-12-31`.

The same as `gpuetl fetch` (same flags); the pipeline itself lives in gpuetl.pipelines.fetch.
"""

import sys

from gpuetl.commands import entry

if __name__ == "__main__":
    entry(["fetch", *sys.argv[1:]])
