"""A faithful fake J-Quants API (V2 and V1) over a synthetic market, on a real aiohttp server.

It reproduces what J-Quants documents of the real service (its V2 spec and V1/V2 field tables, as data in
gpuetl/jquants/data/, and the notes in gpuetl/jquants/spec.py): auth (x-api-key; V1 tokens),
envelopes and field names per version, per-endpoint value encodings, parameter rules and their 400s,
plan gating and history windows, opaque query-bound pagination, the per-plan rate limit with its block,
gzip, and seeded faults (5xx, slow answers, dropped connections, 413) for client tests.
"""

from gpuetl.fake.app import build_app
from gpuetl.fake.market import Market
from gpuetl.fake.options import FakeOptions, Faults
from gpuetl.fake.request_log import LoggedRequest, RequestLog
from gpuetl.fake.server import FakeServer, serve

__all__ = ["FakeOptions", "FakeServer", "Faults", "LoggedRequest", "Market", "RequestLog", "build_app", "serve"]
