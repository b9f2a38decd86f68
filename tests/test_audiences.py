"""Audiences: each filter key on a small population, validation, paging, and the HTTP routes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from campaigns.core.errors import Invalid
from campaigns.models import AuditEvent, Membership, OptOut, Person
from campaigns.registry import audiences
from campaigns.registry import queries as registry_queries

TODAY = date(2025, 6, 15)
NOW = datetime(2025, 6, 15, 12, tzinfo=UTC)

FRAGILE, ANIM, DOM, AIDES = "registre_fragiles", "animations", "domicilies", "aides_facultatives"
# ref: (segments, district, birth date, mobile, email, days since last contact)
PEOPLE = {
    "A": ([FRAGILE, ANIM], "Nord", date(1940, 6, 15), "+33600000001", "a@x.fr", None),
    "B": ([FRAGILE], "Nord", date(1960, 6, 16), "+33600000002", None, None),
    "C": ([DOM], "Sud-Est", date(1990, 1, 1), "+33600000003", None, 10),
    "D": ([AIDES], "Nord", None, None, "d@x.fr", None),
    "E": ([AIDES, DOM], "Centre-ville", date(1950, 2, 28), None, "e@x.fr", 100),
    "F": ([FRAGILE], "Nord", date(1945, 1, 1), "+33600000006", None, None),
}  # fmt: skip


@pytest.fixture
async def population(db) -> dict[str, int]:
    ids = {}
    for ref, (segments, district, born, mobile, email, contacted) in PEOPLE.items():
        person = await Person.create(
            external_ref=ref,
            last_name=f"Nom{ref}",
            first_name="Test",
            identity_key=f"nom{ref.lower()}|test|",
            birth_date=born,
            mobile=mobile,
            landline="+33353010001" if ref == "D" else None,
            email=email,
            district=district,
            last_contacted_at=NOW - timedelta(days=contacted) if contacted else None,
        )
        for segment in segments:
            await Membership.create(person=person, segment=segment, source="test")
        ids[ref] = person.id
    await OptOut.create(address="+33600000002", channel="sms", source="reply")
    await OptOut.create(address="d@x.fr", channel="email", source="staff")
    # A lifted opt-out no longer blocks the address.
    await OptOut.create(address="+33600000006", channel="sms", source="reply", active=False)
    return ids


FILTER_CASES = [
    ({}, "ABCDEF"),
    ({"segments_any": ["registre_fragiles"]}, "ABF"),
    ({"segments_any": ["registre_fragiles", "domicilies"]}, "ABCEF"),
    ({"segments_all": ["registre_fragiles", "animations"]}, "A"),
    ({"segments_none": ["domicilies"]}, "ABDF"),
    ({"districts": ["Nord"]}, "ABDF"),
    ({"districts": ["  Sud-Est ", "Centre-ville"]}, "CE"),
    ({"age_min": 65}, "AEF"),  # B turns 65 tomorrow; D has no birth date
    ({"age_max": 64}, "BC"),
    ({"age_min": 85, "age_max": 85}, "A"),  # 85 today
    ({"channel": "sms"}, "ACF"),  # B opted out, D and E have no mobile
    ({"channel": "email"}, "AE"),  # D's address opted out
    ({"not_contacted_days": 30}, "ABDEF"),
    ({"segments_any": ["registre_fragiles"], "districts": ["Nord"], "channel": "sms"}, "AF"),
    ({"segments_any": ["plan_canicule"]}, ""),
]


async def test_each_filter_key_selects_the_expected_people(population) -> None:
    # One population for the whole table: building it is the slow part.
    for criteria, expected in FILTER_CASES:
        query = audiences.audience_query(criteria, TODAY)
        refs = await query.order_by("external_ref").values_list("external_ref", flat=True)
        assert ("".join(refs), await query.count()) == (expected, len(expected)), criteria


async def test_the_query_composes_with_further_conditions(population) -> None:
    query = audiences.audience_query({"channel": "sms"}, TODAY)
    narrowed = query.filter(district="Nord").exclude(external_ref="A")
    assert await narrowed.values_list("external_ref", flat=True) == ["F"]


@pytest.mark.parametrize(
    ("criteria", "fragment"),
    [
        ({"segment": ["domicilies"]}, "segment: clé inconnue"),
        ({"age_min": 70, "age_max": 60}, "age_min dépasse age_max"),
        ({"segments_any": ["Bad Code"]}, "Segment invalide"),
        ({"channel": "fax"}, "channel"),
        ({"age_min": -1}, "age_min"),
        ({"not_contacted_days": "souvent"}, "not_contacted_days"),
        (["domicilies"], "filtre"),
    ],
)
def test_invalid_filters_are_refused_with_a_clear_message(criteria, fragment) -> None:
    with pytest.raises(Invalid) as error:
        audiences.parse_filter(criteria)
    assert error.value.code == "invalid_filter"
    assert fragment in error.value.detail


async def test_members_are_paged_alphabetically(population) -> None:
    first = await audiences.members({}, page=1, page_size=4, today=TODAY)
    last = await audiences.members({}, page=2, page_size=4, today=TODAY)
    assert first["total"] == last["total"] == 6
    assert [p["external_ref"] for p in first["items"]] == ["A", "B", "C", "D"]
    assert [p["external_ref"] for p in last["items"]] == ["E", "F"]
    with pytest.raises(Invalid):
        await audiences.members({}, page=0)


async def test_the_builder_offers_segments_and_districts_in_use(population) -> None:
    person = await Person.get(id=population["C"])
    await Membership.create(person=person, segment="plan_canicule", source="test")
    await Person.filter(id=population["D"]).update(district="")
    # The standard segments in their own order (used or not), then the custom ones.
    assert await registry_queries.segment_codes() == [DOM, AIDES, ANIM, FRAGILE, "plan_canicule"]
    assert await registry_queries.districts() == ["Centre-ville", "Nord", "Sud-Est"]


async def test_audience_routes(client, tokens, population) -> None:
    headers = tokens.headers("coordinator")
    body = {"name": "Fragiles du Nord", "filter": {"segments_any": ["registre_fragiles"]}}
    created = await client.post("/api/v1/audiences", json=body, headers=headers)
    assert created.status == 201
    data = await created.json()
    assert data["count"] == 3
    event = await AuditEvent.get(action="audience.create")
    assert event.object_id == str(data["id"])
    assert event.detail == {"keys": ["segments_any"], "count": 3}

    one = await (await client.get(f"/api/v1/audiences/{data['id']}", headers=headers)).json()
    assert one["name"] == "Fragiles du Nord"
    assert one["filter"] == {"segments_any": ["registre_fragiles"]}
    assert one["count"] == 3
    page = await client.get(
        f"/api/v1/audiences/{data['id']}/members?page=1&page_size=2", headers=headers
    )
    members = await page.json()
    assert members["total"] == 3
    assert [m["external_ref"] for m in members["items"]] == ["A", "B"]
    listing = await (await client.get("/api/v1/audiences", headers=headers)).json()
    assert [a["id"] for a in listing["items"]] == [data["id"]]

    live = await client.post(
        "/api/v1/audiences/count",
        json={"filter": {"districts": ["Nord"], "channel": "sms"}},
        headers=headers,
    )
    assert await live.json() == {"count": 2}  # A and F: B opted out, D has no mobile


async def test_audience_routes_refuse_bad_filters_and_caseworkers(client, tokens, db) -> None:
    bad = await client.post(
        "/api/v1/audiences/count",
        json={"filter": {"quartier": ["Nord"]}},
        headers=tokens.headers("coordinator"),
    )
    assert bad.status == 422
    error = await bad.json()
    assert error["error"] == "invalid_filter"
    assert "quartier: clé inconnue" in error["detail"]
    missing = await client.get("/api/v1/audiences/999", headers=tokens.headers("admin"))
    assert missing.status == 404
    forbidden = await client.get("/api/v1/audiences", headers=tokens.headers("caseworker"))
    assert forbidden.status == 403
