"""gpuetl's daily job on Dagster (the optional `orchestrate` extra): lake -> dataset -> graphs -> predictions as
day-partitioned assets that call the commands' library functions, and a schedule after the Tokyo close.

    dagster dev -m gpuetl.orchestrate        (or `make dagster`)
"""

from gpuetl.orchestrate.assets import daily_assets
from gpuetl.orchestrate.definitions import defs, make_definitions
from gpuetl.orchestrate.resources import GpuetlResource

__all__ = ["GpuetlResource", "daily_assets", "defs", "make_definitions"]
