"""Facts data: schema, loaders, synthetic generator and validation.

A series is (origin_station, destination_station, cargo_type); the facts frame has one row
per series and day. See docs/data.md.
"""

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
from freightml.data.sources import digest_facts, file_digest, load_facts, save_facts
from freightml.data.synthetic import SIZES, SyntheticSpec, generate
from freightml.data.validation import (
    DataValidationError,
    Issue,
    ValidationReport,
    validate_facts,
)

__all__ = [
    "CARGO_SHARES",
    "CARGO_TYPES",
    "CATEGORY_COLUMNS",
    "FACT_COLUMNS",
    "REGIONS",
    "SERIES_KEY",
    "SIZES",
    "WAGON_CAPACITY_T",
    "DataValidationError",
    "FactSchema",
    "Issue",
    "MissingColumnsError",
    "SyntheticSpec",
    "ValidationReport",
    "coerce_facts",
    "digest_facts",
    "file_digest",
    "generate",
    "load_facts",
    "save_facts",
    "validate_facts",
]
