"""People over HTTP: import upload, search, view, rectify, erase and export, with their audit."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import FormData

from campaigns.models import (
    AuditEvent,
    Campaign,
    CampaignRun,
    Escalation,
    EscalationNote,
    InboundPart,
    Membership,
    Message,
    OptOut,
    Person,
    Reply,
    Staff,
    Template,
    TemplateVersion,
)
from campaigns.registry import people

REGISTER = (
    "N° dossier;Nom;Prénom;Date de naissance;Téléphone;Courriel;Quartier;Référent\n"
    "D-1;LÉVY;Aimée;17/01/1939;06 41 77 76 31;aimee@example.org;Nord;a.nguyen@ccas.example\n"
    "D-2;Martin;Jean;02/02/1950;02 86 08 36 22;;Sud-Est;\n"
    "D-3;Martin;Jeanne;03/03/1951;+33 6 12 34 56 78;;Nord;\n"
    "D-4;;Sans nom;04/04/1944;;;;\n"
).encode()


def upload(data: bytes, segment: str, **fields: str) -> FormData:
    form = FormData()
    form.add_field("file", data, filename="registre.csv", content_type="text/csv")
    form.add_field("segment", segment)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def imported(client, tokens) -> dict[str, int]:
    response = await client.post(
        "/api/v1/imports", data=upload(REGISTER, "domicilies"), headers=tokens.headers("admin")
    )
    assert response.status == 200
    return dict(await Person.all().values_list("external_ref", "id"))


async def test_import_upload_returns_the_report(client, tokens) -> None:
    headers = tokens.headers("coordinator")
    dry = await client.post(
        "/api/v1/imports", data=upload(REGISTER, "domicilies", dry_run="true"), headers=headers
    )
    assert (await dry.json())["dry_run"] is True
    assert await Person.all().count() == 0
    response = await client.post(
        "/api/v1/imports", data=upload(REGISTER, "domicilies"), headers=headers
    )
    report = await response.json()
    assert (report["created"], report["updated"], report["unchanged"]) == (3, 0, 0)
    assert report["rejected"] == [
        {"line": 5, "reason": "missing_name", "detail": "La cellule « Nom » est vide"}
    ]
    assert [(w["line"], w["reason"]) for w in report["warnings"]] == [(3, "landline_only")]
    assert report["filename"] == "registre.csv"
    event = await AuditEvent.get(action="register.import")
    assert event.actor_label == "coordinator@ccas.test"


async def test_import_upload_errors(client, tokens, db) -> None:
    headers = tokens.headers("coordinator")
    refused = await client.post(
        "/api/v1/imports",
        data=upload(REGISTER, "domicilies"),
        headers=tokens.headers("caseworker"),
    )
    assert refused.status == 403
    bad_segment = await client.post(
        "/api/v1/imports", data=upload(REGISTER, "Les Fragiles"), headers=headers
    )
    assert (bad_segment.status, (await bad_segment.json())["error"]) == (422, "invalid_segment")
    no_name = await client.post(
        "/api/v1/imports", data=upload(b"Id;Tel\n1;0612345678\n", "domicilies"), headers=headers
    )
    body = await no_name.json()
    assert (no_name.status, body["error"]) == (422, "missing_column")
    assert "Colonne du nom introuvable" in body["detail"]
    mapped = await client.post(
        "/api/v1/imports",
        data=upload(b"Id;Patronyme\n1;Dupont\n", "domicilies", map="Patronyme=last_name"),
        headers=headers,
    )
    assert (await mapped.json())["created"] == 1
    not_multipart = await client.post("/api/v1/imports", json={}, headers=headers)
    assert not_multipart.status == 422


async def test_search_by_segment_name_reference_and_phone(client, tokens) -> None:
    ids = await imported(client, tokens)
    headers = tokens.headers("coordinator")

    async def found(query: str) -> list[str]:
        response = await client.get(f"/api/v1/people?{query}", headers=headers)
        assert response.status == 200
        return [p["external_ref"] for p in (await response.json())["items"]]

    assert await found("segment=domicilies") == ["D-1", "D-2", "D-3"]  # LÉVY, Martin, Martin
    assert await found("segment=animations") == []
    assert await found("q=levy") == ["D-1"]  # without accents or case
    assert await found("q=martin%20jeanne") == ["D-3"]
    assert await found("q=D-2") == ["D-2"]
    assert await found("q=06%2041%2077%2076%2031") == ["D-1"]  # national format
    assert await found("q=%2B33612345678") == ["D-3"]
    page = await (await client.get("/api/v1/people?page=2&page_size=2", headers=headers)).json()
    assert (page["total"], [p["id"] for p in page["items"]]) == (3, [ids["D-3"]])
    forbidden = await client.get("/api/v1/people", headers=tokens.headers("caseworker"))
    assert forbidden.status == 403
    bad = await client.get("/api/v1/people?page=zero", headers=headers)
    assert bad.status == 422


async def test_viewing_a_person_is_audited(client, tokens) -> None:
    ids = await imported(client, tokens)
    await OptOut.create(address="+33641777631", channel="sms", source="reply")
    response = await client.get(f"/api/v1/people/{ids['D-1']}", headers=tokens.headers("admin"))
    person = await response.json()
    assert person["mobile"] == "+33641777631"
    assert person["referent_email"] == "a.nguyen@ccas.example"
    assert [m["segment"] for m in person["memberships"]] == ["domicilies"]
    assert person["opt_outs"] == {"+33641777631": True, "aimee@example.org": False}
    assert person["sms_reachable"] is False
    event = await AuditEvent.get(action="person.view")
    assert (event.object_id, event.actor_label) == (str(ids["D-1"]), "admin@ccas.test")
    missing = await client.get("/api/v1/people/999999", headers=tokens.headers("admin"))
    assert missing.status == 404


async def test_caseworkers_see_only_people_escalated_in_their_queues(client, tokens) -> None:
    ids = await imported(client, tokens)
    headers = tokens.headers("caseworker")
    url = f"/api/v1/people/{ids['D-2']}"
    assert (await client.get(url, headers=headers)).status == 403
    caseworker = await Staff.get(email="caseworker@ccas.test")
    await Escalation.create(person_id=ids["D-2"], queue="rappel", due_at=datetime.now(UTC))
    assert await people.can_view_person(caseworker, ids["D-2"])
    assert (await client.get(url, headers=headers)).status == 200
    caseworker.queues = ["urgence"]
    await caseworker.save()
    assert not await people.can_view_person(caseworker, ids["D-2"])
    coordinator = await Staff.get(email="coordinator@ccas.test")
    assert await people.can_view_person(coordinator, ids["D-3"])


async def test_rectifying_records_field_names_not_values(client, tokens) -> None:
    ids = await imported(client, tokens)
    headers = tokens.headers("coordinator")
    url = f"/api/v1/people/{ids['D-2']}"
    response = await client.patch(
        url, json={"mobile": "07 80 12 34 56", "first_name": "Jean-Pierre"}, headers=headers
    )
    assert response.status == 200
    person = await response.json()
    assert (person["mobile"], person["first_name"]) == ("+33780123456", "Jean-Pierre")
    stored = await Person.get(id=ids["D-2"])
    assert stored.identity_key == "martin|jean pierre|1950-02-02"
    event = await AuditEvent.get(action="person.update")
    assert event.detail == {"fields": ["first_name", "mobile"]}
    for body, code in [
        ({"mobile": "02 86 08 36 22"}, "not_mobile"),
        ({"email": "pas une adresse"}, "invalid_email"),
        ({"last_name": None}, "missing_name"),
        ({"external_ref": "D-1"}, "duplicate_ref"),
        ({"colour": "blue"}, "validation"),
    ]:
        refused = await client.patch(url, json=body, headers=headers)
        assert (await refused.json())["error"] == code, body
    assert await AuditEvent.filter(action="person.update").count() == 1


async def test_erasure_deletes_the_person_and_keeps_opt_outs_and_message_rows(
    client, tokens
) -> None:
    ids = await imported(client, tokens)
    person_id = ids["D-1"]
    message = await _message_for(person_id)
    await OptOut.create(address="+33641777631", channel="sms", source="reply")
    escalation = await Escalation.create(
        person_id=person_id, queue="urgence", due_at=datetime.now(UTC)
    )
    await EscalationNote.create(escalation=escalation, author_label="x", text="Appelée.")
    reply = await Reply.create(
        provider_message_id="r1",
        msisdn="33641777631",
        text="oui",
        received_at=datetime.now(UTC),
        person_id=person_id,
    )
    shared = await Reply.create(
        provider_message_id="r2",
        msisdn="+33641777631",
        text="c'est sa fille",
        received_at=datetime.now(UTC),
        candidate_ids=[person_id, ids["D-2"]],
    )
    await InboundPart.create(
        provider_message_id="p1",
        msisdn="+33641777631",
        concat_ref="7",
        total=2,
        part=1,
        text="je suis",
        assembled=True,
    )
    response = await client.delete(f"/api/v1/people/{person_id}", headers=tokens.headers("admin"))
    assert (await Reply.get(id=shared.id)).candidate_ids == [ids["D-2"]]
    assert not await InboundPart.filter(msisdn="+33641777631").exists()
    assert await response.json() == {
        "deleted": True,
        "memberships": 1,
        "calls_detached": 0,
        "messages_detached": 1,
        "replies_detached": 1,
        "escalations_deleted": 1,
    }
    assert not await Person.filter(id=person_id).exists()
    assert not await Membership.filter(person_id=person_id).exists()
    assert not await Escalation.filter(id=escalation.id).exists()
    kept_message = await Message.get(id=message.id)
    assert kept_message.person_id is None
    # Nothing left on the kept rows still names or reaches the erased person.
    assert (kept_message.text, kept_message.address) == ("", None)
    assert kept_message.status == "cancelled"  # it was still queued: it will never leave
    kept_reply = await Reply.get(id=reply.id)
    assert kept_reply.person_id is None
    assert (kept_reply.text, kept_reply.msisdn, kept_reply.payload) == ("", "", {})
    assert await OptOut.filter(address="+33641777631", active=True).exists()
    event = await AuditEvent.get(action="person.delete")
    assert event.object_id == str(person_id)
    again = await client.delete(f"/api/v1/people/{person_id}", headers=tokens.headers("admin"))
    assert again.status == 404
    caseworker = await client.delete(
        f"/api/v1/people/{ids['D-2']}", headers=tokens.headers("caseworker")
    )
    assert caseworker.status == 403


async def test_export_holds_everything_about_one_person(client, tokens) -> None:
    ids = await imported(client, tokens)
    person_id = ids["D-1"]
    await _message_for(person_id)
    escalation = await Escalation.create(
        person_id=person_id, queue="rappel", due_at=datetime.now(UTC)
    )
    await EscalationNote.create(escalation=escalation, author_label="x", text="Rappeler mardi.")
    await Reply.create(
        provider_message_id="r2",
        msisdn="33641777631",
        text="rappelez-moi",
        received_at=datetime.now(UTC),
        person_id=person_id,
    )
    response = await client.get(
        f"/api/v1/people/{person_id}/export", headers=tokens.headers("coordinator")
    )
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    document = await response.json()
    assert document["person"]["last_name"] == "LÉVY"
    assert [m["segment"] for m in document["memberships"]] == ["domicilies"]
    assert [m["text"] for m in document["messages"]] == ["Bonjour Mme Lévy"]
    assert [r["text"] for r in document["replies"]] == ["rappelez-moi"]
    assert document["escalations"][0]["notes"][0]["text"] == "Rappeler mardi."
    assert document["opt_outs"] == {"+33641777631": False, "aimee@example.org": False}
    event = await AuditEvent.get(action="person.export")
    assert event.detail == {"messages": 1, "replies": 1, "escalations": 1}


async def test_openapi_describes_the_people_import_and_audience_routes(client, tokens) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    paths = document["paths"]
    for path, method in [
        ("/api/v1/people", "get"),
        ("/api/v1/people/{id}", "get"),
        ("/api/v1/people/{id}", "patch"),
        ("/api/v1/people/{id}", "delete"),
        ("/api/v1/people/{id}/export", "get"),
        ("/api/v1/imports", "post"),
        ("/api/v1/audiences", "post"),
        ("/api/v1/audiences", "get"),
        ("/api/v1/audiences/{id}", "get"),
        ("/api/v1/audiences/{id}/members", "get"),
        ("/api/v1/audiences/count", "post"),
    ]:
        assert method in paths[path], (path, method)
    schemas = document["components"]["schemas"]
    assert "mobile" in schemas["PersonPatch"]["properties"]
    assert "segments_any" in schemas["AudienceFilter"]["properties"]
    imports = paths["/api/v1/imports"]["post"]
    assert "multipart/form-data" in imports["requestBody"]["content"]


async def _message_for(person_id: int) -> Message:
    template = await Template.create(name="Invitation", channel="sms")
    version = await TemplateVersion.create(template=template, version=1, body="Bonjour")
    campaign = await Campaign.create(name="Canicule", channel="sms", template_version=version)
    run = await CampaignRun.create(campaign=campaign, number=1)
    return await Message.create(
        run=run,
        campaign_id=campaign.id,
        person_id=person_id,
        channel="sms",
        address="+33641777631",
        text="Bonjour Mme Lévy",
    )


async def test_a_search_is_audited_without_its_text(client, tokens) -> None:
    await imported(client, tokens)
    response = await client.get("/api/v1/people?q=COLAS", headers=tokens.headers("coordinator"))
    assert response.status == 200
    event = await AuditEvent.get(action="people.search")
    assert event.actor_label == "coordinator@ccas.test"
    assert event.detail["text_search"] is True
    assert "COLAS" not in str(event.detail)
