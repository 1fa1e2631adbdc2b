"""Events, forms, items, codes and conditions named for a reader, from the real trials."""

from pathlib import Path

import pytest

from ecrf.crf import load_study
from ecrf.crf.naming import ConditionText, Name, Naming, Reader, describe_condition
from ecrf.crf.values import Message

FORMS = Path(__file__).resolve().parents[2] / "forms"
FR = Reader(language="fr")


@pytest.fixture(scope="module")
def dexa():
    return load_study(FORMS / "dexaml03").definition


def test_events_forms_and_items_by_label(dexa):
    names = Naming(dexa)
    assert names.event("AZA_CYC", 5) == "Azacitidine cycle 2 onwards, #5"
    assert names.event("SCREEN", 1) == dexa.event("SCREEN").name  # one visit: no number
    assert names.item("IND", "AMSAENDT", 1) == \
        "Induction (amsacrine-cytarabine) — Last day of amsacrine (row 1)"
    french = Naming(dexa, FR)
    assert french.event("AZA_CYC", 5) == "Azacitidine cycles 2 et suivants, #5"
    assert french.form("SALVAGE") == "Choix du traitement de rattrapage"


def test_oids_only_when_the_reader_asks(dexa):
    assert "[SALVAGE]" not in Naming(dexa).form("SALVAGE")
    shown = Naming(dexa, Reader(show_oids=True))
    assert shown.form("SALVAGE") == "Choice of salvage therapy [SALVAGE]"
    assert shown.event("AZA_CYC", 2) == "Azacitidine cycle 2 onwards [AZA_CYC], #2"


def test_a_condition_is_said_with_labels(dexa):
    salvage = dexa.form("SALVAGE")
    text = describe_condition('SALVAGE.SALVTYPE = "AZA"', salvage, dexa.codelists, dexa.forms)
    assert text == "Planned salvage therapy (stratification factor) is " \
        + dexa.codelist("SALVTYPE").label_of("AZA")
    both = describe_condition('SALVAGE.SALVTYPE = "INTENSIVE" and RESP.RSCAT in ("CR", "CRi")',
                              None, dexa.codelists, dexa.forms, FR)
    # Labels in French (the connectives are translated by the web layer's gettext).
    assert both.startswith("Traitement de rattrapage prévu (facteur de stratification) is "
                           "Chimiothérapie intensive")
    assert "SALVTYPE" not in both and "RSCAT" not in both
    # Too complex to say well: the source is kept.
    source = "round(DOSEKG * WEIGHT, 1) > 3"
    assert describe_condition(source, salvage, dexa.codelists, dexa.forms) == source


def test_a_message_names_items_in_the_readers_language(dexa):
    salvage = dexa.form("SALVAGE")
    item = salvage.item("SALVTYPE")
    message = Message("%(label)s applies when %(condition)s", {
        "label": Name(item.label, item.labels, item.oid),
        "condition": ConditionText('SALVTYPE = "AZA"', salvage, dexa.codelists, dexa.forms)})
    assert str(message).startswith("Planned salvage therapy")  # English where no reader
    french = message.render(reader=FR)
    assert french.startswith("Traitement de rattrapage prévu")
    assert "SALVTYPE" not in french
    assert "[SALVTYPE]" in message.render(reader=Reader(show_oids=True))


def test_arms_by_name(dexa):
    assert Naming(dexa).arm("CTRL") == "Salvage therapy alone"
    assert Naming(dexa, FR).arm("CTRL") == "Traitement de rattrapage seul"
    assert Naming(dexa, Reader(show_oids=True)).arm("DEX") == \
        "Salvage therapy + dexamethasone [DEX]"
    assert Naming(dexa).arm("NOPE") == "NOPE" and Naming(dexa).arm(None) == ""


def test_schedule_conditions_name_the_stratum_used_and_anchors(dexa):
    names = Naming(dexa)
    assert names.condition('subject.stratum.salvage = "INTENSIVE"') == \
        "Planned salvage therapy (stratification factor) at randomization is " \
        "Intensive chemotherapy (amsacrine-cytarabine)"
    both = names.condition('subject.stratum.salvage = "INTENSIVE" and RESP.RSCAT in ("CR", "CRi")')
    assert both.startswith("Planned salvage therapy (stratification factor) at randomization")
    assert "Complete remission" in both
    shown = Naming(dexa, Reader(show_oids=True)).condition('subject.stratum.salvage = "AZA"')
    assert shown.endswith('[subject.stratum.salvage = "AZA"]')
    assert names.condition("count(FOO) > 1") == "count(FOO) > 1"  # too complex: the source
    assert names.anchor("eot") == "End of treatment"
    assert Naming(dexa, FR).anchor("death") == "Décès"
    assert names.anchor("enrolment") == "enrolment"
