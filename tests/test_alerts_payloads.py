"""Sentry payloads -> SentryAlert: every captured sample, odd and missing fields, caps, and a
fuzzer (wrong types at every field of every sample, random bytes, truncated JSON)."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes.sentry import SentryState
from fakes.sentry_sender import resource_of, sample, samples, variant

from bot.alerts.model import Resource, SentryAlert, dump, load
from bot.alerts.payloads import (
    PayloadError,
    enrich,
    key_of,
    parse_legacy,
    parse_polled,
    parse_stored,
    parse_webhook,
)


def raw(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def parse(payload: dict[str, Any], **kwargs: Any) -> SentryAlert | None:
    resource = resource_of(payload)
    if resource == "legacy":
        return parse_legacy(raw(payload), **kwargs)
    return parse_webhook(resource, raw(payload), **kwargs)


@pytest.mark.parametrize("name", sorted(samples()))
def test_every_sample_parses_and_survives_storage(name: str) -> None:
    payload = sample(name)
    alert = parse(payload)
    assert alert is not None and alert.title and alert.dedupe_key
    assert alert.subject in (f"sentry:{alert.issue_id}", f"metric:{alert.metric_id}")
    assert load(dump(alert)) == alert  # what the pipeline stores gives the same alert back
    stored = parse_stored(alert.resource.value, json.dumps(payload))
    assert stored == alert


def test_issue_fields() -> None:
    alert = parse(sample("issue_created_docs"))
    assert alert is not None
    assert (alert.resource, alert.action, alert.issue_id) == (Resource.ISSUE, "created",
                                                              "1170820242")
    assert (alert.short_id, alert.level, alert.status, alert.substatus) == (
        "FRONT-END-9", "error", "unresolved", "escalating")
    assert (alert.project, alert.count, alert.user_count) == ("front-end", 1, 1)
    assert alert.first_seen == datetime(2019, 8, 19, 20, 58, 37, 391000, tzinfo=UTC)
    assert alert.installation_uuid == "a8e5d37a-696c-4c54-adb5-b3f28d64c7de"
    assert alert.dedupe_key == "issue:1170820242:created:2019-08-19T20:58:37.391000Z:unresolved"


def test_issue_dedupe_keys_differ_by_action_last_seen_and_status() -> None:
    base = sample("issue_created")
    keys = {parse(variant(base, **change)).dedupe_key for change in (  # type: ignore[union-attr]
        {}, {"action": "resolved"}, {"last_seen": "2021-01-01T00:00:00Z"},
        {"status": "ignored"})}
    assert len(keys) == 4
    assert parse(base).dedupe_key == parse(variant(base, count=7)).dedupe_key  # type: ignore


def test_web_url_then_permalink_then_built() -> None:
    base = sample("issue_created")
    assert parse(base).web_url is None  # type: ignore[union-attr]
    built = parse(base, web_url="https://ligo.sentry.io/")
    assert built.web_url == "https://ligo.sentry.io/issues/1635244907/"  # type: ignore
    with_link = variant(base)
    with_link["data"]["issue"]["permalink"] = "https://ligo.sentry.io/issues/1635244907/?x=1"
    assert parse(with_link, web_url="https://other/").web_url.endswith("?x=1")  # type: ignore
    with_link["data"]["issue"]["web_url"] = "https://sentry.example/issues/1/"
    assert parse(with_link).web_url == "https://sentry.example/issues/1/"  # type: ignore
    with_link["data"]["issue"]["web_url"] = "javascript:alert(1)"  # not a link: ignored
    assert parse(with_link).web_url.startswith("https://ligo")  # type: ignore[union-attr]


def test_event_alert_fields() -> None:
    alert = parse(sample("event_alert_triggered_python"))
    assert alert is not None
    assert alert.dedupe_key == "event:599349254a1447a99774b5310711c1a8"
    assert alert.issue_id == "1635244907"  # from issue_url: this capture has no issue_id
    assert alert.project == "zulip-integration-testing"  # from the event's API url
    assert alert.web_url == ("https://sentry.io/organizations/hypro999-personal-organization/"
                             "issues/1635244907/")
    assert alert.event_url and alert.event_url.endswith("/events/599349254a1447a99774b5310711c1a8/")
    assert alert.triggered_rule == "Send a webhook payload to Webhook.site"
    assert alert.tag("server_name") == "hp-pavilion"
    assert [(f.filename, f.function, f.lineno) for f in alert.frames] == [
        ("trigger-exception.py", "<module>", 7)]
    assert alert.frames[0].context_line == '        raise Exception("Custom exception!")'


def test_event_alert_issue_id_field_wins_and_tags_as_dicts() -> None:
    payload = variant(sample("event_alert_triggered_python"), issue_id="77",
                      tags={"htcondor.cluster_id": "1234.0", "environment": "production"})
    payload["data"]["event"]["tags"].append({"key": "release", "value": "gwcelery@2.5"})
    alert = parse(payload)
    assert alert is not None and alert.issue_id == "77" and alert.subject == "sentry:77"
    assert alert.condor_job == "1234.0"
    assert alert.environment == "production" and alert.release == "gwcelery@2.5"


def test_frames_come_from_the_last_exception() -> None:
    payload = sample("event_alert_triggered_python")
    values = payload["data"]["event"]["exception"]["values"]
    cause = json.loads(json.dumps(values[0]))
    cause["stacktrace"]["frames"][0].update(function="cause", filename="cause.py")
    values.insert(0, cause)
    alert = parse(payload)
    assert alert is not None and [f.function for f in alert.frames] == ["<module>"]


def test_metric_alert_fields() -> None:
    alert = parse(sample("metric_alert_resolved_docs"))
    assert alert is not None
    assert (alert.resource, alert.action, alert.metric_id, alert.issue_id) == (
        Resource.METRIC_ALERT, "resolved", "4", None)
    assert alert.subject == "metric:4" and alert.dedupe_key == "metric:4:resolved"
    assert (alert.title, alert.project, alert.status) == ("Resolved: Too many errors", "bar",
                                                          "resolved")
    assert alert.web_url == "https://sentry.io/organizations/baz/alerts/1/"
    levels = {action: parse(variant(sample("metric_alert_resolved_docs"), action=action)).level
              for action in ("critical", "warning", "resolved")}  # type: ignore[union-attr]
    assert levels == {"critical": "fatal", "warning": "warning", "resolved": "info"}


def test_legacy_fields_share_the_event_dedupe_key() -> None:
    alert = parse_legacy(raw(sample("legacy_webhooks_plugin_python")))
    assert (alert.resource, alert.action, alert.issue_id) == (Resource.LEGACY, "triggered",
                                                              "4311163364")
    assert alert.dedupe_key == "event:b465c7ca9581475093a6f5c3c6a523d2"
    assert alert.web_url == "https://nitk-46.sentry.io/issues/4311163364/"
    assert alert.project == "python-raven" and alert.triggered_rule == "a"
    assert alert.frames[0].context_line == "    1 / 0"
    same = variant(sample("event_alert_triggered_python"),
                   event_id="b465c7ca9581475093a6f5c3c6a523d2")
    assert parse(same).dedupe_key == alert.dedupe_key  # type: ignore[union-attr]


@pytest.mark.parametrize("resource", ["installation", "comment", "error", "", "ISSUE", "x" * 500])
def test_other_resources_are_ignored(resource: str) -> None:
    assert parse_webhook(resource, b"not even json") is None  # not even looked at


@pytest.mark.parametrize("resource,action", [("issue", "archived"), ("issue", None),
                                             ("event_alert", "created"),
                                             ("metric_alert", ["critical"])])
def test_unknown_actions_are_ignored_with_one_line(resource: str, action: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bot.alerts.payloads")
    payload = {"action": action, "data": {}}
    for _ in range(3):
        assert parse_webhook(resource, raw(payload)) is None
    lines = [r for r in caplog.records if r.name == "bot.alerts.payloads"]
    assert len(lines) <= 1 and all(r.levelno == logging.INFO and not r.exc_info for r in lines)


def test_text_is_capped_and_one_line() -> None:
    payload = variant(sample("issue_created"), title="A\nB\x00" + "x" * 5000)
    payload["data"]["issue"]["culprit"] = "c" * 5000
    alert = parse(payload)
    assert alert is not None and len(alert.title) <= 500 and len(alert.culprit or "") <= 300
    assert alert.title.startswith("A B ") and "\n" not in alert.title


def test_many_tags_and_frames_are_bounded() -> None:
    payload = sample("event_alert_triggered_python")
    event = payload["data"]["event"]
    event["tags"] = [[f"k{i}", "v" * 1000] for i in range(500)]
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][0]
    event["exception"]["values"][0]["stacktrace"]["frames"] = [frame] * 300
    alert = parse(payload)
    assert alert is not None and len(alert.tags) <= 50 and len(alert.frames) <= 40
    assert all(len(value) <= 200 for _, value in alert.tags)


@pytest.mark.parametrize("count,expected", [("12", 12), (12, 12), ("-1", None), ("1e9", None),
                                            (True, None), (None, None), ("9" * 40, None)])
def test_counts(count: Any, expected: int | None) -> None:
    payload = sample("issue_created")
    payload["data"]["issue"]["count"] = count
    alert = parse(payload)
    assert alert is not None and alert.count == expected


def test_polled_issue_from_the_api() -> None:
    state = SentryState()
    issue = state.add_issue("55", project="gwcelery", count=3)
    alert = parse_polled(issue, web_url=None)
    assert (alert.resource, alert.action, alert.count) == (Resource.POLL, "seen", 3)
    assert alert.dedupe_key == f"poll:55:{issue['lastSeen']}:unresolved"
    assert alert.subject == "sentry:55" and alert.web_url == issue["permalink"]
    assert parse_stored("poll", json.dumps(issue)) == alert
    with pytest.raises(PayloadError):
        parse_polled({"title": "no id"})


def test_enrich_fills_what_event_alerts_lack() -> None:
    state = SentryState()
    issue = state.add_issue("1635244907", count=42, user_count=3,
                            tags={"htcondor.cluster_id": "99.1"})
    alert = parse(sample("event_alert_triggered_python"))
    assert alert is not None and alert.count is None
    rich = enrich(alert, issue, state.events["1635244907"])
    assert (rich.count, rich.user_count, rich.short_id) == (42, 3, issue["shortId"])
    assert rich.first_seen is not None and rich.condor_job == "99.1"
    assert rich.environment == "production" and rich.release == "gwcelery@2.5.0"
    assert [f.in_app for f in rich.frames] == [False, True]
    assert rich.frames[1].context_line == "        raise TimeoutError('too long')"
    assert rich.web_url == alert.web_url  # the payload's link stays
    assert enrich(alert, None, None) == alert
    assert enrich(alert, {"count": {"x": 1}, "id": []}, {"entries": "junk"}) == alert


# ----------------------------------------------------------------------------- fuzz

JUNK: list[Any] = [None, True, 0, -1, 2**70, 1.5e308, float("nan"), "", "x" * 3000,
                   "\x00\u2028\ud800", [], [None], {}, {"a": {"b": []}}, [[1, 2, 3]]]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document (keys and list indexes), the root excluded."""
    found: list[tuple[Any, ...]] = []
    children = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, child in children:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def replaced(doc: Any, path: tuple[Any, ...], junk: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = junk
    return doc


def key_outcome(resource: str, body: bytes) -> Any:
    try:
        alert = key_of(resource, body)
    except PayloadError:
        return "refused"
    return None if alert is None else (alert.resource, alert.action, alert.dedupe_key,
                                       alert.subject)


def parse_any(resource: str, body: bytes) -> None:
    """Only an alert, None or PayloadError may come out; and the ack's key_of agrees with the
    full parse (the same row is stored as the processor will read it)."""
    if resource != "poll":
        try:
            full = parse_legacy(body) if resource == "legacy" else parse_webhook(resource, body)
        except PayloadError:
            expected: Any = "refused"
        else:
            expected = None if full is None else (full.resource, full.action,
                                                   full.dedupe_key, full.subject)
        assert key_outcome(resource, body) == expected
    try:
        if resource == "legacy":
            alert = parse_legacy(body)
        elif resource == "poll":
            alert = parse_stored("poll", body.decode("utf-8", "replace"))
        else:
            alert = parse_webhook(resource, body)
    except PayloadError as exc:
        assert 0 < len(str(exc)) <= 120
        return
    if alert is not None:
        assert len(alert.title) <= 500 and len(alert.dedupe_key) <= 300
        load(dump(alert))  # whatever was accepted can be stored and read back


@pytest.mark.parametrize("name", sorted(samples()))
def test_fuzz_wrong_types_at_every_field(name: str) -> None:
    payload = sample(name)
    resource = resource_of(payload)
    rng = random.Random(name)
    for path in paths(payload):
        for junk in rng.sample(JUNK, 4):
            doc = replaced(payload, path, junk)
            parse_any(resource, json.dumps(doc, allow_nan=True).encode())


@pytest.mark.parametrize("name", sorted(samples()))
def test_fuzz_truncated_and_flipped_bytes(name: str) -> None:
    body = json.dumps(sample(name)).encode()
    resource = resource_of(sample(name))
    for cut in range(0, len(body), max(1, len(body) // 300)):
        parse_any(resource, body[:cut])
    rng = random.Random(name)
    for _ in range(300):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        parse_any(resource, bytes(mutated))


def test_fuzz_random_bytes_and_shapes() -> None:
    rng = random.Random(14)
    for _ in range(500):
        body = rng.randbytes(rng.randint(0, 200))
        for resource in ("issue", "event_alert", "metric_alert", "legacy", "poll"):
            parse_any(resource, body)
    for doc in ([], "x", 1, None, {"action": "created"}, {"action": "created", "data": []},
                {"action": "triggered", "data": {"event": {"event_id": "../../etc"}}},
                {"id": 1, "event": {"id": "a" * 41}}, "[" * 100_000 + "]" * 100_000):
        for resource in ("issue", "event_alert", "metric_alert", "legacy", "poll"):
            parse_any(resource, json.dumps(doc).encode())


def test_ids_are_checked() -> None:
    for bad in ("", "../x", "a b", "x" * 41, 1.5, True, None, ["1"]):
        payload = variant(sample("issue_created"), issue_id=bad)
        with pytest.raises(PayloadError, match=r"issue\.id"):
            parse(payload)
    assert parse(variant(sample("issue_created"), issue_id=123)).issue_id == "123"  # type: ignore


def test_enrich_keeps_the_deliverys_tags_and_adds_the_latest_events() -> None:
    alert = SentryAlert(Resource.EVENT_ALERT, "triggered", "event:1", issue_id="1",
                        tags=(("htcondor.cluster_id", "12.0"), ("server_name", "emfollow")))
    event = {"tags": [{"key": "htcondor.cluster_id", "value": "99.0"},
                      {"key": "release", "value": "gwcelery@2.1"}]}
    enriched = enrich(alert, None, event)
    assert enriched.condor_job == "12.0"
    assert enriched.tag("release") == "gwcelery@2.1"
    assert enriched.tag("server_name") == "emfollow"
