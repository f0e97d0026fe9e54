"""The facts frame: column contract, reference vocabularies and dtype coercion.

One row is the actual volume of one series (origin station, destination station, cargo
type) on one day. Reference figures come from shared/data/freight-figures.md (press
releases of Russian rail operational data); see docs/data.md.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pandera.pandas as pa

from freightml.domain import CARGO_SHARES as CARGO_SHARES  # re-exported
from freightml.domain import CARGO_TYPES as CARGO_TYPES
from freightml.domain import REGIONS as REGIONS
from freightml.domain import SERIES_KEY as SERIES_KEY

FACT_COLUMNS: tuple[str, ...] = (
    "date",
    "origin_station",
    "destination_station",
    "origin_region",
    "destination_region",
    "cargo_type",
    "volume_tonnes",
    "wagons",
)
# Optional: when the source produced the value (ISO 8601 with a time zone). It orders a
# fact's revisions: a copy older than the stored value is refused (freightml.store.facts).
REPORTED_AT = "reported_at"
CATEGORY_COLUMNS: tuple[str, ...] = (
    "origin_station",
    "destination_station",
    "origin_region",
    "destination_region",
    "cargo_type",
)

# REGIONS, CARGO_SHARES and CARGO_TYPES (the synthetic data's domain) live in
# freightml.domain, so that settings can default to them without importing pandas.

# Typical tonnes loaded per wagon. Sourced (freight-figures.md, "Wagons and haul"):
# gondola 12-132 = 69.5 t, 12-196-01 ~ 75 t; network average ~ 65 t a wagon (derived);
# ~14.3 t per loaded TEU (derived), taken as ~2.8 loaded TEU per flat wagon = 40 t.
# The rest are assumptions (volume-limited light cargo below the average), marked "assumed".
WAGON_CAPACITY_T: dict[str, float] = {
    "coal": 69.5,  # gondola 12-132
    "oil": 60.0,  # tank wagon, assumed
    "construction": 69.5,  # gondola 12-132
    "iron_ore": 75.0,  # gondola 12-196-01
    "containers": 40.0,  # ~2.8 TEU x 14.3 t
    "ferrous_metals": 69.5,  # gondola 12-132
    "fertilisers": 65.0,  # hopper, network average
    "timber": 60.0,  # assumed
    "industrial_raw": 65.0,  # network average
    "cement": 65.0,  # hopper, network average
    "grain": 65.0,  # hopper, network average
    "chemicals": 60.0,  # tank/hopper, assumed
    "nonferrous_ore": 69.5,  # gondola 12-132
    "scrap": 50.0,  # bulky, assumed
    "coke": 45.0,  # light, assumed
}
DEFAULT_WAGON_CAPACITY_T = 65.0  # network average, for cargo types not listed above


class MissingColumnsError(ValueError):
    """Required facts columns are absent; the message names them and what is there."""

    def __init__(self, missing: list[str], available: list[str], where: str = "facts") -> None:
        self.missing = missing
        self.available = available
        super().__init__(
            f"{where} is missing required column(s) {missing}; available columns: {available}. "
            "Map your names with column_mapping={'your_column': 'volume_tonnes', ...}."
        )


def _is_string_like(s: pd.Series) -> bool:
    return (
        isinstance(s.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(s.dtype)
        or pd.api.types.is_string_dtype(s.dtype)
    )


def _string_column() -> pa.Column:
    return pa.Column(None, pa.Check(_is_string_like, name="string_like"), nullable=False)


FactSchema = pa.DataFrameSchema(
    {
        "date": pa.Column(
            "datetime64[ns]",
            pa.Check(lambda s: s == s.dt.normalize(), name="midnight"),
            nullable=False,
        ),
        **{c: _string_column() for c in CATEGORY_COLUMNS},
        "volume_tonnes": pa.Column(
            "float64",
            [pa.Check.ge(0), pa.Check(lambda s: np.isfinite(s), name="finite")],
            nullable=False,
        ),
        "wagons": pa.Column("int64", pa.Check.ge(0), nullable=False),
    },
    unique=["date", *SERIES_KEY],
    ordered=True,
    name="FactSchema",
    description="Daily freight volume per (origin, destination, cargo type) series.",
)


def coerce_facts(df: pd.DataFrame, *, categorical: bool = True) -> pd.DataFrame:
    """Return ``df`` with the fact columns only, in contract order and dtypes.

    Dates become midnight ``datetime64[ns]`` (time zones dropped), strings become
    ``category`` (or ``object`` with ``categorical=False``), volume float64, wagons int64.
    Raises MissingColumnsError naming absent columns, ValueError for unparsable values.
    """
    missing = [c for c in FACT_COLUMNS if c not in df.columns]
    if missing:
        raise MissingColumnsError(missing, [str(c) for c in df.columns])
    out = {"date": _to_midnight(df["date"])}
    for col in CATEGORY_COLUMNS:
        s = _to_strings(df[col])
        if categorical:
            out[col] = s if isinstance(s.dtype, pd.CategoricalDtype) else s.astype("category")
        else:
            out[col] = s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s
    out["volume_tonnes"] = _to_number(df["volume_tonnes"], "volume_tonnes").astype("float64")
    wagons = _to_number(df["wagons"], "wagons")
    if wagons.isna().any():
        raise ValueError(f"{int(wagons.isna().sum())} rows have no wagons value")
    out["wagons"] = wagons.round().astype("int64")
    return pd.DataFrame(out, index=df.index)


def _to_strings(s: pd.Series) -> pd.Series:
    """Station codes may arrive as numbers: make values strings, keeping missing ones."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        if _is_string_like(pd.Series(s.cat.categories)):
            return s
        return s.cat.rename_categories(s.cat.categories.astype(str))
    if _is_string_like(s):
        return s
    return s.where(s.isna(), s.astype(str)).astype(object)


def parse_dates(s: pd.Series) -> pd.Series:
    """Parse dates to naive ``datetime64[ns]`` (NaT where unparsable), each distinct value
    once. ISO 8601 first, any other format dateutil understands second; time zones are
    dropped keeping the local wall time."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.astype("datetime64[ns]")
    codes, uniques = pd.factorize(s)
    values = pd.Series(np.asarray(uniques, dtype=object))
    parsed = np.full(len(values), np.datetime64("NaT", "ns"))
    for fmt in ("ISO8601", "mixed"):
        todo = np.isnat(parsed)
        if not todo.any():
            break
        parsed[todo] = _parse(values[todo], fmt)
    out = np.append(parsed, np.datetime64("NaT", "ns"))[codes]  # code -1 (missing) -> NaT
    return pd.Series(out, index=s.index, name=s.name)


def _parse(values: pd.Series, fmt: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():  # mixed offsets: handled below
            warnings.simplefilter("ignore", FutureWarning)
            parsed = pd.to_datetime(values, errors="coerce", format=fmt)
    except (TypeError, ValueError):  # e.g. aware and naive values mixed
        parsed = pd.to_datetime(values, errors="coerce", format=fmt, utc=True)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    elif parsed.dtype == object:  # a mix of aware and naive values
        parsed = pd.Series(
            [pd.Timestamp(v).tz_localize(None) if pd.notna(v) else pd.NaT for v in parsed],
            index=values.index,
        )
    return parsed.to_numpy(dtype="datetime64[ns]")


def _to_midnight(s: pd.Series) -> pd.Series:
    parsed = parse_dates(s)
    bad = parsed.isna() & s.notna()
    if bad.any():
        first = s[bad].iloc[0]
        raise ValueError(f"{int(bad.sum())} rows have an unparsable date (first: {first!r})")
    return parsed.dt.normalize()


def _to_number(s: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s
    parsed = pd.to_numeric(s, errors="coerce")
    bad = parsed.isna() & s.notna()
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} rows have a non-numeric {name} (first: {s[bad].iloc[0]!r})"
        )
    return parsed
