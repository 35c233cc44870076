"""`python -m gpuetl` is the `gpuetl` command."""

from gpuetl.cli import entry

entry()
