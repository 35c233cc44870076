"""`gpuetl demo-server`: the fake J-Quants API over a synthetic market, for demos and manual client runs.

Flags override the `demo:` settings (configs/gpuetl.yaml). Where to reach it goes to stdout (JSON with
--json), the rest to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any

from gpuetl.config import DemoSettings, Settings, check_date, check_span, coerce
from gpuetl.fake.options import FakeOptions, parse_faults
from gpuetl.jquants import spec


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo-server", parents=[common],
                       help="serve the fake J-Quants API (V2 and V1) over a synthetic market")
    p.add_argument("--host", help="interface to bind (demo.host)")
    p.add_argument("--port", type=int, help="port, 0 for any free one (demo.port)")
    p.add_argument("--api-key", help="the V2 x-api-key to accept (demo.api_key)")
    p.add_argument("--codes", type=int, help="number of listed issues (demo.codes)")
    p.add_argument("--start", help="first market date, YYYY-MM-DD (demo.start)")
    p.add_argument("--end", help="last market date, YYYY-MM-DD (demo.end)")
    p.add_argument("--seed", type=int, help="market and fault seed (demo.seed)")
    p.add_argument("--plan", choices=spec.PLANS, help="subscription plan to emulate (demo.plan)")
    p.add_argument("--page-size", type=int, help="rows per page (demo.page_size)")
    p.add_argument("--faults", metavar="error=R,slow=R,slow_s=S,drop=R",
                   help="inject faults, e.g. error=0.1,slow=0.05,drop=0.02 (demo.faults)")
    p.add_argument("--no-extra-keys", dest="extra_keys", action="store_false",
                   help="omit the keys the real API sends beyond the canonical schema (ExRT, MktCap in daily bars)")
    p.add_argument("--json", action="store_true", help="print where to reach the server as one JSON line")
    p.set_defaults(run=run)


def demo_settings(args: argparse.Namespace, demo: DemoSettings) -> DemoSettings:
    """The `demo:` settings with the command-line flags applied, each checked against its setting's type and bounds
    (a ConfigError naming the flag: `--port: must be in [0, 65535], got 70000`)."""
    names = ("host", "port", "api_key", "codes", "start", "end", "seed", "plan", "page_size")
    hints = typing.get_type_hints(DemoSettings, include_extras=True)
    changes: dict[str, Any] = {n: coerce(hints[n], getattr(args, n), _flag(n))
                               for n in names if getattr(args, n, None) is not None}
    if args.faults:
        changes["faults"] = dataclasses.replace(demo.faults, **parse_faults(args.faults))  # checks the rates
    out = dataclasses.replace(demo, **changes)
    start, end = (_flag(n) if n in changes else f"demo.{n}" for n in ("start", "end"))
    check_date(out.start, start)
    check_date(out.end, end)
    check_span(out.start, out.end, start, end)
    return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl.fake.server import serve
    from gpuetl.synth import MarketConfig, build_market

    try:
        demo = demo_settings(args, settings.demo)
        options = FakeOptions.from_demo(demo, extra_keys=args.extra_keys)
        config = MarketConfig(codes=demo.codes, start=demo.start, end=demo.end, seed=demo.seed)
    except ValueError as err:  # ConfigError too
        print(f"gpuetl demo-server: {err}", file=sys.stderr)
        return 2
    print(f"gpuetl demo-server: building the synthetic market: {demo.codes} codes, {demo.start} .. {demo.end}, "
          f"seed {demo.seed}", file=sys.stderr, flush=True)
    serve(demo, build_market(config), options, as_json=args.json)
    return 0
