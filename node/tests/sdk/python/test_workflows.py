"""Workflows through the official SDK: workflows pushed through the management API, triggers and
cancels through `knockapi`, results read back through another node's in-app feed.

Extra environment (set by node/tests/sdk_python.rs):
  HERALD_SERVICE_TOKEN  the management API's service token
  HERALD_SPREAD_USERS   comma-separated user ids that live on different shards
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, Dict, List

import httpx
import knockapi
import pytest

from conftest import RUN_ID, Nodes, new_id


def _service_token() -> str:
    token = os.environ.get("HERALD_SERVICE_TOKEN")
    if not token:
        raise RuntimeError("set HERALD_SERVICE_TOKEN to the management API's service token")
    return token


def spread_users() -> List[str]:
    """User ids that live on different shards (chosen by the Rust harness)."""
    users = [u for u in os.environ.get("HERALD_SPREAD_USERS", "").split(",") if u]
    return users or [new_id(f"spread-{i}") for i in range(4)]


def push_workflow(kn: Nodes, name: str, workflow: Dict[str, Any]) -> str:
    """Upsert `workflow` through the management API under a key of this run; the key."""
    key = f"py-{name}-{RUN_ID}"
    r = httpx.put(
        f"{kn.w_url}/v1/workflows/{key}",
        params={"environment": "development"},
        json={"workflow": workflow},
        headers={"Authorization": f"Bearer {_service_token()}"},
        timeout=30.0,
    )
    assert r.status_code == 200, r.text
    body = r.json()["workflow"]
    assert body["key"] == key and body["active"] is True and body["valid"] is True
    return key


def in_app_step(ref: str, body: str, conditions: Any = None) -> Dict[str, Any]:
    step: Dict[str, Any] = {
        "ref": ref,
        "type": "channel",
        "channel_key": "in-app",
        "channel_type": "in_app_feed",
        "template": {"markdown_body": body},
    }
    if conditions is not None:
        step["conditions"] = conditions
    return step


def feed(client: knockapi.Knock, user: str, **params: Any) -> Dict[str, Any]:
    """The raw feed response (entries, page_info, meta), after the SDK validated each entry."""
    raw = client.users.feeds.with_raw_response.list_items(user, "in-app", **params)
    page = raw.parse()
    body = raw.http_response.json()
    assert len(page.entries) == len(body["entries"])
    return body


def wait_feed(client: knockapi.Knock, user: str, count: int, **params: Any) -> Dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body = feed(client, user, **params)
        if len(body["entries"]) >= count or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_triggered_messages_reach_feeds_with_rendered_liquid_and_exact_counts(kn: Nodes) -> None:
    key = push_workflow(
        kn,
        "comment",
        {
            "name": "New comment",
            "categories": ["social"],
            "steps": [in_app_step("feed", "**{{ actor.name }}** said {{ comment }} to {{ recipient.name }}")],
        },
    )
    users = spread_users()
    actor = new_id("actor")
    result = kn.w.workflows.trigger(
        key,
        recipients=[{"id": u, "name": f"Name {i}"} for i, u in enumerate(users)],
        actor={"id": actor, "name": "Alice"},
        data={"comment": "hello"},
    )
    uuid.UUID(result.workflow_run_id)
    for i, u in enumerate(users):
        body = wait_feed(kn.r, u, 1)
        assert len(body["entries"]) == 1, body
        item = body["entries"][0]
        block = item["blocks"][0]
        assert block["content"] == f"**Alice** said hello to Name {i}"
        assert "<strong>Alice</strong> said hello to Name" in block["rendered"]
        assert item["source"]["key"] == key and item["source"]["categories"] == ["social"]
        assert body["meta"]["total_count"] == 1
        assert body["meta"]["unread_count"] == 1
        assert body["meta"]["unseen_count"] == 1

    # A second trigger, then status changes: the counts follow exactly.
    u = users[0]
    kn.w.workflows.trigger(key, recipients=[u], actor=actor, data={"comment": "again"})
    body = wait_feed(kn.r, u, 2)
    assert [e["blocks"][0]["content"] for e in body["entries"]] == [
        "**Alice** said again to Name 0",
        "**Alice** said hello to Name 0",
    ]
    newest = body["entries"][0]["id"]
    kn.w.messages.mark_as_read(newest)
    kn.w.messages.batch.mark_as_seen(message_ids=[e["id"] for e in body["entries"]])
    meta = feed(kn.r, u)["meta"]
    assert (meta["total_count"], meta["unread_count"], meta["unseen_count"]) == (2, 1, 0)
    assert len(feed(kn.r, u, status="unread")["entries"]) == 1


def test_preferences_block_opted_out_users(kn: Nodes) -> None:
    key = push_workflow(
        kn,
        "promo",
        {"name": "Promo", "categories": ["marketing"], "steps": [in_app_step("feed", "Sale!")]},
    )
    tenant = new_id("tenant")
    kn.w.tenants.set(tenant, name="Acme")
    users = {name: new_id(f"pref-{name}") for name in ["ok", "type", "workflow", "category", "tenant"]}
    for u in users.values():
        kn.w.users.update(u, name=u)
    kn.w.users.set_preferences(users["type"], "default", channel_types={"in_app_feed": False})
    kn.w.users.set_preferences(users["workflow"], "default", workflows={key: False})
    kn.w.users.set_preferences(users["category"], "default", categories={"marketing": False})
    kn.w.users.set_preferences(users["tenant"], tenant, channel_types={"in_app_feed": False})

    kn.w.workflows.trigger(key, recipients=list(users.values()), tenant=tenant)
    assert len(wait_feed(kn.r, users["ok"], 1)["entries"]) == 1
    for name in ["type", "workflow", "category", "tenant"]:
        assert feed(kn.r, users[name])["entries"] == [], name
    # The skipped step is on the run.
    runs = kn.r.workflow_recipient_runs.list(recipient=users["category"], workflow=key)
    run = kn.r.workflow_recipient_runs.get(runs.items[0].id)
    assert any(e.event == "step_skipped_preferences" for e in run.events), run.events


def test_step_conditions_pick_the_right_steps(kn: Nodes) -> None:
    key = push_workflow(
        kn,
        "cond",
        {
            "name": "Conditions",
            "steps": [
                in_app_step(
                    "urgent",
                    "urgent {{ title }}",
                    {"all": [{"variable": "data.priority", "operator": "equal_to", "argument": "high"}]},
                ),
                in_app_step(
                    "normal",
                    "normal {{ title }}",
                    {"all": [{"variable": "data.priority", "operator": "not_equal_to", "argument": "high"}]},
                ),
                in_app_step(
                    "vip",
                    "vip",
                    {
                        "any": [
                            {"variable": "recipient.plan", "operator": "contains", "argument": "enterprise"},
                            {"variable": "data.amount", "operator": "greater_than", "argument": 1000},
                        ]
                    },
                ),
            ],
        },
    )
    hi, lo = new_id("cond-hi"), new_id("cond-lo")
    kn.w.workflows.trigger(key, recipients=[{"id": hi, "plan": "enterprise-2"}], data={"priority": "high", "title": "A"})
    kn.w.workflows.trigger(key, recipients=[lo], data={"priority": "low", "title": "B", "amount": 10})
    hi_feed = wait_feed(kn.r, hi, 2)["entries"]
    lo_feed = wait_feed(kn.r, lo, 1)["entries"]
    assert sorted(e["blocks"][0]["content"] for e in hi_feed) == ["urgent A", "vip"]
    assert [e["blocks"][0]["content"] for e in lo_feed] == ["normal B"]


def test_idempotency_key_replays_the_first_run(kn: Nodes) -> None:
    key = push_workflow(kn, "idem", {"name": "Idem", "steps": [in_app_step("feed", "once")]})
    user = new_id("idem")
    idem = f"idem-{uuid.uuid4()}"
    first = kn.w.workflows.with_raw_response.trigger(
        key, recipients=[user], data={"n": 1}, extra_headers={"Idempotency-Key": idem}
    )
    again = kn.r.workflows.with_raw_response.trigger(
        key, recipients=[user], data={"n": 1}, extra_headers={"Idempotency-Key": idem}
    )
    assert again.parse().workflow_run_id == first.parse().workflow_run_id
    assert again.headers.get("idempotent-replayed") == "true"
    assert first.headers.get("idempotent-replayed") is None
    time.sleep(0.5)
    assert len(feed(kn.r, user)["entries"]) == 1
    with pytest.raises(knockapi.UnprocessableEntityError):
        kn.w.workflows.trigger(key, recipients=[user], data={"n": 2}, extra_headers={"Idempotency-Key": idem})


def test_missing_and_inactive_workflows_are_refused(kn: Nodes) -> None:
    with pytest.raises(knockapi.NotFoundError) as missing:
        kn.w.workflows.trigger(f"py-missing-{RUN_ID}", recipients=["u"])
    assert missing.value.body["code"] == "workflow_missing"
    key = push_workflow(kn, "inactive", {"name": "Inactive", "steps": [in_app_step("feed", "x")]})
    r = httpx.put(
        f"{kn.w_url}/v1/workflows/{key}/activate",
        json={"status": False},
        headers={"Authorization": f"Bearer {_service_token()}"},
    )
    assert r.status_code == 200 and r.json()["workflow"]["active"] is False
    with pytest.raises(knockapi.UnprocessableEntityError) as inactive:
        kn.w.workflows.trigger(key, recipients=["u"])
    assert inactive.value.body["code"] == "workflow_inactive"


def test_cancel_stops_a_delayed_run(kn: Nodes) -> None:
    key = push_workflow(
        kn,
        "cancel",
        {
            "name": "Delayed",
            "steps": [
                {"ref": "wait", "type": "delay", "settings": {"delay_for": {"unit": "seconds", "value": 2}}},
                in_app_step("feed", "after the delay"),
            ],
        },
    )
    keep, stop = new_id("cancel-keep"), new_id("cancel-stop")
    ck = f"ck-{uuid.uuid4()}"
    kn.w.workflows.trigger(key, recipients=[keep, stop], cancellation_key=ck)
    kn.r.workflows.cancel(key, cancellation_key=ck, recipients=[stop])
    assert len(wait_feed(kn.r, keep, 1)["entries"]) == 1
    time.sleep(1.0)
    assert feed(kn.r, stop)["entries"] == []
    runs = kn.r.workflow_recipient_runs.list(recipient=stop, workflow=key)
    assert [r.status for r in runs.items] == ["cancelled"]


def test_once_per_recipient_runs_once(kn: Nodes) -> None:
    key = push_workflow(
        kn,
        "once",
        {"name": "Once", "trigger_frequency": "once_per_recipient", "steps": [in_app_step("feed", "only once")]},
    )
    user = new_id("once")
    kn.w.workflows.trigger(key, recipients=[user])
    kn.w.workflows.trigger(key, recipients=[user])
    assert len(wait_feed(kn.r, user, 1)["entries"]) == 1
    time.sleep(0.5)
    assert len(feed(kn.r, user)["entries"]) == 1


def test_data_times_recipients_is_bounded(kn: Nodes) -> None:
    key = push_workflow(kn, "fanout", {"name": "Fanout", "steps": [in_app_step("feed", "x")]})
    users = [new_id(f"fan-{i}") for i in range(1000)]
    with pytest.raises(knockapi.UnprocessableEntityError) as refused:
        kn.w.workflows.trigger(key, recipients=users, data={"blob": "x" * 40_000})
    assert refused.value.body["code"] == "invalid_params"
    assert "recipients" in refused.value.body["message"]
    assert feed(kn.r, users[0])["entries"] == []
