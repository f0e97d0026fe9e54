"""Parsing CloudEvents (binary and structured mode) as KServe's payload logger sends them."""

from __future__ import annotations

import base64
import json

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from freightml.collector.events import (
    REQUEST_TYPE,
    RESPONSE_TYPE,
    BadEventError,
    event_from_http,
    kserve_cloudevent,
)

pytestmark = [pytest.mark.unit]

BODY = {"instances": [{"origin_station": "NSK", "destination_station": "VLD"}]}


def test_binary_event_keeps_kserve_attributes_and_the_body_as_sent() -> None:
    event = kserve_cloudevent(
        "request", "abc-1", BODY, inference_service="fv", namespace="ml", endpoint="canary"
    )
    headers, body = to_binary(event)
    parsed = event_from_http(headers, body)
    assert (parsed.event_id, parsed.event_type, parsed.kind) == ("abc-1", REQUEST_TYPE, "request")
    assert parsed.source == "http://localhost:9081/"  # the agent's default source
    assert (parsed.inference_service, parsed.namespace, parsed.component, parsed.endpoint) == (
        "fv",
        "ml",
        "predictor",
        "canary",
    )
    assert parsed.time == headers["ce-time"]
    assert parsed.content_type == "application/json"
    assert parsed.body == body.decode()
    assert parsed.data() == BODY
    assert parsed.attributes["inferenceservicename"] == "fv"


def test_structured_event_parses_like_binary() -> None:
    headers, body = to_structured(kserve_cloudevent("response", "abc-2", {"predictions": []}))
    parsed = event_from_http(headers, body)
    assert parsed.event_type == RESPONSE_TYPE and parsed.kind == "response"
    assert parsed.data() == {"predictions": []}
    assert json.loads(parsed.body or "") == {"predictions": []}


def test_kserve_extras_such_as_metadata_are_kept() -> None:
    headers, body = to_binary(kserve_cloudevent("request", "abc-3", BODY))
    headers["ce-metadata"] = json.dumps({"X-Request-Id": ["r-1"]})
    assert json.loads(event_from_http(headers, body).attributes["metadata"]) == {
        "X-Request-Id": ["r-1"]
    }


def test_missing_time_is_not_invented() -> None:
    headers, body = to_binary(kserve_cloudevent("request", "abc-4", BODY))
    del headers["ce-time"]
    parsed = event_from_http(headers, body)
    assert parsed.time is None and "time" not in parsed.attributes


def test_structured_data_base64_is_decoded() -> None:
    envelope = {
        "specversion": "1.0",
        "id": "b64",
        "type": REQUEST_TYPE,
        "source": "x",
        "data_base64": base64.b64encode(json.dumps(BODY).encode()).decode(),
    }
    headers = {"content-type": "application/cloudevents+json"}
    assert event_from_http(headers, json.dumps(envelope).encode()).data() == BODY


def test_empty_body_is_stored_as_none() -> None:
    headers, _ = to_binary(kserve_cloudevent("request", "abc-5", None))
    assert event_from_http(headers, b"").body is None


@pytest.mark.parametrize(
    ("drop", "named"),
    [("ce-id", "ce-id"), ("ce-type", "ce-type"), ("ce-source", "ce-source")],
)
def test_missing_binary_headers_are_named(drop: str, named: str) -> None:
    headers, body = to_binary(kserve_cloudevent("request", "abc-6", BODY))
    del headers[drop]
    with pytest.raises(BadEventError, match=f"missing header\\(s\\) {named}"):
        event_from_http(headers, body)


def test_plain_post_without_headers_explains_both_modes() -> None:
    with pytest.raises(BadEventError, match="structured mode needs Content-Type"):
        event_from_http({"content-type": "application/json"}, b"{}")


def test_bad_json_body_is_rejected_with_the_parser_message() -> None:
    headers, _ = to_binary(kserve_cloudevent("request", "abc-7", BODY))
    with pytest.raises(BadEventError, match="body is not valid JSON: Expecting"):
        event_from_http(headers, b'{"instances": [')


def test_unsupported_specversion_is_rejected() -> None:
    headers, body = to_binary(kserve_cloudevent("request", "abc-8", BODY))
    headers["ce-specversion"] = "9.9"
    with pytest.raises(BadEventError, match="specversion"):
        event_from_http(headers, body)


def test_non_json_content_type_is_rejected() -> None:
    headers, _ = to_binary(kserve_cloudevent("request", "abc-9", BODY))
    headers["content-type"] = "application/octet-stream"
    with pytest.raises(BadEventError, match="unsupported content-type"):
        event_from_http(headers, b"\x00\x01")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "structured CloudEvent body is not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"specversion": "1.0", "type": "t", "source": "s"}', "missing attribute\\(s\\) id"),
    ],
)
def test_bad_structured_events_are_rejected(body: bytes, message: str) -> None:
    with pytest.raises(BadEventError, match=message):
        event_from_http({"content-type": "application/cloudevents+json"}, body)


def test_overlong_id_is_rejected() -> None:
    event = CloudEvent({"id": "x" * 300, "type": REQUEST_TYPE, "source": "s"}, BODY)
    headers, body = to_binary(event)
    with pytest.raises(BadEventError, match="id is longer than 255"):
        event_from_http(headers, body)


def test_other_event_types_have_no_kind() -> None:
    headers, body = to_binary(CloudEvent({"type": "com.example.other", "source": "s"}, {}))
    assert event_from_http(headers, body).kind is None


@pytest.mark.parametrize("attribute", ["id", "inferenceservicename"])
def test_a_nul_character_in_an_attribute_is_rejected(attribute: str) -> None:
    envelope = {"id": "a", "type": "t", "source": "s", "specversion": "1.0", attribute: "x\x00"}
    headers = {"content-type": "application/cloudevents+json"}
    with pytest.raises(BadEventError, match=f"attribute {attribute} contains a NUL"):
        event_from_http(headers, json.dumps(envelope).encode())


def test_the_openapi_pattern_and_the_server_agree_on_blank_attributes() -> None:
    """A schema-valid id/type/source is never rejected as blank (a fuzzer found "\\x1c":
    blank to Python's str.strip, visible to the ECMAScript pattern), and the reverse."""
    import re

    from freightml.collector.events import BLANK_CHARS, is_blank
    from freightml.collector.openapi import _NOT_BLANK

    pattern = re.compile(_NOT_BLANK)
    for c in [*BLANK_CHARS, "\x1c", "\x85", "\u2028", "\ufeff", "\u3000"]:
        assert is_blank(c * 2) and not pattern.match(c * 2), repr(c)
    for value in ["a", " x ", "\x1cx", "é"]:
        assert not is_blank(value) and pattern.match(value), repr(value)
