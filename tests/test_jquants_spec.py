"""The dataset catalogue agrees with the official spec and the V1/V2 field tables."""

from __future__ import annotations

import json

import pytest

from gpuetl.jquants import spec


def test_every_spec_field_is_catalogued_with_a_v1_name() -> None:
    raw = json.loads((spec.DATA / "endpoints.json").read_text())["endpoints"]
    by_path = {e["path"]: e for e in raw}
    for d in spec.datasets().values():
        spec_names = [f["name"] for f in by_path[d.path]["response"]["fields"]]
        assert list(d.columns[: len(spec_names)]) == spec_names
        v2_only = {f.name for f in d.fields if f.v1 is None}  # served by V2 only, beyond the 2025 spec
        assert v2_only == {"fins_summary": {"ShEq", "NCShEq", "ROE", "NCROE"}, "master": {"ProdCat"}}.get(d.name, set())


@pytest.mark.parametrize(
    ("dataset", "v1", "v2"),
    [("bars_daily", "AdjustmentClose", "AdjC"), ("fins_summary", "DisclosedDate", "DiscDate"),
     ("investor_types", "ForeignersBalance", "FrgnBal"), ("calendar", "HolidayDivision", "HolDiv"),
     ("master", "CompanyName", "CoName"), ("topix", "Close", "C"), ("fins_summary",
     "SignificantChangesInTheScopeOfConsolidation", "SigChgInC")],
)
def test_v1_names(dataset: str, v1: str, v2: str) -> None:
    assert spec.get(dataset).v1_to_v2()[v1] == v2


def test_kinds_follow_the_wire_rules() -> None:
    bars = spec.get("bars_daily")
    assert bars.field("Date").kind == "date" and bars.field("Code").kind == "code"
    assert bars.field("AdjFactor").kind == "float" and bars.field("UL").kind == "flag"
    assert {f.name for f in bars.fields if f.premium_only} == {
        f.name for f in bars.fields if f.name[0] in "MA" and not f.name.startswith("Adj")}
    summary = spec.get("fins_summary")
    assert summary.encoding == "strings"
    assert summary.field("EPS").kind == "float" and summary.field("MatChgSub").kind == "flag"
    assert spec.get("margin_alert").field("PubReason").kind == "json"
    assert spec.get("dividend").field("DistAmt").kind == "float"


def test_lookup_by_name_path_or_v1_path_and_clear_miss() -> None:
    assert spec.get("/equities/bars/daily") is spec.get("bars_daily") is spec.get("/prices/daily_quotes")
    assert spec.by_path("/fins/statements", "v1") is spec.get("fins_summary")
    with pytest.raises(KeyError, match="known: calendar, master"):
        spec.get("prices")


def test_plans_and_patterns_from_the_spec() -> None:
    assert spec.get("investor_types").plans == ("light", "standard", "premium")
    assert frozenset({"date"}) in spec.get("bars_daily").patterns
    assert spec.get("calendar").paginated is False
    assert spec.get("short_ratio").v2_to_v1_params() == {"s33": "sector33code"}
    assert spec.REQUESTS_PER_MINUTE["standard"] == 120
