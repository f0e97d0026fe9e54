"""Leakage-safe features for the daily freight-volume forecast (see build.py)."""

from freightml.features.build import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    REGION_COLUMNS,
    SCALE_FLOOR,
    SERIES_KEY,
    SeriesPanel,
    build_examples,
    build_inference_frame,
    default_origins,
)

__all__ = [
    "CATEGORICAL_FEATURES",
    "FEATURE_COLUMNS",
    "REGION_COLUMNS",
    "SCALE_FLOOR",
    "SERIES_KEY",
    "SeriesPanel",
    "build_examples",
    "build_inference_frame",
    "default_origins",
]
