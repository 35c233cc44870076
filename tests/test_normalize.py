"""Wire records in every encoding the API uses -> one canonical typed table."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pyarrow as pa
import pytest

from gpuetl.jquants import normalize, schema, spec

BARS = spec.get("bars_daily")


def test_v2_json_bars_without_premium_keys() -> None:
    rec = {"Date": "2023-03-24", "Code": "86970", "O": 2047.0, "H": 2069, "L": 2035.0, "C": 2045.0, "UL": "0",
           "LL": "1", "Vo": 2202500.0, "Va": None, "AdjFactor": 1.0, "AdjO": 2047.0, "AdjH": 2069.0,
           "AdjL": 2035.0, "AdjC": 2045.0, "AdjVo": 2202500.0}
    t = normalize.to_table(BARS, [rec])
    assert t.schema == schema.arrow_schema(BARS)
    row = t.to_pylist()[0]
    assert row["Date"] == dt.date(2023, 3, 24) and row["Code"] == "86970"
    assert row["H"] == 2069.0 and row["Va"] is None and row["UL"] is False and row["LL"] is True
    assert row["MO"] is None and row["AAdjVo"] is None  # Premium-only keys absent -> null columns


def test_v1_names_map_to_v2_and_match_a_v2_record() -> None:
    v1 = {"Date": "2023-03-24", "Code": "86970", "Open": 2047.0, "AdjustmentClose": 2045.0, "UpperLimit": "0",
          "MorningClose": 2045.5}
    v2 = {"Date": "2023-03-24", "Code": "86970", "O": 2047.0, "AdjC": 2045.0, "UL": "0", "MC": 2045.5}
    assert normalize.to_table(BARS, [v1]).equals(normalize.to_table(BARS, [v2]))


def test_strings_encoding_of_fins_summary() -> None:
    ds = spec.get("fins_summary")
    rec = {"DiscDate": "2023-01-30", "DiscTime": "12:00:00", "Code": "86970", "DiscNo": "20230127594871",
           "EPS": "66.76", "Sales": "", "FEPS": "-", "MatChgSub": "false", "ChgAcEst": "true", "RetroRst": "",
           "CurPerSt": "", "CurPerEn": "2022-12-31"}
    row = normalize.to_table(ds, [rec]).to_pylist()[0]
    assert row["EPS"] == 66.76 and row["Sales"] is None and row["FEPS"] is None
    assert row["MatChgSub"] is False and row["ChgAcEst"] is True and row["RetroRst"] is None
    assert row["CurPerSt"] is None and row["CurPerEn"] == dt.date(2022, 12, 31)
    assert row["DiscTime"] == "12:00:00" and row["DiscNo"] == "20230127594871"


def test_mixed_encoding_dividend_and_margin_alert() -> None:
    div = spec.get("dividend")
    row = normalize.to_table(div, [{"PubDate": "2014-02-24", "PubTime": "09:21", "Code": "15550",
                                    "DivRate": "-", "DistAmt": "", "PayDate": "-", "RetEarn": 12.5,
                                    "SpecDivRate": "3.25"}]).to_pylist()[0]
    assert row["DivRate"] is None and row["DistAmt"] is None and row["PayDate"] is None
    assert row["RetEarn"] == 12.5 and row["SpecDivRate"] == 3.25 and row["PubTime"] == "09:21"

    alert = spec.get("margin_alert")
    reason = {"Restricted": "0", "DailyPublication": "0", "Monitoring": "0", "RestrictedByJSF": "0",
              "PrecautionByJSF": "1", "UnclearOrSecOnAlert": "0"}
    recs = [{"PubDate": "2024-02-08", "Code": "13260", "AppDate": "2024-02-07", "PubReason": reason,
             "ShrtOutChg": "-", "ShrtOutRatio": "*", "LongOut": 676.0},
            {"PubDate": "2024-02-08", "Code": "13270", "PubReason": json.dumps(dict(reversed(reason.items())))}]
    rows = normalize.to_table(alert, recs).to_pylist()
    assert rows[0]["ShrtOutChg"] is None and rows[0]["ShrtOutRatio"] is None and rows[0]["LongOut"] == 676.0
    assert rows[0]["PubReason"] == rows[1]["PubReason"] == json.dumps(reason, sort_keys=True, separators=(",", ":"))


def test_codes_stay_strings() -> None:
    row = normalize.to_table(BARS, [{"Date": "2024-01-05", "Code": 72030}]).to_pylist()[0]
    assert row["Code"] == "72030"
    idx = normalize.to_table(spec.get("indices"), [{"Date": "2024-01-05", "Code": "002A"}]).to_pylist()[0]
    assert idx["Code"] == "002A"
    sr = normalize.to_table(spec.get("short_ratio"), [{"Date": "2024-01-05", "S33": "0050"}]).to_pylist()[0]
    assert sr["S33"] == "0050"


def test_unknown_keys_are_ignored_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gpuetl.jquants.normalize")
    recs = [{"Date": "2024-01-05", "Code": "72030", "ExRT": "", "MktCapNew": 1.0}] * 2
    t1 = normalize.to_table(BARS, recs)
    normalize.to_table(BARS, recs)
    assert "ExRT" not in t1.column_names and t1.num_rows == 2
    assert sum("MktCapNew" in r.message for r in caplog.records) == 1


def test_unreadable_numbers_become_null_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    recs = [{"Date": "2024-01-05", "Code": "72030", "AdjVo": v} for v in ("n/a", "1,234", True, "1e3", "oops")]
    with caplog.at_level(logging.WARNING):
        t = normalize.to_table(BARS, recs)
    assert t.column("AdjVo").to_pylist() == [None, 1234.0, None, 1000.0, None]
    assert sum("AdjVo" in r.message for r in caplog.records) == 1


def test_empty_and_extra_columns() -> None:
    t = normalize.to_table(BARS, [])
    assert t.num_rows == 0 and t.schema == schema.arrow_schema(BARS)
    snap = pa.array([dt.date(2024, 1, 5)], pa.date32())
    ec = normalize.to_table(spec.get("earnings_calendar"), [{"Date": "", "Code": "43760"}],
                            extra={"SnapshotDate": snap})
    assert ec.column_names[-1] == "SnapshotDate" and ec.to_pylist()[0]["Date"] is None


def test_round_trips_through_the_pandas_schema() -> None:
    t = normalize.to_table(BARS, [{"Date": "2024-01-05", "Code": "72030", "C": 1.5, "UL": "1"},
                                  {"Date": "2024-01-09", "Code": "130A0", "C": None, "UL": ""}])
    assert schema.to_table(BARS, schema.to_frame(BARS, t)).equals(t)
