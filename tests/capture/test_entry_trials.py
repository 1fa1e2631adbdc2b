"""Data entry of the seed trials' repeating groups through the test client, without
JavaScript: add a row, fill it, save, edit it with a reason, remove it with a reason; and
checks at the right moment (a fresh form opens clean, blanks are only "required" when
the form is marked complete)."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import pytest
from sqlalchemy import select

from ecrf.capture import GroupRow, ItemValue, enrol_subject
from ecrf.core import PROJECT_ROOT, Actor, db
from ecrf.crf import ItemType
from ecrf.studies import definition_for, get_site, load_folder, require_study

LOADER = Actor(user_id=None, username="test-loader")
TRIALS = {"DEXAML03": ("dexaml03", "TLS"), "UCMSCEXO": ("ucmscexo", "WUH")}


def enrolled(make_study, login_as, oid: str):
    folder, site = TRIALS[oid]
    make_study(oid, sites=(site,))
    load_folder(db.session, LOADER, PROJECT_ROOT / "forms" / folder)
    db.session.commit()
    login_as("investigator", site=site, study=oid, username=f"inv-{oid.lower()}")
    study = require_study(db.session, oid)
    subject = enrol_subject(db.session, LOADER, study, get_site(db.session, site),
                            f"{site}-101", dt.date.today())
    db.session.commit()
    return subject


def form_url(subject, event_oid: str, form_oid: str) -> str:
    return (f"/studies/{subject.study.oid}/subjects/{subject.subject_key}/events/{event_oid}/1"
            f"/forms/{form_oid}")


def started(client, subject, form_oid: str) -> tuple[str, object]:
    """Start the first event holding the form; its URL and the form's definition."""
    definition = definition_for(subject.study_version)
    event = definition.events_with_form(form_oid)[0]
    url = form_url(subject, event.oid, form_oid)
    response = client.post(url.rsplit("/forms/", 1)[0] + "/start",
                           data={"actual_date": dt.date.today().isoformat()})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    return url, definition.form(form_oid)


def html_of(response) -> str:
    return response.get_data(as_text=True)


def wrapper(html: str, name: str) -> str:
    return re.search(rf'<div class="mb-3 entry-field" id="wrap-{name}"[^>]*>', html).group(0)


def inputs_named(html: str, name: str) -> list[str]:
    return re.findall(rf'<(?:input|select|textarea)[^>]*name="{re.escape(name)}(?:-[ymd])?"[^>]*>',
                      html)


def sample(item, codelists) -> dict[str, str]:
    """A value the server accepts for an item asked unconditionally (by its field name's
    suffix: "" or the parts of a partial date)."""
    today = dt.date.today()
    if item.type is ItemType.PARTIAL_DATE:
        return {"-y": str(today.year), "-m": f"{today.month:02d}", "-d": "UK"}
    if item.type is ItemType.DATE:
        return {"": today.isoformat()}
    if item.type is ItemType.DATETIME:
        return {"": f"{today.isoformat()}T08:30"}
    if item.type is ItemType.TIME:
        return {"": "08:30"}
    if item.type in (ItemType.INTEGER, ItemType.DECIMAL):
        low = item.range.min if item.range and item.range.min is not None else 1
        return {"": str(max(low, 1) if not item.range or item.range.max is None
                        or item.range.max >= 1 else low)}
    if item.type is ItemType.YES_NO:
        return {"": "N"}
    if item.type in (ItemType.SINGLE_CHOICE, ItemType.MULTIPLE_CHOICE):
        codes = item.choices or codelists[item.codelist]
        return {"": codes.items[0].code}
    return {"": "Typed in a test"}


def fill_row(form_def, group, row: int, codelists) -> dict[str, str]:
    data = {}
    for item in group.items:
        if item.show_if or item.type is ItemType.CALCULATED:
            continue
        for suffix, value in sample(item, codelists).items():
            data[f"{group.oid}-{row}-{item.oid}{suffix}"] = value
    return data


REPEATING = [
    ("DEXAML03", "AE"), ("DEXAML03", "CM"), ("DEXAML03", "MH"), ("DEXAML03", "DV"),
    ("DEXAML03", "DEXADM"), ("UCMSCEXO", "AE"), ("UCMSCEXO", "INFECT"),
    ("UCMSCEXO", "BLEED"), ("UCMSCEXO", "FN"),
]


@pytest.mark.parametrize(("trial", "form_oid"), REPEATING, ids=[f"{t}-{f}" for t, f in REPEATING])
def test_a_row_is_added_filled_saved_edited_and_removed(client, make_study, login_as, trial,
                                                        form_oid):
    subject = enrolled(make_study, login_as, trial)
    url, form_def = started(client, subject, form_oid)
    codelists = definition_for(subject.study_version).codelists
    group = next(g for g in form_def.groups if g.repeating)
    others = [g for g in form_def.groups if not g.repeating]
    base = {}
    for other in others:  # the form's other questions, answered once
        base.update(fill_row(form_def, other, 1, codelists))

    # "Add a row" without JavaScript: the new row's unconditional questions are shown and
    # can be typed in; its conditional ones wait for their answer.
    response = client.post(url, data={"action": f"add:{group.oid}", f"rows-{group.oid}": "",
                                      "base_version": "", **base})
    assert response.status_code == 200
    html = html_of(response)
    assert f'name="rows-{group.oid}" value="1"' in html
    assert f'data-focus="row-{group.oid}-1"' in html
    for item in group.items:
        if item.type is ItemType.CALCULATED:
            continue
        name = f"{group.oid}-1-{item.oid}"
        shown = "hidden" not in wrapper(html, name)
        enabled = all(" disabled" not in tag for tag in inputs_named(html, name))
        if not item.show_if:
            assert shown and enabled, (name, wrapper(html, name))
    assert "Required to mark the form complete." not in html
    assert "is-invalid" not in html

    # Fill it and save: the row is stored.
    data = {"action": "save", f"rows-{group.oid}": "1", "base_version": "", **base,
            **fill_row(form_def, group, 1, codelists)}
    response = client.post(url, data=data)
    assert response.status_code == 302, html_of(response)[:5000]
    first = next(i for i in group.items if not i.show_if and i.type in (ItemType.TEXT,
                                                                        ItemType.DATE,
                                                                        ItemType.PARTIAL_DATE,
                                                                        ItemType.SINGLE_CHOICE,
                                                                        ItemType.YES_NO))
    stored = db.session.scalar(select(ItemValue).where(
        ItemValue.group_oid == group.oid, ItemValue.row == 1, ItemValue.item_oid == first.oid))
    assert stored is not None and stored.value
    html = html_of(client.get(url))
    assert f'id="row-{group.oid}-1"' in html and "hidden" not in wrapper(
        html, f"{group.oid}-1-{first.oid}")

    # A second row, added and dropped before it was ever saved, simply disappears.
    response = client.post(url, data={**data, "action": f"add:{group.oid}",
                                      "base_version": "1"})
    assert f'name="rows-{group.oid}" value="1,2"' in html_of(response)
    response = client.post(url, data={**data, "action": "refresh", "base_version": "1",
                                      f"rows-{group.oid}": "1,2", f"remove-{group.oid}-2": "1"})
    assert f'name="rows-{group.oid}" value="1"' in html_of(response)

    # Editing a saved value needs a reason.
    text_item = next((i for i in group.items if i.type is ItemType.TEXT and not i.show_if), None)
    if text_item is not None:
        name = f"{group.oid}-1-{text_item.oid}"
        changed = {**data, "base_version": "1", name: "Corrected in a test"}
        response = client.post(url, data=changed)
        assert response.status_code == 422
        assert "Give a reason for changing" in html_of(response)
        assert "Corrected in a test" in html_of(response)  # kept on the page
        changed[f"reason-{name}"] = "typing error"
        assert client.post(url, data=changed).status_code == 302
        assert db.session.scalar(select(ItemValue.value).where(
            ItemValue.group_oid == group.oid, ItemValue.row == 1,
            ItemValue.item_oid == text_item.oid)) == "Corrected in a test"
        data = {**changed, "base_version": "2"}
        del data[f"reason-{name}"]
    version = data["base_version"] if text_item is not None else "1"

    # Removing the saved row is a status with a reason, never a deletion.
    removing = {**data, "base_version": version, f"remove-{group.oid}-1": "1"}
    response = client.post(url, data=removing)
    assert response.status_code == 422
    assert "Give a reason for removing row 1" in html_of(response)
    removing[f"remove_reason-{group.oid}-1"] = "entered in the wrong subject"
    assert client.post(url, data=removing).status_code == 302
    record = db.session.scalar(select(GroupRow).where(GroupRow.group_oid == group.oid,
                                                      GroupRow.row == 1))
    assert record.removed_at is not None and record.removal_reason == \
        "entered in the wrong subject"
    assert db.session.scalar(select(ItemValue).where(ItemValue.group_oid == group.oid,
                                                     ItemValue.row == 1,
                                                     ItemValue.item_oid == first.oid))
    html = html_of(client.get(url))
    assert "1 removed row" in html and "entered in the wrong subject" in html
    assert f'name="rows-{group.oid}" value=""' in html


def test_show_if_inside_rows_is_decided_per_row(client, make_study, login_as):
    subject = enrolled(make_study, login_as, "DEXAML03")
    url, _form = started(client, subject, "AE")
    data = {"action": "refresh", "rows-AE_LINE": "1,2", "base_version": "",
            "AE_LINE-1-AESER": "Y", "AE_LINE-2-AESER": "N", "AE_LINE-1-AEONGO": "N",
            "AE_LINE-2-AEONGO": "Y"}
    html = html_of(client.post(url, data=data))
    assert "hidden" not in wrapper(html, "AE_LINE-1-AESHOSP")
    assert "hidden" in wrapper(html, "AE_LINE-2-AESHOSP")
    assert "hidden" not in wrapper(html, "AE_LINE-1-AEENDTC")
    assert "hidden" in wrapper(html, "AE_LINE-2-AEENDTC")
    # The browser gets the same condition, naming its own row's field.
    assert '"f":"AE_LINE-2-AESER"' in wrapper(html, "AE_LINE-2-AESHOSP").replace("&#34;", '"')


def test_a_fresh_form_opens_without_errors(client, make_study, login_as):
    subject = enrolled(make_study, login_as, "DEXAML03")
    url, _form = started(client, subject, "CONSENT")
    html = html_of(client.get(url))
    assert "The consent date is in the future." not in html
    assert "cannot be included without written informed consent" not in html
    assert "alert-danger" not in html and "is-invalid" not in html
    assert "Required to mark the form complete." not in html

    # A plain save of part of the form names no blank as an error, and date checks wait
    # for their dates.
    partial = {"action": "save", "base_version": "", "CONSENT_MAIN-1-CONSYN": "Y"}
    response = client.post(url, data=partial)
    assert response.status_code == 302
    html = html_of(client.get(url))
    assert "The consent date is in the future." not in html
    assert "Required to mark the form complete." not in html

    # Marking it complete names every blank required item, beside the field.
    response = client.post(url, data={**partial, "action": "complete", "base_version": "1"})
    assert response.status_code == 422
    html = html_of(response)
    assert "Required to mark the form complete." in html
    assert "Date the consent form was signed by the patient" in html

    # A value fires its check.
    future = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    response = client.post(url, data={**partial, "base_version": "1",
                                      "CONSENT_MAIN-1-CONSDT": future})
    assert response.status_code == 302
    assert "The consent date is in the future." in html_of(client.get(url))


def test_the_browser_gets_conditions_on_numbers_and_blanks(client, make_study, login_as):
    subject = enrolled(make_study, login_as, "DEXAML03")
    url, _form = started(client, subject, "IND")
    last_day = unescape(wrapper(html_of(client.get(url)), "IND_AMSA-1-AMSAENDT"))
    assert ('{"op":"cmp","cmp":">","a":{"f":"IND_AMSA-1-AMSADAYS","k":"int","min":"0",'
            '"max":"7"},"b":{"v":"0","num":true}}') in last_day
    # The server agrees: a number shows the question, a number it refuses does not.
    data = {"action": "refresh", "base_version": ""}
    html = html_of(client.post(url, data={**data, "IND_AMSA-1-AMSADAYS": "3"}))
    assert "hidden" not in wrapper(html, "IND_AMSA-1-AMSAENDT")
    html = html_of(client.post(url, data={**data, "IND_AMSA-1-AMSADAYS": "9"}))
    assert "hidden" in wrapper(html, "IND_AMSA-1-AMSAENDT")

    url, _form = started(client, subject, "HEMATO")
    html = html_of(client.get(url)).replace("&#34;", '"')
    assert '"op":"not","args":[{"op":"blank","a":{"f":"' in html


@pytest.mark.parametrize("scope", ["subject", "study_frozen", "study_locked"])
def test_a_locked_subject_or_study_opens_read_only_with_its_banner(client, make_study,
                                                                   login_as, scope):
    from ecrf.review import locks

    subject = enrolled(make_study, login_as, "DEXAML03")
    url, _form = started(client, subject, "CONSENT")
    if scope == "subject":
        locks.lock_subject(db.session, LOADER, subject, "monitoring visit")
        title, reason = "This subject is locked", "monitoring visit"
    else:
        transition = "freeze" if scope == "study_frozen" else "lock"
        locks.change_study_status(db.session, LOADER, subject.study, transition, "interim")
        title = "The study is frozen" if scope == "study_frozen" else "The study is locked"
        reason = "interim"
    db.session.commit()
    html = html_of(client.get(url))
    banner = re.search(r'<div class="alert[^"]*" role="status" id="lock-banner">(.*?)</div>',
                       html, re.S).group(1)
    assert title in banner and "test-loader" in banner and reason in banner
    assert dt.date.today().isoformat() in banner or \
        (dt.date.today() - dt.timedelta(days=1)).isoformat() in banner
    assert 'value="save"' not in html and 'value="complete"' not in html
    assert "Add a row" not in html and "entry.js" not in html
    response = client.post(url, data={"action": "save", "base_version": "",
                                      "CONSENT_MAIN-1-CONSVER": "v2"})
    assert response.status_code == 423
    assert 'value="v2"' in html_of(response) and title in html_of(response)
    # The event page says it too, and offers viewing only.
    event_url = url.rsplit("/forms/", 1)[0]
    page = html_of(client.get(event_url))
    assert title in page and 'id="lock-banner"' in page
    assert 'name="not_done_reason"' not in page and 'name="actual_date"' not in page
    assert re.search(r">\s*View<span", page) and not re.search(r">\s*Enter<span", page)


@pytest.mark.parametrize("number", ["²", "٣", "9" * 5000, "-1", " 1 2", "\x00"])
def test_hostile_numbers_in_an_entry_post_are_not_numbers(client, make_study, login_as,
                                                          number):
    """Row numbers, versions and counts are ASCII digits of a sane length, or ignored: a
    superscript digit or a 5,000-digit row never reaches int() and a 500."""
    subject = enrolled(make_study, login_as, "DEXAML03")
    definition = definition_for(subject.study_version)
    event = definition.events_with_form("AE")[0]
    url = form_url(subject, event.oid, "AE")
    client.post(url.rsplit("/forms/", 1)[0] + "/start", data={"actual_date": ""})
    response = client.post(url, data={
        "action": "add:AE_LINE", "base_version": number, "rows-AE_LINE": f"1,{number}",
        f"reason-AE_LINE-{number}-AETERM": "why", f"ack-X-{number}": "ok",
        f"remove-AE_LINE-{number}": "1", "AE_LINE-1-AETERM": "Nausea"})
    # A NUL is refused by the input boundary before the form is read, with what was typed
    # shown back; anything else re-renders the form with the row kept.
    assert response.status_code == (400 if "\x00" in number else 200)
    assert "Nausea" in html_of(response)
    history = client.get(url + f"/history?group=AE_LINE&item=AETERM&row={number}")
    # An argument over 4,000 characters, or holding a NUL, is refused before the route.
    assert history.status_code == (400 if len(number) > 4000 or "\x00" in number else 404)
