"""The facts contract: constants, FactSchema and coerce_facts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from freightml.data.schema import (
    CARGO_SHARES,
    CARGO_TYPES,
    CATEGORY_COLUMNS,
    FACT_COLUMNS,
    REGIONS,
    SERIES_KEY,
    WAGON_CAPACITY_T,
    FactSchema,
    MissingColumnsError,
    coerce_facts,
)

pytestmark = [pytest.mark.unit]


def _raw() -> pd.DataFrame:
    """Two rows with user-style dtypes and an extra column, out of contract order."""
    return pd.DataFrame(
        {
            "wagons": [3.0, 0.0],
            "volume_tonnes": [200, 0],
            "cargo_type": ["coal", "grain"],
            "destination_region": ["Far Eastern", "North Caucasus"],
            "origin_region": ["West Siberian", "Volga"],
            "destination_station": ["VLD", "NVR"],
            "origin_station": ["NSK", "SAM"],
            "date": ["2024-03-02 13:45", "2024-03-03"],
            "comment": ["x", "y"],
        }
    )


def test_constants_follow_the_published_figures() -> None:
    assert FACT_COLUMNS == (
        "date",
        "origin_station",
        "destination_station",
        "origin_region",
        "destination_region",
        "cargo_type",
        "volume_tonnes",
        "wagons",
    )
    assert SERIES_KEY == ("origin_station", "destination_station", "cargo_type")
    assert set(CATEGORY_COLUMNS) == set(FACT_COLUMNS) - {"date", "volume_tonnes", "wagons"}
    assert len(REGIONS) == 16 and "West Siberian" in REGIONS and "Kaliningrad" in REGIONS
    assert len(CARGO_TYPES) == 15 and CARGO_TYPES[0] == "coal"
    assert CARGO_SHARES["coal"] == pytest.approx(0.287)
    assert sum(CARGO_SHARES.values()) == pytest.approx(0.998)  # as published, rounded
    assert set(WAGON_CAPACITY_T) == set(CARGO_TYPES)
    assert WAGON_CAPACITY_T["coal"] == 69.5


def test_coerce_orders_columns_and_casts_dtypes() -> None:
    facts = coerce_facts(_raw())
    assert tuple(facts.columns) == FACT_COLUMNS
    assert facts["date"].dtype == "datetime64[ns]"
    assert facts["date"].tolist() == [pd.Timestamp("2024-03-02"), pd.Timestamp("2024-03-03")]
    assert all(isinstance(facts[c].dtype, pd.CategoricalDtype) for c in CATEGORY_COLUMNS)
    assert facts["volume_tonnes"].dtype == np.float64
    assert facts["wagons"].dtype == np.int64 and facts["wagons"].tolist() == [3, 0]
    FactSchema.validate(facts)


def test_coerce_can_keep_object_strings() -> None:
    facts = coerce_facts(_raw(), categorical=False)
    assert facts["origin_station"].dtype == object
    FactSchema.validate(facts)


def test_coerce_names_missing_columns() -> None:
    with pytest.raises(MissingColumnsError, match=r"\['wagons'\].*available columns"):
        coerce_facts(_raw().drop(columns=["wagons"]))


def test_coerce_rejects_unparsable_values() -> None:
    with pytest.raises(ValueError, match="1 rows have an unparsable date.*'soon'"):
        coerce_facts(_raw().assign(date=["2024-03-02", "soon"]))
    with pytest.raises(ValueError, match="non-numeric volume_tonnes.*'lots'"):
        coerce_facts(_raw().assign(volume_tonnes=["5", "lots"]))


def test_coerce_turns_numeric_station_codes_into_strings() -> None:
    raw = _raw().assign(origin_station=[2000101, 2000102])
    raw["destination_station"] = pd.Categorical([9600, 9601])
    facts = coerce_facts(raw)
    assert facts["origin_station"].tolist() == ["2000101", "2000102"]
    assert list(facts["destination_station"].cat.categories) == ["9600", "9601"]


def test_coerce_parses_categorical_dates_once_per_value() -> None:
    raw = _raw().assign(date=pd.Categorical(["2024-03-02", "2024-03-02"]))
    assert coerce_facts(raw)["date"].nunique() == 1


def test_fact_schema_rejects_negative_volume() -> None:
    facts = coerce_facts(_raw())
    facts.loc[0, "volume_tonnes"] = -1.0
    with pytest.raises(pa.errors.SchemaError, match="greater_than_or_equal_to"):
        FactSchema.validate(facts)
