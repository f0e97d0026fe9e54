"""The collector's API contract for its OpenAPI document: request and answer bodies, and the
CloudEvent routes (plain Starlette routes, so they are described here by hand).

The schemas say exactly what the handlers accept and answer; a schema-driven fuzzer
(schemathesis, tests/integration/test_api_fuzz_collector.py) holds them to it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import date
from datetime import date as date_type
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from freightml.collector.events import BLANK_CHARS
from freightml.collector.intake import MAX_WAGONS, TEXT_COLUMNS
from freightml.data.schema import FACT_COLUMNS, REPORTED_AT
from freightml.store import MAX_NAME_LENGTH

# What the store can hold in a CloudEvent attribute (the inference_events columns).
MAX_ATTRIBUTE_LENGTH = 255
MAX_SOURCE_LENGTH = 1024
MAX_TIME_LENGTH = 64
SPECVERSIONS = ["1.0", "0.3"]  # what the CloudEvents SDK reads
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format
NO_NUL = r"^[^\u0000]*$"  # text PostgreSQL can store (it refuses NUL)
# a character that is not blank (events.BLANK_CHARS, the server's own rule), no NUL
_NOT_BLANK = "^[^\\u0000]*[^\\u0000{}][^\\u0000]*$".format(
    "".join(f"\\u{ord(c):04x}" for c in BLANK_CHARS)
)


def _iso_date_only(value: Any) -> Any:
    """Only ``YYYY-MM-DD`` text is a date here (pydantic would also take "0" as 1970-01-01)."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("use an ISO date YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_only)]


def _utf8_text(value: Any) -> Any:
    """Text the store can hold: encodable as UTF-8 (a lone surrogate escape is not)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("not valid UTF-8 text (a lone surrogate)") from None
    return value


StoredText = Annotated[str, BeforeValidator(_utf8_text)]


class EventAnswer(BaseModel):
    status: Literal["stored", "duplicate"] = Field(
        description="`stored` once committed; `duplicate` for a redelivery (nothing changed)"
    )


class Rejected(BaseModel):
    status: Literal["rejected"]
    error: str = Field(description="what is wrong with the request")


class Conflict(BaseModel):
    """One event (or, for a batch, ``errors`` naming each) clashing with a stored one."""

    model_config = ConfigDict(extra="allow")

    status: Literal["conflict"]


class FactsRejection(BaseModel):
    status: Literal["rejected"]
    errors: list[str] = Field(description="what is wrong, one message per problem")


class Unavailable(BaseModel):
    status: Literal["unavailable"]
    error: str = Field(description="why the database cannot be used; send the request again")


class StoreError(BaseModel):
    status: Literal["error"]
    error: str = Field(description="the database error")


class NotFound(BaseModel):
    error: str


class Health(BaseModel):
    status: Literal["ok"]
    writer: bool = Field(description="whether the event writer task is running")


class FactsAnswer(BaseModel):
    status: Literal["ok"]
    inserted: int = Field(description="new facts")
    revised: int = Field(description="facts whose value changed (old value kept as a revision)")
    duplicates: int = Field(description="facts sent again unchanged (no-op)")
    warnings: list[str] = Field(description="validation warnings (stored anyway)")


class FactKey(BaseModel):
    """One fact: its series and day."""

    model_config = ConfigDict(extra="forbid")

    origin_station: StoredText = Field(min_length=1, max_length=128, pattern=NO_NUL)
    destination_station: StoredText = Field(min_length=1, max_length=128, pattern=NO_NUL)
    cargo_type: StoredText = Field(min_length=1, max_length=128, pattern=NO_NUL)
    date: Annotated[date_type, BeforeValidator(_iso_date_only)]


class Withdrawal(BaseModel):
    """Facts to withdraw (no longer current, no value in their place), who asks and why."""

    model_config = ConfigDict(extra="forbid")

    by: StoredText = Field(
        min_length=1, max_length=255, pattern=_NOT_BLANK, description="who asks (kept in the audit)"
    )
    reason: StoredText = Field(
        min_length=1, max_length=1000, pattern=_NOT_BLANK, description="why (kept in the audit)"
    )
    facts: list[FactKey] = Field(min_length=1, max_length=100_000)


class WithdrawalAnswer(BaseModel):
    status: Literal["ok"]
    withdrawn: int = Field(description="facts withdrawn now")
    already: int = Field(description="facts withdrawn before (a repeat is a no-op)")


class JoinedForecast(BaseModel):
    """One forecast next to the current fact of its series and target day."""

    source: Literal["online", "batch"]
    source_id: str = Field(description="inference id (online) or run id (batch)")
    model_name: str | None
    model_version: str | None
    lineage: str | None
    origin_station: str
    destination_station: str
    cargo_type: str
    origin_region: str | None = Field(description="from the fact; null while it is pending")
    destination_region: str | None
    origin_date: str = Field(json_schema_extra={"format": "date"})
    date: str = Field(description="target day", json_schema_extra={"format": "date"})
    horizon: int
    tonnes: float
    wagons: int | None
    volume_tonnes: float | None = Field(description="the fact; null while it is pending")
    fact_wagons: int | None
    fact_revision: int | None
    created_at: str


class Inference(BaseModel):
    """One inference: its joined metadata (when a request or response made one), its
    events and its forecasts."""

    model_config = ConfigDict(extra="allow")

    inference_id: str
    complete: bool = Field(description="both the request and the response arrived")
    request: dict[str, Any] | None = Field(description="the request event, body parsed")
    response: dict[str, Any] | None = Field(description="the response event, body parsed")
    other_events: list[dict[str, Any]] = Field(description="events of other types, same id")
    forecasts: list[dict[str, Any]] = Field(description="forecast rows from the response")


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"model": model, "description": description}


Responses = dict[int | str, dict[str, Any]]

UNAVAILABLE: Responses = {
    503: {
        **_json(Unavailable, "The database is unavailable: nothing was stored; retry later"),
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "string", "pattern": r"^\d+$"},
            }
        },
    },
    500: _json(StoreError, "The database refused the request (named in `error`)"),
}
FACTS_RESPONSES: Responses = {
    200: _json(FactsAnswer, "Stored (idempotently)"),
    400: _json(FactsRejection, "The body is not a JSON list of fact records nor a CSV table"),
    409: _json(
        FactsRejection,
        "Stale facts: a changed value reported (reported_at) at or before the one the store "
        "holds; nothing was stored",
    ),
    422: _json(
        FactsRejection,
        "The facts failed validation (also rules a schema cannot state: no date after "
        "today, one value per series and day); nothing was stored",
    ),
    **UNAVAILABLE,
}
WITHDRAWAL_RESPONSES: Responses = {
    200: _json(WithdrawalAnswer, "Withdrawn (the values move to the revisions, audited)"),
    400: _json(FactsRejection, "The body is not a JSON object"),
    404: _json(FactsRejection, "Some facts are not in the store: none was withdrawn"),
    422: _json(FactsRejection, "The withdrawal is not valid (named in `errors`): nothing done"),
    **UNAVAILABLE,
}
INFERENCE_RESPONSES: Responses = {
    200: _json(Inference, "The inference"),
    404: _json(NotFound, "No event or inference has this id"),
    **UNAVAILABLE,
}
HEALTH_RESPONSES: Responses = {
    200: _json(Health, "The database answers"),
    503: UNAVAILABLE[503],
}
METRICS_RESPONSES: Responses = {
    200: {
        "description": "Prometheus text exposition format 0.0.4",
        "content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}},
    }
}


def _text(max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": _NOT_BLANK}


def _fact_record() -> dict[str, Any]:
    name = {**_text(MAX_NAME_LENGTH), "pattern": NO_NUL}
    return {
        "type": "object",
        "description": "One actual daily volume of one series (extra fields are ignored).",
        "required": list(FACT_COLUMNS),
        "properties": {
            "date": {"type": "string", "format": "date", "description": "not after today"},
            **{col: name for col in TEXT_COLUMNS},
            "volume_tonnes": {"type": "number", "minimum": 0},
            "wagons": {"type": "integer", "minimum": 0, "maximum": MAX_WAGONS},
            REPORTED_AT: {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "optional: when the source produced the value; it orders "
                "the revisions (a stale copy gets 409)",
            },
        },
    }


def facts_request_body() -> dict[str, Any]:
    """The body of ``POST /facts``: JSON records (or ``{"facts": [...]}``) or CSV."""
    records = {"type": "array", "minItems": 1, "items": _fact_record()}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            records,
                            {
                                "type": "object",
                                "required": ["facts"],
                                "properties": {"facts": records},
                            },
                        ]
                    },
                    "example": [
                        {
                            "date": "2025-03-01",
                            "origin_station": "NSK",
                            "destination_station": "VLD",
                            "origin_region": "West Siberian",
                            "destination_region": "Far Eastern",
                            "cargo_type": "coal",
                            "volume_tonnes": 1200.5,
                            "wagons": 18,
                        }
                    ],
                },
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "pattern": _NOT_BLANK,
                        "description": "a header row with the record's fields, then one "
                        "row per fact",
                    }
                },
            },
        }
    }


_EVENT_ANSWERS = {
    "200": {
        "description": "Committed (`stored`) or already stored (`duplicate`)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventAnswer"}}},
    },
    "400": {
        "description": "Not a CloudEvent the collector can store; `error` says why",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Rejected"}}},
    },
    "409": {
        "description": "An event with this id and type was stored before from another "
        "source or with another body (a redelivery repeats both): not stored; `error` says so",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Conflict"}}},
    },
    "500": {
        "description": "The database refused this event (named in `error`)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StoreError"}}},
    },
    "503": {
        "description": "The database is unavailable: nothing was stored; send it again",
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "string", "pattern": r"^\d+$"},
            }
        },
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Unavailable"}}},
    },
}
_BOTH_MODES = (
    " Both `POST /` and `POST /events` accept both modes; this document shows binary mode "
    "on `/events` and structured mode on `/`, because OpenAPI cannot make the `ce-*` "
    "headers depend on the content type."
)


def _header(name: str, required: bool, max_length: int, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length, "pattern": NO_NUL}
    if required:
        schema.update(minLength=1, pattern=_NOT_BLANK)
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema,
    }


def event_paths() -> dict[str, Any]:
    """OpenAPI path items of the CloudEvent routes (binary mode on ``/events``,
    structured mode on ``/``)."""
    binary = {
        "summary": "One CloudEvent in binary mode (as KServe's payload logger sends it)",
        "description": (
            "Attributes in `ce-*` headers, the data (any JSON, or nothing) as the body. "
            "KServe sends `org.kubeflow.serving.inference.request` and `.response` events "
            "with the same `ce-id` for one inference; they are joined in either order. "
            "Other event types are stored too." + _BOTH_MODES
        ),
        "operationId": "post_event_binary",
        "tags": ["events"],
        "parameters": [
            _header("ce-id", True, MAX_ATTRIBUTE_LENGTH, "event id (the inference id)"),
            _header("ce-type", True, MAX_ATTRIBUTE_LENGTH, "event type"),
            _header("ce-source", True, MAX_SOURCE_LENGTH, "event source URI"),
            {
                "name": "ce-specversion",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "enum": SPECVERSIONS},
            },
            _header("ce-time", False, MAX_TIME_LENGTH, "event time (stored as sent)"),
            *(
                _header(f"ce-{name}", False, MAX_ATTRIBUTE_LENGTH, f"KServe extension: {name}")
                for name in ("inferenceservicename", "namespace", "component", "endpoint")
            ),
        ],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"description": "any JSON value"}}},
        },
        "responses": copy.deepcopy(_EVENT_ANSWERS),
    }
    structured = {
        "summary": "One CloudEvent in structured mode (application/cloudevents+json)",
        "description": "The attributes and the data in one JSON envelope." + _BOTH_MODES,
        "operationId": "post_event_structured",
        "tags": ["events"],
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents+json": {
                    "schema": {"$ref": "#/components/schemas/StructuredCloudEvent"}
                }
            },
        },
        "responses": copy.deepcopy(_EVENT_ANSWERS),
    }
    return {"/events": {"post": binary}, "/": {"post": structured}}


def event_schemas() -> dict[str, Any]:
    """Component schemas the CloudEvent routes refer to."""
    extension = {"type": "string", "maxLength": MAX_ATTRIBUTE_LENGTH, "pattern": NO_NUL}
    return {
        "StructuredCloudEvent": {
            "type": "object",
            "required": ["id", "type", "source", "specversion"],
            "properties": {
                "id": _text(MAX_ATTRIBUTE_LENGTH),
                "type": _text(MAX_ATTRIBUTE_LENGTH),
                "source": _text(MAX_SOURCE_LENGTH),
                "specversion": {"type": "string", "enum": SPECVERSIONS},
                "time": {"type": "string", "maxLength": MAX_TIME_LENGTH, "pattern": NO_NUL},
                "datacontenttype": extension,
                "inferenceservicename": extension,
                "namespace": extension,
                "component": extension,
                "endpoint": extension,
                "data": {"description": "the event's data: any JSON value"},
            },
            # any other attribute is an extension, stored with the event's attributes
            "additionalProperties": True,
        },
        **{
            name: model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, model in (
                ("EventAnswer", EventAnswer),
                ("Rejected", Rejected),
                ("Conflict", Conflict),
                ("StoreError", StoreError),
                ("Unavailable", Unavailable),
            )
        },
    }


_GATE = {
    "401": "No bearer token, or one the collector does not know (nothing was read)",
    "403": "The token lacks the scope this route needs (nothing was read)",
    "413": "The body is over the route's limit (refused before or while reading it)",
}


def document_gate(
    schema: dict[str, Any], scope_of: Callable[[str, str], str | None], *, guarded: bool
) -> None:
    """Add the gate's answers to ``schema`` in place: 413 on every operation with a request
    body; with ``guarded``, the ``bearer`` security scheme and, on every operation whose
    route needs a scope (``scope_of(method, path)``), its requirement and 401/403."""
    rejection = {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["status", "error"],
                "properties": {"status": {"const": "rejected"}, "error": {"type": "string"}},
            }
        }
    }
    if guarded:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer"}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            answers = operation.setdefault("responses", {})
            codes = ["413"] if "requestBody" in operation else []
            sample = path.replace("{inference_id}", "x")
            if guarded and scope_of(method.upper(), sample) is not None:
                operation["security"] = [{"bearer": []}]
                codes = ["401", "403", *codes]
            for code in codes:
                answers.setdefault(code, {"description": _GATE[code], "content": rejection})


def withdrawal_request_body() -> dict[str, Any]:
    """The withdrawal route's request body for the OpenAPI document (the handler reads and
    validates the JSON itself, so an error never echoes the input); the fact key's schema
    inlined."""
    schema = Withdrawal.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }
