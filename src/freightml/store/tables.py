"""The store of record's own tables (SQLAlchemy Core): facts, their revisions, forecasts.

Portable between SQLite and PostgreSQL: plain types, natural unique keys that the
families' ``INSERT ... ON CONFLICT`` statements rely on. Every table family declares its
tables on the one ``metadata`` (freightml.store.database), wherever the family lives.
"""

from __future__ import annotations

import sqlalchemy as sa

from freightml.domain import SERIES_KEY
from freightml.store.database import metadata


def series_columns() -> list[sa.Column]:
    """The series key's columns (stations and cargo type, 128 characters each)."""
    return [sa.Column(name, sa.String(128), nullable=False) for name in SERIES_KEY]


# One row per (source id, series, origin date, target date); source id is the inference
# id for "online" forecasts and the run id for "batch" ones.
forecasts = sa.Table(
    "forecasts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("source_id", sa.String(255), nullable=False),
    *series_columns(),
    sa.Column("origin_date", sa.Date, nullable=False),
    sa.Column("target_date", sa.Date, nullable=False),
    sa.Column("horizon", sa.Integer, nullable=False),
    sa.Column("tonnes", sa.Float, nullable=False),
    sa.Column("wagons", sa.Integer),
    # the 80% interval of the forecast (NULL from a model without calibrated intervals)
    sa.Column("tonnes_p10", sa.Float),
    sa.Column("tonnes_p90", sa.Float),
    sa.Column("model_name", sa.String(255)),
    sa.Column("model_version", sa.String(255)),
    sa.Column("lineage", sa.String(255)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # the serving environment (the predictor's namespace, KServe's ce-namespace) of an
    # online forecast, so dev, staging and prod traffic is monitored apart; NULL for batch
    sa.Column("environment", sa.String(255)),
    sa.UniqueConstraint(
        "source", "source_id", *SERIES_KEY, "origin_date", "target_date", name="uq_forecasts_key"
    ),
    sa.Index("ix_forecasts_series_target", *SERIES_KEY, "target_date"),
)


# The current value of each fact; older values move to facts_revisions.
facts = sa.Table(
    "facts",
    metadata,
    *series_columns(),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("origin_region", sa.String(128), nullable=False),
    sa.Column("destination_region", sa.String(128), nullable=False),
    sa.Column("volume_tonnes", sa.Float, nullable=False),
    sa.Column("wagons", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),  # 1 for the first value
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    # when the source produced the value, if it said (orders the revisions)
    sa.Column("reported_at", sa.DateTime(timezone=True)),
    sa.PrimaryKeyConstraint(*SERIES_KEY, "date", name="pk_facts"),
    sa.Index("ix_facts_date", "date"),
)


# Superseded values: the value a fact had from valid_from until valid_to.
facts_revisions = sa.Table(
    "facts_revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *series_columns(),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("origin_region", sa.String(128), nullable=False),
    sa.Column("destination_region", sa.String(128), nullable=False),
    sa.Column("volume_tonnes", sa.Float, nullable=False),
    sa.Column("wagons", sa.Integer, nullable=False),
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reported_at", sa.DateTime(timezone=True)),
    sa.Index("ix_facts_revisions_key", *SERIES_KEY, "date"),
)

# Facts withdrawn (no longer current, with no value in their place): who withdrew which
# value, when and why. The value itself also moves to facts_revisions, like a revision.
fact_withdrawals = sa.Table(
    "fact_withdrawals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *series_columns(),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("volume_tonnes", sa.Float, nullable=False),
    sa.Column("wagons", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),  # the revision that was withdrawn
    sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("withdrawn_by", sa.String(255), nullable=False),  # as the request declared
    # which credential sent it (scope and a digest prefix of the token; never the token)
    sa.Column("credential", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(1000), nullable=False),
    sa.Index("ix_fact_withdrawals_key", *SERIES_KEY, "date"),
)
