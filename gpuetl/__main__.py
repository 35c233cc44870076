"""`python -m gpuetl` is the `gpuetl` command."""

from gpuetl.commands import entry

entry()
