"""Data-entry screens through the test client: events, every field type, show_if,
required_if, reasons for change, warnings, repeating rows, stale saves, permissions."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ecrf.capture import write as capture_write
from ecrf.capture.models import EventInstance, FormInstance, GroupRow, ItemValue
from ecrf.core.extensions import db
from tests.capture.capture_setup import count_audit, count_values, enrol, load_capture_study
from tests.conftest import count_statements, is_postgres, sign_in

BASE = "/studies/CAPTURE/subjects/S01-001"
SCREEN = BASE + "/events/SCREEN/1"
VITALS = SCREEN + "/forms/VITALS"
AE_LOG = BASE + "/events/AE_LOG/1"
AE = AE_LOG + "/forms/AE"


@pytest.fixture
def study(app, make_study):
    study = load_capture_study(make_study)
    enrol(study, "S01-001", "S01")
    enrol(study, "S02-001", "S02")
    return study


@pytest.fixture
def crc(study, login_as):
    return login_as("coordinator", site="S01", study="CAPTURE", username="crc1")


def start(client, event=SCREEN, day="2025-05-02"):
    response = client.post(event + "/start", data={"actual_date": day})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]


def vitals(**values):
    data = {"VS-1-VSDT": "2025-05-02", "VS-1-SEX": "M", "VS-1-WEIGHT": "72.5",
            "VS-1-HEIGHT": "180", "action": "save", "base_version": ""}
    for name, value in values.items():
        data[name if name in ("action", "base_version") or "-" in name else f"VS-1-{name}"] = value
    return {k: v for k, v in data.items() if v is not None}


def value(item, group="VS", row=1):
    iv = db.session.scalar(select(ItemValue).where(ItemValue.item_oid == item,
                                                   ItemValue.group_oid == group,
                                                   ItemValue.row == row))
    return iv.value if iv else None


def page(response) -> str:
    return response.get_data(as_text=True)


def wrapper(html: str, name: str) -> str:
    return re.search(rf'<div class="mb-3 entry-field" id="wrap-{name}"[^>]*>', html).group(0)


def field_error(html: str, name: str) -> str:
    match = re.search(rf'id="{re.escape(name)}-error"[^>]*>(.*?)</div>', html, re.S)
    return match.group(1).strip() if match else ""


def test_every_item_type_has_a_field_type():
    from ecrf.crf import ItemType
    from ecrf.crf.fields import REGISTRY

    assert set(REGISTRY) == set(ItemType)


# --- events ---------------------------------------------------------------------------------


def test_event_page_starts_the_event_and_lists_its_forms(client, crc):
    html = page(client.get(SCREEN))
    assert "Start the event" in html and 'name="actual_date"' in html
    assert "Declare not done" in html
    start(client)
    html = page(client.get(SCREEN))
    assert "Informed consent" in html and "Vital signs and demographics" in html
    assert html.count("Not started") >= 2
    assert db.session.scalar(select(EventInstance)).actual_date.isoformat() == "2025-05-02"


def test_event_start_with_a_bad_date_keeps_the_page(client, crc):
    response = client.post(SCREEN + "/start", data={"actual_date": "2099-01-01"})
    assert response.status_code == 422
    html = page(response)
    assert "is in the future" in field_error(html, "actual_date")
    assert 'value="2099-01-01"' in html
    response = client.post(SCREEN + "/start", data={"actual_date": "02/05/2025"})
    assert "Enter the date as YYYY-MM-DD" in page(response)


def test_declaring_an_event_not_done_needs_a_reason(client, crc):
    response = client.post(SCREEN + "/not-done", data={"not_done_reason": ""})
    assert response.status_code == 422
    assert "Give the reason why Screening was not done" in page(response)
    response = client.post(SCREEN + "/not-done", data={"not_done_reason": "moved away"})
    assert response.status_code == 302
    html = page(client.get(SCREEN))
    assert "moved away" in html and "Reopen the event" in html
    response = client.get(VITALS)
    assert response.status_code == 302  # no data entry into an event not done


# --- the form -------------------------------------------------------------------------------


def test_the_form_renders_every_field_type_accessibly(client, crc):
    start(client)
    html = page(client.get(VITALS))
    assert 'name="VS-1-VSDT" type="date"' in html or 'type="date"' in html
    assert 'id="VS-1-VSTM"' in html and 'type="time"' in html
    assert 'type="datetime-local"' in html
    for part in ("VS-1-BRTHDT-y", "VS-1-BRTHDT-m", "VS-1-BRTHDT-d"):
        assert f'name="{part}"' in html and f'for="{part}"' in html
    assert 'value="UK"' in html and "Unknown" in html
    assert 'type="radio"' in html and 'name="VS-1-SEX"' in html
    assert 'type="checkbox"' in html and 'name="VS-1-RACE"' in html
    assert 'inputmode="decimal"' in html and 'inputmode="numeric"' in html
    assert '<span class="input-group-text" aria-hidden="true">kg</span>' in html
    assert 'id="VS-1-WEIGHT-help"' in html and "Without shoes." in html
    weight = re.search(r'<input[^>]*id="VS-1-WEIGHT"[^>]*>', html).group(0)
    assert 'aria-describedby="VS-1-WEIGHT-unit VS-1-WEIGHT-help"' in weight
    assert 'aria-required="true"' in weight
    assert 'maxlength="3"' in html  # INITIALS
    assert "<output" in html and "calculated" in html  # BMI, AGE
    pregnant = wrapper(html, "VS-1-PREGNANT")
    assert "hidden" in pregnant and "data-show-if" in pregnant
    assert '"cmp":"=","a":{"f":"VS-1-SEX","k":"text"},"b":{"v":"F"}' in pregnant.replace(
        "&#34;", '"')
    assert "Save and mark complete" in html and "entry.js" in html


def test_a_valid_draft_is_saved_and_shown_with_history_links(client, crc):
    start(client)
    response = client.post(VITALS, data=vitals(**{"VS-1-BRTHDT-y": "1970", "VS-1-BRTHDT-m": "03",
                                                 "VS-1-BRTHDT-d": "UK"}, RACE="ASIAN"))
    assert response.status_code == 302
    assert value("WEIGHT") == "72.5" and value("BRTHDT") == "1970-03"
    assert value("RACE") == '["ASIAN"]' and value("BMI") == "22.4"
    html = page(client.get(VITALS))
    assert "In progress" in html and "Saved as in progress" in html
    assert "history?group=VS&amp;row=1&amp;item=WEIGHT" in html
    assert 'name="base_version" value="1"' in html
    assert "22.4 kg/m2" in html


def test_bad_input_keeps_the_users_values_and_says_why(client, crc):
    start(client)
    data = vitals(WEIGHT="12", HEIGHT="1m80", INITIALS="ABCD", VSTM="25:61")
    response = client.post(VITALS, data=data)
    assert response.status_code == 422
    html = page(response)
    assert "Nothing was saved" in html
    assert "12 kg is impossible: enter a value from 20 kg to 300 kg." in \
        field_error(html, "VS-1-WEIGHT")
    assert "Enter a whole number" in field_error(html, "VS-1-HEIGHT")
    assert "At most 3 characters" in field_error(html, "VS-1-INITIALS")
    assert "Enter the time as HH:MM" in field_error(html, "VS-1-VSTM")
    assert 'value="1m80"' in html and 'value="ABCD"' in html and 'value="12"' in html
    height = re.search(r'<input[^>]*id="VS-1-HEIGHT"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in height and "VS-1-HEIGHT-error" in height
    assert '<a href="#wrap-VS-1-HEIGHT">' in html  # the error summary links to the field
    assert count_values() == 0 and db.session.scalar(select(FormInstance)) is None


@pytest.mark.parametrize("parts, stored, message", [
    (("2024", "UK", ""), "2024", None),
    (("2024", "03", "UK"), "2024-03", None),
    (("2024", "03", "15"), "2024-03-15", None),
    (("2024", "02", "30"), None, "no day 30 in 2024-02 (last day 29)"),
    (("2024", "", ""), None, "Choose the month, or Unknown."),
    (("", "03", "15"), None, "Enter the year"),
    (("24", "UK", "UK"), None, "The year has four digits"),
    (("2024", "UK", "15"), None, "A day without a month is not a date"),
])
def test_partial_dates_from_their_parts(client, crc, parts, stored, message):
    start(client)
    year, month, day = parts
    response = client.post(VITALS, data=vitals(**{"VS-1-BRTHDT-y": year, "VS-1-BRTHDT-m": month,
                                                 "VS-1-BRTHDT-d": day}))
    if message is None:
        assert response.status_code == 302
        assert value("BRTHDT") == stored
    else:
        assert response.status_code == 422
        html = page(response)
        assert message in field_error(html, "VS-1-BRTHDT")
        assert f'name="VS-1-BRTHDT-y" value="{year}"' in html
        assert value("BRTHDT") is None


def test_a_hidden_item_posted_anyway_is_rejected(client, crc):
    start(client)
    response = client.post(VITALS, data=vitals(SEX="M", PREGNANT="N"))
    assert response.status_code == 422
    assert 'Pregnant is not asked here: it only applies when Sex is Female. Clear it.' in \
        field_error(page(response), "VS-1-PREGNANT")
    assert value("PREGNANT") is None and count_values() == 0


def test_update_shows_questions_and_recalculates_without_saving(client, crc):
    start(client)
    response = client.post(VITALS, data=vitals(SEX="F", WEIGHT="90.0", action="refresh"))
    assert response.status_code == 200
    html = page(response)
    pregnant = wrapper(html, "VS-1-PREGNANT")
    assert "hidden" not in pregnant.replace("data-show-if", "")
    assert "27.8 kg/m2" in html  # BMI recomputed from the typed weight
    assert count_values() == 0


def test_required_if_blocks_completion(client, crc):
    start(client)
    response = client.post(VITALS, data=vitals(SEX="F", action="complete"))
    assert response.status_code == 422
    html = page(response)
    assert "cannot be marked complete" in html and "Required but blank: Pregnant." in html
    assert "Required to mark the form complete." in field_error(html, "VS-1-PREGNANT") or \
        'id="VS-1-PREGNANT-note"' in html
    assert db.session.scalar(select(FormInstance)) is None
    response = client.post(VITALS, data=vitals(SEX="F", PREGNANT="N", action="complete"))
    assert response.status_code == 302
    assert db.session.scalar(select(FormInstance)).status == "complete"
    assert "Saved. The form is complete." in page(client.get(VITALS))


def test_changing_a_saved_value_asks_for_a_reason(client, crc):
    start(client)
    client.post(VITALS, data=vitals())
    response = client.post(VITALS, data=vitals(WEIGHT="74.0", base_version="1"))
    assert response.status_code == 422
    html = page(response)
    assert "Give a reason for changing Weight (saved value: 72.5)." in \
        field_error(html, "VS-1-WEIGHT")
    box = re.search(r'<div class="reason-box[^"]*" id="VS-1-WEIGHT-reasonbox"[^>]*>', html).group(0)
    assert "hidden" not in box
    assert 'value="74.0"' in html
    response = client.post(VITALS, data=vitals(WEIGHT="74.0", base_version="1",
                                                **{"reason-VS-1-WEIGHT": "scale error"}))
    assert response.status_code == 302
    assert value("WEIGHT") == "74.0"
    html = page(client.get(VITALS + "/history?group=VS&row=1&item=WEIGHT"))
    assert "72.5 kg" in html and "74.0 kg" in html and "scale error" in html
    assert "crc1" in html and "item.changed" in html


def test_warnings_are_acknowledged_on_the_page(client, crc):
    start(client)
    data = vitals(WEIGHT="160.0", action="complete")
    response = client.post(VITALS, data=data)
    assert response.status_code == 422
    html = page(response)
    assert "Weight 160.0 kg is outside the expected range 35 kg to 150 kg" in html
    assert 'name="ack-WEIGHT.soft_range-0"' in html and 'name="ack-VS_BMI-0"' in html
    data.update({"ack-WEIGHT.soft_range-0": "checked twice", "ack-VS_BMI-0": "obese subject"})
    response = client.post(VITALS, data=data)
    assert response.status_code == 302
    html = page(client.get(VITALS))
    assert "Acknowledged: checked twice" in html and "Complete" in html


def test_error_checks_are_shown_beside_the_fields(client, crc):
    start(client)
    response = client.post(VITALS, data=vitals(**{"VS-1-BRTHDT-y": "2015", "VS-1-BRTHDT-m": "01",
                                                 "VS-1-BRTHDT-d": "01"}))
    assert response.status_code == 302  # a draft may fail a check
    html = page(client.get(VITALS))
    assert "The subject is younger than the minimum age." in html
    assert 'href="#wrap-VS-1-AGE"' in html


def test_a_stale_save_is_refused_and_the_entries_stay(client, crc, make_user, app):
    start(client)
    client.post(VITALS, data=vitals())
    make_user("crc2", role="coordinator", study="CAPTURE", site="S01")
    other = app.test_client()
    sign_in(other, "crc2")
    response = other.post(VITALS, data=vitals(WEIGHT="73.0", base_version="1",
                                               **{"reason-VS-1-WEIGHT": "re-weighed"}))
    assert response.status_code == 302
    response = client.post(VITALS, data=vitals(HEIGHT="181", base_version="1",
                                               **{"reason-VS-1-HEIGHT": "re-measured"}))
    assert response.status_code == 409
    html = page(response)
    assert "This form was saved by crc2" in html and "WEIGHT" in html
    assert 'value="181"' in html  # the user's entry is still there
    assert 'name="base_version" value="2"' in html
    assert value("HEIGHT") == "180" and value("WEIGHT") == "73.0"


# --- repeating groups -----------------------------------------------------------------------


def ae_row(row, term, start_parts=("2025", "05", "UK"), **extra):
    y, m, d = start_parts
    data = {f"AE_LINE-{row}-AETERM": term, f"AE_LINE-{row}-AESTDTC-y": y,
            f"AE_LINE-{row}-AESTDTC-m": m, f"AE_LINE-{row}-AESTDTC-d": d}
    data.update({f"AE_LINE-{row}-{k}": v for k, v in extra.items()})
    return data


def test_rows_are_added_saved_and_removed_with_a_reason(client, crc):
    start(client, AE_LOG, "")
    html = page(client.get(AE))
    assert "No rows yet." in html and 'value="add:AE_LINE"' in html
    response = client.post(AE, data={"action": "add:AE_LINE", "rows-AE_LINE": "",
                                     "base_version": ""})
    assert response.status_code == 200
    html = page(response)
    assert 'name="AE_LINE-1-AETERM"' in html and 'name="rows-AE_LINE" value="1"' in html
    data = {"action": "save", "rows-AE_LINE": "1,2", "base_version": "",
            **ae_row(1, "Nausea"), **ae_row(2, "Fever", AESER="Y", AESHOSP="N")}
    assert client.post(AE, data=data).status_code == 302
    assert value("AETERM", "AE_LINE", 2) == "Fever"
    html = page(client.get(AE))
    assert 'name="remove_reason-AE_LINE-2"' in html
    data = {"action": "save", "rows-AE_LINE": "1,2", "base_version": "1",
            **ae_row(1, "Nausea"), **ae_row(2, "Fever", AESER="Y", AESHOSP="N"),
            "remove-AE_LINE-2": "1"}
    response = client.post(AE, data=data)
    assert response.status_code == 422
    assert "Give a reason for removing row 2 of AE_LINE." in page(response)
    data["remove_reason-AE_LINE-2"] = "entered twice"
    assert client.post(AE, data=data).status_code == 302
    row = db.session.scalar(select(GroupRow).where(GroupRow.row == 2))
    assert row.removed_at is not None and row.removal_reason == "entered twice"
    html = page(client.get(AE))
    assert "1 removed row" in html and "entered twice" in html
    assert 'name="rows-AE_LINE" value="1"' in html


def test_row_checks_and_show_if_per_row(client, crc):
    start(client, AE_LOG, "")
    data = {"action": "save", "rows-AE_LINE": "1,2", "base_version": "",
            **ae_row(1, "Rash", ("2025", "05", "10"), **{"AEENDTC-y": "2025", "AEENDTC-m": "05",
                                                         "AEENDTC-d": "01"}),
            **ae_row(2, "Cough", AESER="N", AESHOSP="Y")}
    response = client.post(AE, data=data)
    assert response.status_code == 422
    assert "is not asked here" in field_error(page(response), "AE_LINE-2-AESHOSP")
    del data["AE_LINE-2-AESHOSP"]
    assert client.post(AE, data=data).status_code == 302
    html = page(client.get(AE))
    assert "Resolution date is before onset." in html and "(row 1)" in html


# --- permissions ----------------------------------------------------------------------------


def test_monitor_reads_but_cannot_save(client, study, login_as, make_user, app):
    other = app.test_client()
    make_user("crcx", role="coordinator", study="CAPTURE", site="S01")
    sign_in(other, "crcx")
    start(other)
    other.post(VITALS, data=vitals())
    login_as("monitor", study="CAPTURE", username="mon1")
    html = page(client.get(VITALS))
    assert "72.5 kg" in html and 'class="entry-form"' not in html
    assert client.post(VITALS, data=vitals(base_version="1")).status_code == 403
    assert client.post(SCREEN + "/start", data={"actual_date": "2025-05-02"}).status_code == 403


def test_sponsor_viewer_sees_no_subject_data(client, study, login_as):
    login_as("sponsor_viewer", study="CAPTURE")
    assert client.get(SCREEN).status_code == 403
    assert client.get(VITALS).status_code == 403
    assert client.post(VITALS, data=vitals()).status_code == 403


def test_coordinator_of_another_site_gets_404(client, study, login_as):
    login_as("coordinator", site="S02", study="CAPTURE")
    assert client.get(SCREEN).status_code == 404
    assert client.get(VITALS).status_code == 404
    assert client.post(VITALS, data=vitals()).status_code == 404
    assert client.post(SCREEN + "/start", data={"actual_date": "2025-05-02"}).status_code == 404
    assert client.get("/studies/CAPTURE/subjects/S02-001/events/SCREEN/1").status_code == 200


def test_unknown_events_forms_and_items_are_404(client, crc):
    start(client)
    assert client.get(BASE + "/events/NOPE/1").status_code == 404
    assert client.get(BASE + "/events/SCREEN/2").status_code == 404
    assert client.get(SCREEN + "/forms/DOSE").status_code == 404
    assert client.get(VITALS + "/history?group=VS&row=1&item=NOPE").status_code == 404


def test_an_unexpected_error_rolls_everything_back(client, crc, monkeypatch):
    start(client)
    before = (count_values(), count_audit())

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(capture_write, "_schedule_reads", boom)
    response = client.post(VITALS, data=vitals())
    assert response.status_code == 500
    assert "Nothing was saved" in page(response)
    assert (count_values(), count_audit()) == before


# --- cost of a save -------------------------------------------------------------------------

FULL_VITALS = [
    {"VSDT": "2025-05-02", "VSTM": "09:30", "SAMPLEDTM": "2025-05-02T10:15",
     "BRTHDT-y": "1970", "BRTHDT-m": "03", "BRTHDT-d": "UK", "SEX": "M", "RACE": "WHITE",
     "WEIGHT": "72.5", "HEIGHT": "180", "SMOKER": "Y", "PACKYRS": "12", "INITIALS": "JMD",
     "NEUT": "3.50", "NOTES": "First reading"},
    {"VSDT": "2025-05-03", "VSTM": "10:45", "SAMPLEDTM": "2025-05-03T11:20",
     "BRTHDT-y": "1971", "BRTHDT-m": "04", "BRTHDT-d": "UK", "SEX": "M", "RACE": "ASIAN",
     "WEIGHT": "74.0", "HEIGHT": "181", "SMOKER": "Y", "PACKYRS": "14", "INITIALS": "JMX",
     "NOTES": "Second reading", "NEUT": "3.10"},
]
# A 15-item save that changes every value, from the session check to the commit.
SAVE_STATEMENTS = 10


def test_a_full_save_with_changes_stays_within_its_statement_budget(client, crc):
    start(client)
    assert client.post(VITALS, data=vitals(**FULL_VITALS[0])).status_code == 302
    changed = vitals(base_version="1", **FULL_VITALS[1])
    changed.update({f"reason-VS-1-{item.split('-')[0]}": "re-measured"
                    for item in FULL_VITALS[1]})
    with count_statements() as counted:
        response = client.post(VITALS, data=changed)
    assert response.status_code == 302, page(response)[:2000]
    assert value("WEIGHT") == "74.0" and value("NOTES") == "Second reading"
    audit_inserts = sum("INSERT INTO audit_event" in t for t in counted.texts)
    if is_postgres():
        # The audit rows of the save in one batched insert, with the chain head's update.
        assert audit_inserts == 1
        assert not any(t.startswith("UPDATE audit_chain_head SET last_seq = %")
                       for t in counted.texts)
    # SQLite cannot batch an INSERT that returns the new ids: one per audit row there, and
    # the chain head written by a statement of its own.
    extra = 0 if is_postgres() else audit_inserts
    assert counted.n - extra <= SAVE_STATEMENTS, "\n".join(counted.texts)
