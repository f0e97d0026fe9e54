"""The collector's tables (SQLAlchemy Core): events, inferences, forecasts, facts and
monitoring snapshots.

Portable between SQLite and PostgreSQL: plain types, natural unique keys that the
store's ``INSERT ... ON CONFLICT`` statements rely on.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_SERIES = ("origin_station", "destination_station", "cargo_type")


def _series_columns() -> list[sa.Column]:
    return [sa.Column(name, sa.String(128), nullable=False) for name in _SERIES]


# One row per CloudEvent received; (event_id, event_type) is the delivery's identity.
inference_events = sa.Table(
    "inference_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(255), nullable=False),
    sa.Column("event_type", sa.String(255), nullable=False),
    sa.Column("source", sa.String(1024), nullable=False),
    sa.Column("specversion", sa.String(16), nullable=False),
    sa.Column("event_time", sa.String(64)),  # ce-time as sent (RFC 3339), None if absent
    sa.Column("inference_service", sa.String(255)),
    sa.Column("namespace", sa.String(255)),
    sa.Column("component", sa.String(255)),
    sa.Column("endpoint", sa.String(255)),
    sa.Column("content_type", sa.String(255)),
    sa.Column("attributes", sa.Text, nullable=False),  # every CE attribute, JSON object
    sa.Column("body", sa.Text),  # the data as received (JSON text), None if empty
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("event_id", "event_type", name="uq_inference_events_id_type"),
)

# One row per inference: KServe gives its request and response events the same ce-id.
inferences = sa.Table(
    "inferences",
    metadata,
    sa.Column("inference_id", sa.String(255), primary_key=True),
    sa.Column("inference_service", sa.String(255)),
    sa.Column("namespace", sa.String(255)),
    sa.Column("component", sa.String(255)),
    sa.Column("endpoint", sa.String(255)),
    sa.Column("request_event", sa.Integer),  # inference_events.id
    sa.Column("response_event", sa.Integer),  # inference_events.id
    sa.Column("request_time", sa.String(64)),
    sa.Column("response_time", sa.String(64)),
    sa.Column("protocol", sa.String(8)),  # "v1" | "v2" | None (not a forecast body)
    sa.Column("model_name", sa.String(255)),
    sa.Column("model_version", sa.String(255)),
    sa.Column("n_forecasts", sa.Integer),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per (source id, series, origin date, target date); source id is the inference
# id for "online" forecasts and the run id for "batch" ones.
forecasts = sa.Table(
    "forecasts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("source_id", sa.String(255), nullable=False),
    *_series_columns(),
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
    sa.UniqueConstraint(
        "source", "source_id", *_SERIES, "origin_date", "target_date", name="uq_forecasts_key"
    ),
    sa.Index("ix_forecasts_series_target", *_SERIES, "target_date"),
)

# The current value of each fact; older values move to facts_revisions.
facts = sa.Table(
    "facts",
    metadata,
    *_series_columns(),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("origin_region", sa.String(128), nullable=False),
    sa.Column("destination_region", sa.String(128), nullable=False),
    sa.Column("volume_tonnes", sa.Float, nullable=False),
    sa.Column("wagons", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),  # 1 for the first value
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint(*_SERIES, "date", name="pk_facts"),
    sa.Index("ix_facts_date", "date"),
)

# Superseded values: the value a fact had from valid_from until valid_to.
facts_revisions = sa.Table(
    "facts_revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *_series_columns(),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("origin_region", sa.String(128), nullable=False),
    sa.Column("destination_region", sa.String(128), nullable=False),
    sa.Column("volume_tonnes", sa.Float, nullable=False),
    sa.Column("wagons", sa.Integer, nullable=False),
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_facts_revisions_key", *_SERIES, "date"),
)

# One row per monitoring run (`freightml monitor run`): the summary columns for listing and
# the whole Snapshot as JSON text in details (freightml.monitoring.types.Snapshot).
monitoring_snapshots = sa.Table(
    "monitoring_snapshots",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the snapshot id
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(255)),
    sa.Column("status", sa.String(8), nullable=False),  # green | amber | red
    sa.Column("n_alerts", sa.Integer, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Index("ix_monitoring_snapshots_model_as_of", "model_name", "as_of", "created_at"),
)

# the statuses that hold a retraining decision's key (freightml.retraining.types.KEY_USED;
# a test checks that the two agree)
KEY_HELD_STATUSES = ("decided", "started", "finished")
KEY_HELD = "status IN ({})".format(", ".join(f"'{s}'" for s in KEY_HELD_STATUSES))

# One row per retraining decision (`freightml retrain run`, the retraining pipeline): the
# summary columns, the run it started and its outcome, and the whole Decision as JSON in
# details (freightml.retraining.types.Decision).
retraining_decisions = sa.Table(
    "retraining_decisions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the decision id
    sa.Column("key", sa.String(512), nullable=False),  # model:trigger:as-of (idempotency)
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("retrain", sa.Boolean, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.Column("trigger", sa.String(64)),  # the trigger the key names; None when none fired
    # decided | started | finished | failed | skipped
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(255)),  # the KFP run or MLflow training run it started
    sa.Column("model_version", sa.String(255)),  # the version the run registered
    sa.Column("message", sa.Text),  # the outcome in words (promotion decision, error)
    sa.Column("details", sa.Text, nullable=False),
    sa.Index("ix_retraining_decisions_model_as_of", "model_name", "as_of", "decided_at"),
    sa.Index("ix_retraining_decisions_key", "key"),
    # One decision holds an idempotency key (decided, started or finished: retraining's
    # KEY_USED); skipped and failed ones may repeat it. The database refuses a second
    # holder whatever the writers do, so two processes claiming at once start one run.
    sa.Index(
        "ux_retraining_decisions_key_held",
        "key",
        unique=True,
        sqlite_where=sa.text(KEY_HELD),
        postgresql_where=sa.text(KEY_HELD),
    ),
)
