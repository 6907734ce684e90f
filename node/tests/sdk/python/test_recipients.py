"""Every "recipients" endpoint (users, objects, tenants, their channel data, preferences and bulk
operations) driven through the official `knockapi` SDK with strict response validation.

Writes go through `kn.w`, read-backs through `kn.r` (a different node when HERALD_URLS names several).
Ids are unique per run, so the suite can be rerun against the same environment.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import httpx
import knockapi
import pytest
from knockapi.types.recipients import ChannelData, PreferenceSet
from knockapi.types.shared import PageInfo

from conftest import RUN_ID, Nodes, make_client, new_id, wait_bulk

ERROR_KEYS = {"code", "message", "status", "type"}


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def extras(model: Any) -> Dict[str, Any]:
    """Undeclared (custom) top-level properties of a User / Tenant / Object response."""
    return dict(model.model_extra or {})


def assert_error_body(body: Any, status: int, *, exact: bool) -> None:
    assert isinstance(body, dict), body
    if exact:
        assert set(body) == ERROR_KEYS, body
    else:
        assert ERROR_KEYS <= set(body), body
    assert isinstance(body["code"], str) and body["code"], body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["type"], str) and body["type"], body
    assert body["status"] == status, body


def assert_not_found(call, *args, **kwargs) -> None:
    with pytest.raises(knockapi.NotFoundError) as exc:
        call(*args, **kwargs)
    assert exc.value.status_code == 404
    assert_error_body(exc.value.body, 404, exact=False)


def assert_page_info(body: Dict[str, Any], *, page_size: int, container: str = "entries") -> PageInfo:
    """The SDK's page class only reads page_info.after; validate the full PageInfo model here."""
    assert isinstance(body.get(container), list), body
    info = PageInfo.model_validate(body["page_info"])
    assert info.api_typename == "PageInfo"
    assert info.page_size == page_size
    assert len(body[container]) <= page_size
    return info


def channel_types(ps: PreferenceSet) -> Dict[str, Any]:
    if ps.channel_types is None:
        return {}
    return {k: v for k, v in ps.channel_types.to_dict().items() if v is not None}


def is_empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def prefs_by_id(value: Any) -> Dict[str, Dict[str, Any]]:
    """`include[]=preferences` output, as {set_id: set}; accepts a list of sets or a map keyed by id."""
    if isinstance(value, list):
        return {p["id"]: p for p in value}
    assert isinstance(value, dict), value
    if isinstance(value.get("id"), str):
        return {value["id"]: value}
    return value


def assert_push_data(cd: ChannelData, channel_id: str, tokens: List[str]) -> None:
    assert cd.api_typename == "ChannelData"
    assert cd.channel_id == channel_id
    data = cd.data.to_dict()
    assert data["tokens"] == tokens, data
    assert sorted(d["token"] for d in data["devices"]) == sorted(tokens), data


def identify(client: knockapi.Knock, user_id: str, **kwargs: Any):
    custom = kwargs.pop("custom", None)
    return client.users.update(user_id, extra_body=custom, **kwargs)


def walk_until_found(first_page, wanted: set, *, max_pages: int = 2000) -> Tuple[List[Any], int]:
    """Follow page_info.after until every wanted id was seen; return (all entries seen, pages read)."""
    seen: List[Any] = []
    page = first_page
    pages = 1
    while True:
        seen.extend(page.entries)
        if wanted <= {e.id for e in seen}:
            return seen, pages
        if not page.has_next_page():
            return seen, pages
        assert pages < max_pages, "too many pages before finding the created records"
        page = page.get_next_page()
        pages += 1


# ---------------------------------------------------------------------------------------------------------
# users: identify / get / list / delete / merge
# ---------------------------------------------------------------------------------------------------------


def test_identify_creates_then_merges_flat_custom_properties(kn: Nodes, cleanup, push_channel_id):
    uid = new_id("user")
    cleanup(lambda: kn.w.users.delete(uid))
    token = f"tok-{uuid.uuid4().hex}"

    u = identify(
        kn.w,
        uid,
        name="Ada Lovelace",
        email=f"{uid}@example.com",
        phone_number="+15555550100",
        avatar="https://example.com/ada.png",
        timezone="Europe/London",
        locale="en-GB",
        created_at="2024-01-02T03:04:05Z",
        channel_data={push_channel_id: {"tokens": [token]}},
        preferences={"default": {"channel_types": {"email": False}}},
        custom={"plan": "pro", "seats": 3, "flags": {"beta": True}},
    )
    assert u.api_typename == "User"
    assert u.id == uid
    assert u.name == "Ada Lovelace"
    assert u.email == f"{uid}@example.com"
    assert u.phone_number == "+15555550100"
    assert u.avatar == "https://example.com/ada.png"
    assert u.timezone == "Europe/London"
    assert u.created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert u.updated_at.tzinfo is not None
    ex = extras(u)
    assert ex["plan"] == "pro" and ex["seats"] == 3 and ex["flags"] == {"beta": True}
    # custom properties are flat, never nested under "properties"
    assert "properties" not in ex

    # second identify only names some fields: the rest is kept, custom props merge
    u2 = identify(kn.w, uid, email=f"new-{uid}@example.com", custom={"plan": "enterprise", "team": "core"})
    assert u2.id == uid
    assert u2.name == "Ada Lovelace"
    assert u2.email == f"new-{uid}@example.com"
    assert u2.phone_number == "+15555550100"
    ex2 = extras(u2)
    assert ex2["plan"] == "enterprise"
    assert ex2["team"] == "core"
    assert ex2["seats"] == 3
    assert ex2["flags"] == {"beta": True}
    assert u2.updated_at >= u.updated_at

    # read back through the other node
    got = kn.r.users.get(uid)
    assert got.api_typename == "User"
    assert got.id == uid and got.name == "Ada Lovelace" and got.email == f"new-{uid}@example.com"
    assert extras(got)["plan"] == "enterprise" and extras(got)["team"] == "core" and extras(got)["seats"] == 3
    assert got.created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    # inline channel data and preferences were stored
    assert_push_data(kn.r.users.get_channel_data(uid, push_channel_id), push_channel_id, [token])
    ps = kn.r.users.get_preferences(uid, "default")
    assert ps.id == "default"
    assert channel_types(ps) == {"email": False}

    # inline preferences deep-merge into the existing set
    identify(kn.w, uid, preferences={"default": {"workflows": {"welcome": False}}})
    ps2 = kn.r.users.get_preferences(uid, "default")
    assert channel_types(ps2) == {"email": False}
    assert ps2.workflows == {"welcome": False}


def test_get_unknown_user_is_404_with_knock_error_body(kn: Nodes):
    assert_not_found(kn.r.users.get, new_id("missing"))


def test_delete_user(kn: Nodes, push_channel_id):
    uid = new_id("user")
    identify(kn.w, uid, name="To Delete", channel_data={push_channel_id: {"tokens": ["t-del"]}})
    assert kn.r.users.get(uid).id == uid

    resp = kn.w.users.with_raw_response.delete(uid)
    assert resp.status_code == 204
    assert resp.parse() is None

    assert_not_found(kn.r.users.get, uid)
    assert_not_found(kn.w.users.get, uid)
    assert_not_found(kn.r.users.get_channel_data, uid, push_channel_id)


def test_users_list_follows_cursor_through_all_pages(kn: Nodes, cleanup):
    page_size = 5
    ids = [new_id(f"list{i:02d}") for i in range(page_size * 2 + 2)]  # 12 users > 2 pages
    for uid in ids:
        cleanup(lambda uid=uid: kn.w.users.delete(uid))
        identify(kn.w, uid, name=f"Lister {uid[-8:]}", custom={"run": RUN_ID})

    # raw first page: full PageInfo shape
    raw = kn.r.users.with_raw_response.list(page_size=page_size, order="desc")
    body = raw.json()
    info = assert_page_info(body, page_size=page_size)
    assert len(body["entries"]) == page_size
    assert isinstance(info.after, str) and info.after
    # a cursor is stable: asking again for the same `after` gives the same page
    p_a = kn.r.users.list(page_size=page_size, order="desc", after=info.after)
    p_b = kn.w.users.list(page_size=page_size, order="desc", after=info.after)
    assert [e.id for e in p_a.entries] == [e.id for e in p_b.entries]
    assert not ({e["id"] for e in body["entries"]} & {e.id for e in p_a.entries})

    # newest first: our 12 users are near the front; follow page_info.after until we have them all
    seen, pages = walk_until_found(kn.r.users.list(page_size=page_size, order="desc"), set(ids))
    seen_ids = [e.id for e in seen]
    assert len(seen_ids) == len(set(seen_ids)), "a user appeared on two pages"
    assert set(ids) <= set(seen_ids), "cursor walk did not return every created user"
    assert pages >= 3
    mine = [i for i in seen_ids if i in set(ids)]
    assert mine == list(reversed(ids)), "order=desc must return newest first"
    for e in seen:
        assert e.api_typename == "User"
        if e.id in ids:
            assert extras(e)["run"] == RUN_ID

    # oldest first is accepted too and pages the same way
    asc = kn.r.users.list(page_size=page_size, order="asc")
    assert len(asc.entries) == page_size
    assert asc.has_next_page()


def test_users_list_include_preferences(kn: Nodes, cleanup):
    uid = new_id("user")
    cleanup(lambda: kn.w.users.delete(uid))
    identify(kn.w, uid, name="Prefs In List", preferences={"default": {"channel_types": {"sms": False}}})

    seen, _ = walk_until_found(kn.r.users.list(page_size=50, order="desc", include=["preferences"]), {uid})
    entry = next(e for e in seen if e.id == uid)
    assert "preferences" in extras(entry), "include[]=preferences must add a preferences field"
    sets = prefs_by_id(extras(entry)["preferences"])
    assert "default" in sets, sets
    default = PreferenceSet.model_validate({"id": "default", **sets["default"]})
    assert channel_types(default) == {"sms": False}

    # and without include there is no preferences field
    seen, _ = walk_until_found(kn.r.users.list(page_size=50, order="desc"), {uid})
    assert "preferences" not in extras(next(e for e in seen if e.id == uid))


def test_merge_users(kn: Nodes, cleanup):
    target = new_id("merge-to")
    source = new_id("merge-from")
    cleanup(lambda: kn.w.users.delete(target))
    cleanup(lambda: kn.w.users.delete(source))
    identify(kn.w, target, name="Target", email=f"{target}@example.com", custom={"role": "owner"})
    identify(kn.w, source, name="Source", email=f"{source}@example.com", custom={"role": "guest"})

    merged = kn.w.users.merge(target, from_user_id=source)
    assert merged.api_typename == "User"
    assert merged.id == target
    # the user merged into keeps its own values
    assert merged.name == "Target"
    assert merged.email == f"{target}@example.com"
    assert extras(merged)["role"] == "owner"

    got = kn.r.users.get(target)
    assert got.id == target and got.name == "Target"
    # the merged-from user is gone
    assert_not_found(kn.r.users.get, source)


def test_merge_from_unknown_user_is_404(kn: Nodes, cleanup):
    target = new_id("merge-to")
    cleanup(lambda: kn.w.users.delete(target))
    identify(kn.w, target, name="Target")
    assert_not_found(kn.w.users.merge, target, from_user_id=new_id("missing"))
    assert kn.r.users.get(target).name == "Target"


# ---------------------------------------------------------------------------------------------------------
# users: channel data
# ---------------------------------------------------------------------------------------------------------


def test_user_channel_data_set_get_unset(kn: Nodes, cleanup, push_channel_id, chat_channel_id):
    uid = new_id("user")
    cleanup(lambda: kn.w.users.delete(uid))

    # PUT channel data creates the user when missing
    cd = kn.w.users.set_channel_data(uid, push_channel_id, data={"tokens": ["tok-a", "tok-b"]})
    assert_push_data(cd, push_channel_id, ["tok-a", "tok-b"])
    assert kn.r.users.get(uid).id == uid
    assert_push_data(kn.r.users.get_channel_data(uid, push_channel_id), push_channel_id, ["tok-a", "tok-b"])

    # set replaces; the devices form round-trips with its per-device fields
    cd = kn.w.users.set_channel_data(
        uid, push_channel_id, data={"devices": [{"token": "tok-c", "locale": "fr-FR", "timezone": "Europe/Paris"}]}
    )
    assert_push_data(cd, push_channel_id, ["tok-c"])
    got = kn.r.users.get_channel_data(uid, push_channel_id)
    assert_push_data(got, push_channel_id, ["tok-c"])
    dev = got.data.to_dict()["devices"][0]
    assert dev["locale"] == "fr-FR" and dev["timezone"] == "Europe/Paris"

    # Slack data on a second channel
    slack = {
        "connections": [
            {"access_token": "xoxb-conn", "channel_id": "C0123", "user_id": None},
            {"incoming_webhook": {"url": "https://hooks.slack.com/services/T/B/X"}},
        ],
        "token": {"access_token": "xoxb-bot"},
    }
    cd = kn.w.users.set_channel_data(uid, chat_channel_id, data=slack)
    assert cd.api_typename == "ChannelData" and cd.channel_id == chat_channel_id
    got = kn.r.users.get_channel_data(uid, chat_channel_id).data.to_dict()
    assert got["connections"][0]["access_token"] == "xoxb-conn"
    assert got["connections"][0]["channel_id"] == "C0123"
    assert got["connections"][1]["incoming_webhook"] == {"url": "https://hooks.slack.com/services/T/B/X"}
    assert got["token"]["access_token"] == "xoxb-bot"

    # unset: 204, then 404; the other channel is untouched
    resp = kn.w.users.with_raw_response.unset_channel_data(uid, push_channel_id)
    assert resp.status_code == 204
    assert_not_found(kn.r.users.get_channel_data, uid, push_channel_id)
    assert kn.r.users.get_channel_data(uid, chat_channel_id).channel_id == chat_channel_id
    kn.w.users.unset_channel_data(uid, chat_channel_id)
    assert_not_found(kn.r.users.get_channel_data, uid, chat_channel_id)


# ---------------------------------------------------------------------------------------------------------
# users: preferences
# ---------------------------------------------------------------------------------------------------------


CONDITION = {"variable": "recipient.country_code", "operator": "equal_to", "argument": "US"}


def test_user_preferences_replace_vs_merge(kn: Nodes, cleanup, chat_channel_id):
    uid = new_id("user")
    cleanup(lambda: kn.w.users.delete(uid))
    identify(kn.w, uid, name="Prefs")

    p1 = kn.w.users.set_preferences(
        uid,
        "default",
        channel_types={"email": False, "sms": True},
        channels={chat_channel_id: {"conditions": [CONDITION]}},
        workflows={"wf-a": False, "wf-c": {"channel_types": {"push": False}}},
        categories={"marketing": False, "alerts": {"channel_types": {"sms": False}, "conditions": [CONDITION]}},
        commercial_subscribed=True,
    )
    assert p1.id == "default"
    assert channel_types(p1) == {"email": False, "sms": True}
    cond = p1.channels[chat_channel_id].conditions[0]
    assert (cond.variable, cond.operator, cond.argument) == ("recipient.country_code", "equal_to", "US")
    assert p1.workflows["wf-a"] is False
    assert p1.workflows["wf-c"].channel_types.push is False
    assert p1.categories["marketing"] is False
    assert p1.categories["alerts"].channel_types.sms is False
    assert p1.categories["alerts"].conditions[0].operator == "equal_to"
    assert p1.commercial_subscribed is True
    assert kn.r.users.get_preferences(uid, "default").to_dict() == p1.to_dict()

    # default strategy is replace: everything not sent is gone
    p2 = kn.w.users.set_preferences(uid, "default", channel_types={"push": False})
    assert p2.id == "default"
    assert channel_types(p2) == {"push": False}
    assert is_empty(p2.workflows) and is_empty(p2.categories) and is_empty(p2.channels)
    assert kn.r.users.get_preferences(uid, "default").to_dict() == p2.to_dict()

    # merge keeps what is not sent and deep-merges what is
    p3 = kn.w.users.set_preferences(
        uid,
        "default",
        _persistence_strategy="merge",
        channel_types={"email": True},
        workflows={"wf-b": True},
    )
    assert channel_types(p3) == {"push": False, "email": True}
    assert p3.workflows == {"wf-b": True}
    p4 = kn.w.users.set_preferences(uid, "default", _persistence_strategy="merge", workflows={"wf-d": False})
    assert p4.workflows == {"wf-b": True, "wf-d": False}
    assert channel_types(p4) == {"push": False, "email": True}
    assert kn.r.users.get_preferences(uid, "default").to_dict() == p4.to_dict()

    # an explicit replace behaves like the default
    p5 = kn.w.users.set_preferences(uid, "default", _persistence_strategy="replace", categories={"news": True})
    assert p5.categories == {"news": True}
    assert is_empty(p5.workflows) and channel_types(p5) == {}


def test_user_preference_sets_list_tenant_set_and_unset(kn: Nodes, cleanup):
    uid = new_id("user")
    tid = new_id("tenant")
    cleanup(lambda: kn.w.users.delete(uid))
    cleanup(lambda: kn.w.tenants.delete(tid))
    kn.w.tenants.set(tid, name=f"Tenant {tid}")
    identify(kn.w, uid, name="Sets")

    kn.w.users.set_preferences(uid, "default", channel_types={"email": False})
    ts = kn.w.users.set_preferences(uid, tid, channel_types={"sms": False})
    assert ts.id == tid and channel_types(ts) == {"sms": False}

    sets = kn.r.users.list_preferences(uid)
    assert isinstance(sets, list)
    by_id = {s.id: s for s in sets}
    assert {"default", tid} <= set(by_id)
    assert channel_types(by_id["default"]) == {"email": False}
    assert channel_types(by_id[tid]) == {"sms": False}

    # get with the tenant query parameter answers a PreferenceSet
    scoped = kn.r.users.get_preferences(uid, "default", tenant=tid)
    assert isinstance(scoped, PreferenceSet)
    assert kn.r.users.get_preferences(uid, tid).to_dict() == ts.to_dict()

    resp = kn.w.users.with_raw_response.unset_preferences(uid, tid)
    assert resp.status_code == 204
    assert tid not in {s.id for s in kn.r.users.list_preferences(uid)}
    assert "default" in {s.id for s in kn.r.users.list_preferences(uid)}
    # an unset set is either gone (404) or empty
    try:
        after = kn.r.users.get_preferences(uid, tid)
    except knockapi.NotFoundError:
        pass
    else:
        assert channel_types(after) == {} and is_empty(after.workflows) and is_empty(after.categories)


# ---------------------------------------------------------------------------------------------------------
# users: bulk
# ---------------------------------------------------------------------------------------------------------


def test_users_bulk_identify_set_preferences_delete(kn: Nodes, cleanup):
    ids = [new_id(f"bulk{i}") for i in range(3)]
    for uid in ids:
        cleanup(lambda uid=uid: kn.w.users.delete(uid))

    op = kn.w.users.bulk.identify(
        users=[
            {"id": uid, "name": f"Bulk {i}", "email": f"{uid}@example.com", "cohort": "bulk", "rank": i}
            for i, uid in enumerate(ids)
        ]
    )
    wait_bulk(kn.r, op, expect_rows=3)
    for i, uid in enumerate(ids):
        u = kn.r.users.get(uid)
        assert u.name == f"Bulk {i}" and u.email == f"{uid}@example.com"
        assert extras(u)["cohort"] == "bulk" and extras(u)["rank"] == i

    # bulk preferences replace the default set of every listed user
    kn.w.users.set_preferences(ids[0], "default", categories={"old": True})
    op = kn.w.users.bulk.set_preferences(
        user_ids=ids,
        preferences={"id": "default", "channel_types": {"email": False}, "workflows": {"digest": False}},
    )
    wait_bulk(kn.r, op, expect_rows=3)
    for uid in ids:
        ps = kn.r.users.get_preferences(uid, "default")
        assert channel_types(ps) == {"email": False}
        assert ps.workflows == {"digest": False}
        assert is_empty(ps.categories)

    op = kn.w.users.bulk.delete(user_ids=ids)
    done = wait_bulk(kn.r, op, expect_rows=3)
    assert kn.w.bulk_operations.get(done.id).to_dict() == kn.r.bulk_operations.get(done.id).to_dict()
    for uid in ids:
        assert_not_found(kn.r.users.get, uid)


def test_unknown_bulk_operation_is_404(kn: Nodes):
    assert_not_found(kn.r.bulk_operations.get, str(uuid.uuid4()))


# ---------------------------------------------------------------------------------------------------------
# objects
# ---------------------------------------------------------------------------------------------------------


def new_collection() -> str:
    return f"herald-py-{RUN_ID}-{uuid.uuid4().hex[:6]}"


def test_object_set_get_properties_nested_and_merged(kn: Nodes, cleanup, push_channel_id):
    coll, oid = new_collection(), new_id("obj")
    cleanup(lambda: kn.w.objects.delete(coll, oid))

    o = kn.w.objects.set(
        coll,
        oid,
        name="Apollo",
        timezone="America/New_York",
        locale="en-US",
        channel_data={push_channel_id: {"tokens": ["obj-tok"]}},
        preferences={"default": {"channel_types": {"email": False}}},
        extra_body={"budget": 10, "tags": ["a", "b"]},
    )
    assert o.api_typename == "Object"
    assert o.id == oid and o.collection == coll
    assert o.updated_at.tzinfo is not None
    assert o.properties is not None
    assert o.properties["budget"] == 10 and o.properties["tags"] == ["a", "b"]
    assert o.properties["name"] == "Apollo"
    # object custom properties are nested, not flat
    assert "budget" not in extras(o) and "tags" not in extras(o)

    o2 = kn.w.objects.set(coll, oid, extra_body={"stage": "beta", "budget": 20})
    assert o2.properties["budget"] == 20
    assert o2.properties["stage"] == "beta"
    assert o2.properties["tags"] == ["a", "b"]
    assert o2.properties["name"] == "Apollo"

    got = kn.r.objects.get(coll, oid)
    assert got.api_typename == "Object" and got.id == oid and got.collection == coll
    assert got.properties["budget"] == 20 and got.properties["stage"] == "beta" and got.properties["name"] == "Apollo"

    assert_push_data(kn.r.objects.get_channel_data(coll, oid, push_channel_id), push_channel_id, ["obj-tok"])
    assert channel_types(kn.r.objects.get_preferences(coll, oid, "default")) == {"email": False}


def test_objects_list_in_collection_with_pagination(kn: Nodes, cleanup):
    coll = new_collection()
    ids = [new_id(f"o{i}") for i in range(7)]
    for oid in ids:
        cleanup(lambda oid=oid: kn.w.objects.delete(coll, oid))
        kn.w.objects.set(coll, oid, extra_body={"n": oid[-8:]})
    kn.w.objects.set_preferences(coll, ids[0], "default", channel_types={"sms": False})

    raw = kn.r.objects.with_raw_response.list(coll, page_size=3)
    info = assert_page_info(raw.json(), page_size=3)
    assert len(raw.json()["entries"]) == 3 and info.after

    page = kn.r.objects.list(coll, page_size=3)
    collected, pages = [], 0
    while True:
        pages += 1
        assert len(page.entries) <= 3
        collected.extend(page.entries)
        if not page.has_next_page():
            break
        page = page.get_next_page()
    assert pages == 3
    assert sorted(e.id for e in collected) == sorted(ids)
    for e in collected:
        assert e.api_typename == "Object" and e.collection == coll
        assert e.properties["n"] == e.id[-8:]

    # the SDK's auto-pagination agrees
    assert sorted(e.id for e in kn.r.objects.list(coll, page_size=2)) == sorted(ids)

    with_prefs = list(kn.r.objects.list(coll, page_size=50, include=["preferences"]))
    entry = next(e for e in with_prefs if e.id == ids[0])
    sets = prefs_by_id(extras(entry)["preferences"])
    assert sets["default"]["channel_types"]["sms"] is False


def test_object_delete(kn: Nodes, push_channel_id):
    coll, oid = new_collection(), new_id("obj")
    keep = new_id("obj")
    kn.w.objects.set(coll, oid, name="Doomed", channel_data={push_channel_id: {"tokens": ["t"]}})
    kn.w.objects.set(coll, keep, name="Kept")
    resp = kn.w.objects.with_raw_response.delete(coll, oid)
    assert resp.status_code == 204
    assert_not_found(kn.r.objects.get, coll, oid)
    assert_not_found(kn.r.objects.get_channel_data, coll, oid, push_channel_id)
    assert [e.id for e in kn.r.objects.list(coll)] == [keep]
    kn.w.objects.delete(coll, keep)
    assert list(kn.r.objects.list(coll)) == []


def test_get_unknown_object_is_404(kn: Nodes):
    assert_not_found(kn.r.objects.get, new_collection(), new_id("missing"))


def test_object_channel_data_set_get_unset(kn: Nodes, cleanup, push_channel_id, chat_channel_id):
    coll, oid = new_collection(), new_id("obj")
    cleanup(lambda: kn.w.objects.delete(coll, oid))

    cd = kn.w.objects.set_channel_data(coll, oid, push_channel_id, data={"tokens": ["p1"]})
    assert_push_data(cd, push_channel_id, ["p1"])
    # PUT channel data creates the object
    assert kn.r.objects.get(coll, oid).id == oid
    assert_push_data(kn.r.objects.get_channel_data(coll, oid, push_channel_id), push_channel_id, ["p1"])

    slack = {"connections": [{"incoming_webhook": {"url": "https://hooks.slack.com/services/O/B/J"}}]}
    kn.w.objects.set_channel_data(coll, oid, chat_channel_id, data=slack)
    got = kn.r.objects.get_channel_data(coll, oid, chat_channel_id)
    assert got.channel_id == chat_channel_id
    assert got.data.to_dict()["connections"][0]["incoming_webhook"]["url"] == "https://hooks.slack.com/services/O/B/J"

    resp = kn.w.objects.with_raw_response.unset_channel_data(coll, oid, push_channel_id)
    assert resp.status_code == 204
    assert_not_found(kn.r.objects.get_channel_data, coll, oid, push_channel_id)
    assert kn.r.objects.get_channel_data(coll, oid, chat_channel_id).channel_id == chat_channel_id


def test_object_preferences_list_get_set_unset(kn: Nodes, cleanup):
    coll, oid = new_collection(), new_id("obj")
    cleanup(lambda: kn.w.objects.delete(coll, oid))
    kn.w.objects.set(coll, oid, name="Prefs")

    p1 = kn.w.objects.set_preferences(coll, oid, "default", channel_types={"email": False}, workflows={"w1": False})
    assert p1.id == "default" and channel_types(p1) == {"email": False} and p1.workflows == {"w1": False}

    p2 = kn.w.objects.set_preferences(coll, oid, "default", categories={"c1": True})
    assert p2.categories == {"c1": True}
    assert channel_types(p2) == {} and is_empty(p2.workflows)

    p3 = kn.w.objects.set_preferences(
        coll, oid, "default", _persistence_strategy="merge", channel_types={"sms": False}
    )
    assert p3.categories == {"c1": True} and channel_types(p3) == {"sms": False}
    assert kn.r.objects.get_preferences(coll, oid, "default").to_dict() == p3.to_dict()

    kn.w.objects.set_preferences(coll, oid, "other-set", workflows={"w2": True})
    sets = {s.id: s for s in kn.r.objects.list_preferences(coll, oid)}
    assert set(sets) >= {"default", "other-set"}
    assert sets["other-set"].workflows == {"w2": True}

    resp = kn.w.objects.with_raw_response.unset_preferences(coll, oid, "other-set")
    assert resp.status_code == 204
    assert "other-set" not in {s.id for s in kn.r.objects.list_preferences(coll, oid)}


def test_objects_bulk_set_and_delete(kn: Nodes, cleanup):
    coll = new_collection()
    ids = [new_id(f"bo{i}") for i in range(4)]
    for oid in ids:
        cleanup(lambda oid=oid: kn.w.objects.delete(coll, oid))

    op = kn.w.objects.bulk.set(coll, objects=[{"id": oid, "name": f"Bulk {oid[-8:]}", "color": "red"} for oid in ids])
    wait_bulk(kn.r, op, expect_rows=4)
    for oid in ids:
        o = kn.r.objects.get(coll, oid)
        assert o.properties["color"] == "red" and o.properties["name"] == f"Bulk {oid[-8:]}"
    assert sorted(e.id for e in kn.r.objects.list(coll)) == sorted(ids)

    op = kn.w.objects.bulk.delete(coll, object_ids=ids[:3])
    wait_bulk(kn.r, op, expect_rows=3)
    for oid in ids[:3]:
        assert_not_found(kn.r.objects.get, coll, oid)
    assert [e.id for e in kn.r.objects.list(coll)] == [ids[3]]


# ---------------------------------------------------------------------------------------------------------
# tenants
# ---------------------------------------------------------------------------------------------------------


def test_tenant_set_get_list_delete(kn: Nodes, cleanup):
    tid = new_id("tenant")
    name = f"Acme {tid}"
    cleanup(lambda: kn.w.tenants.delete(tid))

    t = kn.w.tenants.set(
        tid,
        name=name,
        settings={
            "branding": {"primary_color": "#112233", "logo_url": "https://example.com/logo.png"},
            "preference_set": {"channel_types": {"email": False}},
        },
        extra_body={"region": "eu", "seats": 5},
    )
    assert t.api_typename == "Tenant"
    assert t.id == tid and t.name == name
    assert t.settings.branding.primary_color == "#112233"
    assert t.settings.branding.logo_url == "https://example.com/logo.png"
    assert channel_types(t.settings.preference_set) == {"email": False}
    assert extras(t)["region"] == "eu" and extras(t)["seats"] == 5

    # set is a merge upsert
    t2 = kn.w.tenants.set(tid, extra_body={"tier": "gold", "seats": 6})
    assert t2.name == name
    assert extras(t2)["region"] == "eu" and extras(t2)["tier"] == "gold" and extras(t2)["seats"] == 6
    assert t2.settings.branding.primary_color == "#112233"

    got = kn.r.tenants.get(tid)
    assert got.api_typename == "Tenant" and got.id == tid and got.name == name
    assert extras(got)["tier"] == "gold"
    full = kn.r.tenants.get(tid, resolve_full_preference_settings=True)
    assert full.id == tid
    assert channel_types(full.settings.preference_set)["email"] is False

    by_id = kn.r.tenants.with_raw_response.list(tenant_id=tid, page_size=10)
    assert_page_info(by_id.json(), page_size=10)
    assert [e.id for e in by_id.parse().entries] == [tid]
    by_name = kn.r.tenants.list(name=name).entries
    assert tid in {e.id for e in by_name}
    assert all(name in (e.name or "") for e in by_name)
    assert kn.r.tenants.list(name=f"no-such-tenant-{uuid.uuid4().hex}").entries == []

    resp = kn.w.tenants.with_raw_response.delete(tid)
    assert resp.status_code == 204
    assert_not_found(kn.r.tenants.get, tid)
    assert kn.r.tenants.list(tenant_id=tid).entries == []


def test_tenant_is_an_object_in_tenants_collection(kn: Nodes, cleanup):
    tid = new_id("tenant")
    cleanup(lambda: kn.w.tenants.delete(tid))
    kn.w.tenants.set(tid, name="As Object", extra_body={"region": "us"})
    o = kn.r.objects.get("$tenants", tid)
    assert o.api_typename == "Object" and o.id == tid and o.collection == "$tenants"


def test_tenants_list_paginates(kn: Nodes, cleanup):
    ids = [new_id(f"tl{i}") for i in range(4)]
    for tid in ids:
        cleanup(lambda tid=tid: kn.w.tenants.delete(tid))
        kn.w.tenants.set(tid, name=f"Paged {tid}")
    first = kn.r.tenants.list(page_size=2)
    assert len(first.entries) == 2
    assert first.has_next_page()
    seen = [e.id for e in first.entries] + [e.id for e in first.get_next_page().entries]
    assert len(seen) == len(set(seen)) == 4


def test_get_unknown_tenant_is_404(kn: Nodes):
    assert_not_found(kn.r.tenants.get, new_id("missing"))


def test_tenants_bulk_set_and_delete(kn: Nodes, cleanup):
    ids = [new_id(f"bt{i}") for i in range(3)]
    for tid in ids:
        cleanup(lambda tid=tid: kn.w.tenants.delete(tid))

    op = kn.w.tenants.bulk.set(
        tenants=[
            ids[0],  # a bare id is allowed
            {"id": ids[1], "name": "Bulk Tenant 1", "plan": "team"},
            {"id": ids[2], "name": "Bulk Tenant 2", "settings": {"branding": {"primary_color": "#abcdef"}}},
        ]
    )
    wait_bulk(kn.r, op, expect_rows=3)
    assert kn.r.tenants.get(ids[0]).id == ids[0]
    t1 = kn.r.tenants.get(ids[1])
    assert t1.name == "Bulk Tenant 1" and extras(t1)["plan"] == "team"
    assert kn.r.tenants.get(ids[2]).settings.branding.primary_color == "#abcdef"

    op = kn.w.tenants.bulk.delete(tenant_ids=ids)
    wait_bulk(kn.r, op, expect_rows=3)
    for tid in ids:
        assert_not_found(kn.r.tenants.get, tid)


# ---------------------------------------------------------------------------------------------------------
# bad input through raw HTTP; each check ends by proving the targeted user is unchanged
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def victim(kn: Nodes, cleanup):
    uid = new_id("victim")
    cleanup(lambda: kn.w.users.delete(uid))
    before = identify(kn.w, uid, name="Unchanged", email=f"{uid}@example.com", custom={"plan": "free"})
    return uid, before


def assert_unchanged(kn: Nodes, uid: str, before) -> None:
    after = kn.r.users.get(uid)
    assert after.name == "Unchanged"
    assert after.email == before.email
    assert extras(after) == extras(before)
    assert after.updated_at == before.updated_at


def test_missing_api_key_is_401(kn: Nodes, raw: httpx.Client, victim):
    uid, before = victim
    r = raw.put(f"/v1/users/{uid}", json={"name": "Mallory"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/json")
    assert_error_body(r.json(), 401, exact=True)
    assert_unchanged(kn, uid, before)


def test_wrong_api_key_is_401(kn: Nodes, raw: httpx.Client, victim):
    uid, before = victim
    bad = f"sk_test_{uuid.uuid4().hex}"
    r = raw.put(f"/v1/users/{uid}", json={"name": "Mallory"}, headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 401
    assert_error_body(r.json(), 401, exact=True)
    # and the same through the SDK
    with make_client(kn.w_url, bad) as c:
        with pytest.raises(knockapi.AuthenticationError) as exc:
            c.users.update(uid, name="Mallory")
    assert_error_body(exc.value.body, 401, exact=True)
    assert_unchanged(kn, uid, before)


def test_malformed_json_is_4xx_with_knock_body(kn: Nodes, raw: httpx.Client, secret_key, victim):
    uid, before = victim
    r = raw.put(
        f"/v1/users/{uid}",
        content=b'{"name": "Mallory", ',
        headers={"Authorization": f"Bearer {secret_key}", "Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text
    assert_error_body(r.json(), r.status_code, exact=False)
    assert_unchanged(kn, uid, before)


def test_unknown_route_is_404_errors_detail(kn: Nodes, raw: httpx.Client, secret_key, victim):
    uid, before = victim
    r = raw.get(f"/v1/no-such-route-{RUN_ID}", headers={"Authorization": f"Bearer {secret_key}"})
    assert r.status_code == 404
    assert r.json() == {"errors": {"detail": "404 Not Found"}}
    r = raw.put(
        f"/v1/users/{uid}/no-such-subresource",
        json={"name": "Mallory"},
        headers={"Authorization": f"Bearer {secret_key}"},
    )
    assert r.status_code == 404
    assert r.json() == {"errors": {"detail": "404 Not Found"}}
    assert_unchanged(kn, uid, before)


def _send_oversize(base_url: str, path: str, headers: Dict[str, str], size: int) -> Tuple[int, bytes]:
    """PUT a JSON body of `size` bytes and return (status, body) of the answer.

    A server may answer 413 before reading the whole body and then close the socket, which makes a
    normal client fail on write. So stream by hand and stop sending as soon as an answer arrives."""
    u = urlsplit(base_url)
    port = u.port or (443 if u.scheme == "https" else 80)
    sock = socket.create_connection((u.hostname, port), timeout=60)
    if u.scheme == "https":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=u.hostname)
    prefix, suffix = b'{"name": "Mallory", "blob": "', b'"}'
    filler = size - len(prefix) - len(suffix)
    head = [f"PUT {path} HTTP/1.1", f"Host: {u.netloc}", f"Content-Length: {size}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    chunk = b"x" * 65536
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + prefix)
        sent = 0
        while sent < filler:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            n = min(len(chunk), filler - sent)
            sock.sendall(chunk[:n])
            sent += n
        else:
            sock.sendall(suffix)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass  # the server stopped reading; its answer may still be in our receive buffer
    data = b""
    try:
        while True:
            part = sock.recv(65536)
            if not part:
                break
            data += part
            if b"\r\n\r\n" in data:
                hdr, _, rest = data.partition(b"\r\n\r\n")
                lengths = [
                    int(line.split(b":", 1)[1]) for line in hdr.split(b"\r\n") if line.lower().startswith(b"content-length:")
                ]
                if lengths and len(rest) >= lengths[0]:
                    break
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        sock.close()
    assert data.startswith(b"HTTP/1."), f"no HTTP answer to an oversize body (got {data[:200]!r})"
    hdr, _, body = data.partition(b"\r\n\r\n")
    status = int(hdr.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in hdr.lower():
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            decoded, rest = decoded + rest[:n], rest[n + 2 :]
        body = decoded
    return status, body


def test_oversize_body_is_rejected(kn: Nodes, secret_key, victim):
    uid, before = victim
    size = int(os.environ.get("HERALD_OVERSIZE_BYTES", str(32 * 1024 * 1024)))
    status, body = _send_oversize(
        kn.w_url,
        f"/v1/users/{uid}",
        {"Authorization": f"Bearer {secret_key}", "Content-Type": "application/json"},
        size,
    )
    assert 400 <= status < 500, (status, body[:300])
    if body.strip():
        assert_error_body(json.loads(body), status, exact=False)
    assert_unchanged(kn, uid, before)
