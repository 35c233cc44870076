"""The official code tables the synthetic market draws from (sectors, markets, indices), plus name parts.

Sector and market names come from `spec.reference_data()` (the official tables); the 33 -> 17 sector
mapping and the weights (how common each sector is on the TSE) are from API-NOTES §2.24.
"""

from __future__ import annotations

import functools
from typing import Any

from gpuetl.jquants import spec

# 33-sector code -> (17-sector code, relative number of listed issues, code range typical of the sector)
S33_TO_S17: dict[str, tuple[str, float, tuple[int, int]]] = {
    "0050": ("1", 12, (1300, 1400)), "1050": ("2", 6, (1500, 1700)), "2050": ("3", 150, (1700, 2000)),
    "3050": ("1", 125, (2000, 3000)), "3100": ("4", 50, (3000, 3600)), "3150": ("4", 24, (3700, 3950)),
    "3200": ("4", 210, (4000, 4500)), "3250": ("5", 75, (4500, 4600)), "3300": ("2", 10, (5000, 5100)),
    "3350": ("6", 18, (5100, 5200)), "3400": ("3", 55, (5200, 5400)), "3450": ("7", 45, (5400, 5700)),
    "3500": ("7", 35, (5700, 5900)), "3550": ("3", 90, (5900, 6000)), "3600": ("8", 230, (6000, 6500)),
    "3650": ("9", 240, (6500, 7000)), "3700": ("6", 90, (7000, 7300)), "3750": ("9", 50, (7700, 7800)),
    "3800": ("10", 110, (7800, 8000)), "4050": ("11", 25, (9500, 9600)), "5050": ("12", 65, (9000, 9100)),
    "5100": ("12", 12, (9100, 9200)), "5150": ("12", 5, (9200, 9300)), "5200": ("12", 40, (9300, 9400)),
    "5250": ("10", 540, (9400, 9500)), "6050": ("13", 310, (8000, 8200)), "6100": ("14", 340, (8200, 8300)),
    "7050": ("15", 80, (8300, 8600)), "7100": ("16", 40, (8600, 8700)), "7150": ("16", 14, (8700, 8800)),
    "7200": ("16", 35, (8500, 8600)), "8050": ("17", 140, (8800, 9000)), "9050": ("10", 520, (9600, 9999)),
}
S33_CODES: tuple[str, ...] = tuple(S33_TO_S17)

MARGIN_NAMES = {"1": "信用", "2": "貸借", "3": "その他"}
SCALE_CATS = ("TOPIX Core30", "TOPIX Large70", "TOPIX Mid400", "TOPIX Small 1", "TOPIX Small 2", "-")
# Investor-type section of each market code (TSE2nd etc. merged into TSEJASDAQ for the JASDAQ codes).
SECTION_OF_MARKET = {"0101": "TSE1st", "0102": "TSE2nd", "0104": "TSEMothers", "0106": "TSEJASDAQ",
                     "0107": "TSEJASDAQ", "0111": "TSEPrime", "0112": "TSEStandard", "0113": "TSEGrowth"}
# Japanese section names used by the earnings calendar.
SECTION_JP = {"0101": "市場第一部", "0102": "市場第二部", "0104": "マザーズ", "0106": "JASDAQ",
              "0107": "JASDAQ", "0111": "プライム", "0112": "スタンダード", "0113": "グロース"}

# Fictional company-name parts: (Japanese, romanised) prefixes and per-17-sector business words.
NAME_PREFIXES = (("東洋", "Toyo"), ("日本", "Nihon"), ("大和", "Daiwa"), ("中央", "Chuo"), ("北海", "Hokkai"),
                 ("新光", "Shinko"), ("三協", "Sankyo"), ("富士", "Fuji"), ("昭和", "Showa"), ("平和", "Heiwa"),
                 ("東邦", "Toho"), ("関西", "Kansai"), ("九州", "Kyushu"), ("明星", "Myojo"), ("朝日", "Asahi"),
                 ("日東", "Nitto"), ("太陽", "Taiyo"), ("若葉", "Wakaba"), ("青山", "Aoyama"), ("桜", "Sakura"),
                 ("北斗", "Hokuto"), ("瑞穂", "Mizuho"), ("丸和", "Maruwa"), ("高千穂", "Takachiho"))
SECTOR_WORDS = {
    "1": ("食品", "Foods"), "2": ("石油", "Oil"), "3": ("建設", "Construction"), "4": ("化学", "Chemical"),
    "5": ("製薬", "Pharmaceutical"), "6": ("自動車", "Motor"), "7": ("製鋼", "Steel"), "8": ("機械", "Machinery"),
    "9": ("電機", "Electric"), "10": ("システム", "Systems"), "11": ("電力", "Power"), "12": ("運輸", "Transport"),
    "13": ("商事", "Trading"), "14": ("ストア", "Stores"), "15": ("銀行", "Bank"), "16": ("証券", "Securities"),
    "17": ("不動産", "Realty"),
}


def _table(name: str) -> list[dict[str, object]]:
    tables: Any = spec.reference_data()  # a list of tables (annotated as a dict in spec)
    for t in tables:
        if t["name"] == name:
            return list(t["reference_data"])
    raise KeyError(f"reference table {name!r} missing from spec.reference_data()")


@functools.cache
def s33_names() -> dict[str, str]:
    return {str(r["Sector33Code"]): str(r["Sector33CodeName"]) for r in _table("sector33_codes")}


@functools.cache
def s17_names() -> dict[str, str]:
    return {str(r["Sector17Code"]): str(r["Sector17CodeName"]) for r in _table("sector17_codes")}


@functools.cache
def market_names() -> dict[str, str]:
    return {str(r["MarketCode"]): str(r["MarketCodeName"]) for r in _table("market_codes")}


@functools.cache
def index_codes() -> dict[str, str]:
    """Index code -> name, as the official table lists them."""
    return {str(r["Code"]): str(r["IndexName"]) for r in _table("index_codes")}


@functools.cache
def sector_index_codes() -> dict[str, str]:
    """33-sector code -> its TSE sector index code (0040.. in table order)."""
    codes = [c for c, n in index_codes().items() if n.startswith("東証業種別")]
    return dict(zip(S33_CODES, codes, strict=True))


@functools.cache
def s17_index_codes() -> dict[str, str]:
    """17-sector code -> its TOPIX-17 index code (0080..0090)."""
    codes = [c for c, n in index_codes().items() if n.startswith("TOPIX-17")]
    return dict(zip(sorted(s17_names(), key=lambda s: int(s))[:17], codes, strict=True))
