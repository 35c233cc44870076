"""Fetch inputs and planning without a server: bad arguments, credentials, .env, which units to request."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from gpuetl.config import Settings
from gpuetl.fetch.pipeline import FetchInputError, fetch
from gpuetl.fetch.plan import plan_dataset, select, weekdays
from gpuetl.jquants import env, spec
from gpuetl.jquants.errors import MissingCredentialsError, PlanError
from gpuetl.lake import Lake, Unit
from gpuetl.lake.units import business_days

D = dt.date


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (env.API_KEY, env.MAIL, env.PASSWORD):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_start_after_end(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(FetchInputError, match="start 2024-02-01 is after end 2024-01-01"):
        await fetch(settings, "2024-02-01", "2024-01-01", lake=tmp_path, progress=False)
    with pytest.raises(FetchInputError, match="'2024-13-01' is not a date"):
        await fetch(settings, "2024-13-01", "2024-01-01", lake=tmp_path, progress=False)


async def test_unknown_datasets_list_the_valid_ones(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(FetchInputError, match=r"unknown dataset\(s\) prices; valid: calendar, master, bars_daily"):
        await fetch(settings, "2024-01-04", "2024-01-05", ["bars_daily", "prices"], tmp_path, progress=False)


async def test_missing_key_names_the_variable_and_demo(settings: Settings, no_credentials: Path) -> None:
    with pytest.raises(MissingCredentialsError, match=r"set JQUANTS_API_KEY.*--demo"):
        await fetch(settings, "2024-01-04", "2024-01-05", ["bars_daily"], no_credentials, progress=False)
    with pytest.raises(MissingCredentialsError, match="JQUANTS_API_MAIL_ADDRESS and JQUANTS_API_PASSWORD"):
        await fetch(settings, "2024-01-04", "2024-01-05", ["bars_daily"], no_credentials, progress=False,
                    api_version="v1")
    assert not any(no_credentials.iterdir())  # nothing written


def test_dotenv_parsing() -> None:
    text = """
# comment
JQUANTS_API_KEY=abc123
export JQUANTS_API_MAIL_ADDRESS="me@example.com"
JQUANTS_API_PASSWORD='p#ss word'  # trailing comment
EMPTY=
BROKEN LINE
INLINE=value # comment
"""
    assert env.parse_dotenv(text) == {"JQUANTS_API_KEY": "abc123", "JQUANTS_API_MAIL_ADDRESS": "me@example.com",
                                      "JQUANTS_API_PASSWORD": "p#ss word", "EMPTY": "", "INLINE": "value"}


def test_credentials_from_dotenv_and_environment(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (no_credentials / ".env").write_text("JQUANTS_API_KEY=from-file\nJQUANTS_API_MAIL_ADDRESS=a@b.c\n")
    assert env.credentials("v2").api_key == "from-file"
    monkeypatch.setenv("JQUANTS_API_KEY", "from-env")
    creds = env.credentials("v2")
    assert creds.api_key == "from-env" and "from-env" not in repr(creds)
    with pytest.raises(MissingCredentialsError, match="needs JQUANTS_API_PASSWORD"):
        env.credentials("v1")


def test_select_skips_defaults_and_refuses_explicit_names_outside_the_plan() -> None:
    chosen, skipped = select(None, ("calendar", "bars_daily", "breakdown", "fins_details"), "standard", "v2")
    assert [d.name for d in chosen] == ["calendar", "bars_daily"]
    assert skipped == {"breakdown": "not available on the standard plan (needs premium)",
                       "fins_details": "not available on the standard plan (needs premium)"}
    with pytest.raises(PlanError, match="fins_details is not available on the free plan"):
        select(["bars_daily", "fins_details"], (), "free", "v2")


def test_planning_walks_business_days_per_calendar_kind(tmp_path: Path) -> None:
    days = [D(2024, 2, 9), D(2024, 2, 10), D(2024, 2, 11), D(2024, 2, 12), D(2024, 2, 13)]
    cal = pa.table({"Date": pa.array(days, pa.date32()), "HolDiv": ["1", "0", "0", "3", "2"]})
    kinds = {k: business_days(cal, k, days[0], days[-1]) for k in ("equity", "derivatives")}
    assert kinds == {"equity": [D(2024, 2, 9), D(2024, 2, 13)],
                     "derivatives": [D(2024, 2, 9), D(2024, 2, 12), D(2024, 2, 13)]}
    lake = Lake(tmp_path)
    bars = plan_dataset(spec.get("bars_daily"), lake, days[0], days[-1], kinds, D(2024, 2, 13), 366)
    assert [u.id for u in bars.units] == ["d20240209", "d20240213"]
    assert bars.is_final(bars.units[0]) and not bars.is_final(bars.units[1])  # today's data may still change
    fut = plan_dataset(spec.get("futures"), lake, days[0], days[-1], kinds, D(2024, 3, 1), 366)
    assert len(fut.units) == 3
    snap = plan_dataset(spec.get("earnings_calendar"), lake, days[0], days[-1], kinds, D(2024, 3, 1), 366)
    assert [u.id for u in snap.units] == ["s20240301"] and snap.is_final(snap.units[0])
    topix = plan_dataset(spec.get("topix"), lake, D(2023, 1, 1), D(2024, 3, 1), kinds, D(2024, 6, 1), 366)
    assert topix.units == (Unit.span(D(2023, 1, 1), D(2024, 1, 1)), Unit.span(D(2024, 1, 2), D(2024, 3, 1)))
    # before a dataset's first date nothing is planned
    old = plan_dataset(spec.get("breakdown"), lake, D(2010, 1, 4), D(2010, 1, 8), {"equity": weekdays(
        D(2010, 1, 4), D(2010, 1, 8))}, D(2024, 1, 1), 366)
    assert old.units == ()
