"""The collector's own tables (SQLAlchemy Core): inference events and inferences.

Declared on the store's one ``metadata`` (freightml.store.database); the family that
writes them is freightml.collector.inferences.
"""

from __future__ import annotations

import sqlalchemy as sa

from freightml.store.database import metadata

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
