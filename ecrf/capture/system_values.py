"""Values the system writes, and stratification factors once a subject is randomized.

An item the definition says is system-written (``StudyDefinition.system_items``: the
randomization number and date, the dose level the escalation assigned, the enrolment date)
is never typed in. A save keeps the system's value whatever was posted: a blank or absent
input is the system's value, and a different one is refused with a message naming the
item, the other entries of the submission staying on the page. The randomization service
writes its items itself (``ecrf.allocation``), not through a form save, so nothing here
stands in its way.

An item holding the randomization date (``StudyDefinition.allocation_items``: the anchor
named ``randomization`` and the randomization's date item) takes a new value only for a
subject with an allocation in force (an arm): the earliest such date in the study is
``study.first.randomization``, from which a study may compute every subject's end of
follow-up, so one date typed or imported for a subject never randomized would move it for
all. Clearing is always allowed; an undone randomization clears the date itself.

A stratification item of a randomized subject (``StudyDefinition.strata_items``) may only
be corrected by a role granted ``strata.correct`` (the data manager); the allocation keeps
the stratum it was made in, and the areas that follow ``form_saved`` record the
mis-stratification.
"""

from __future__ import annotations

from collections.abc import Mapping

from ecrf.accounts import ACTIONS
from ecrf.capture.models import Subject
from ecrf.capture.structures import Change, Stored
from ecrf.core.audit import Actor
from ecrf.crf import FormDef, ItemDef, StudyDefinition
from ecrf.crf.validation import Key
from ecrf.crf.values import N_, Message, Raw, is_blank_raw

CORRECT_STRATA = "strata.correct"

SOURCE_LABELS = {
    "randomization": N_("randomization"),
    "dose_level": N_("dose-level assignment"),
    "enrolment": N_("enrolment"),
}


def system_keys(definition: StudyDefinition, form: FormDef) -> dict[Key, str]:
    """The form's system-written items, keyed as values are: (group, 1, item) -> source."""
    return {(item.group, 1, item.oid): definition.system_items[(form.oid, item.oid)]
            for item in form.items if (form.oid, item.oid) in definition.system_items}


def system_source(definition: StudyDefinition, form: FormDef, item: ItemDef) -> str | None:
    """Who writes the item (``randomization``, ``dose_level``, ...), None if a person does."""
    return definition.system_items.get((form.oid, item.oid))


def system_value(source: str, subject: Subject, stored: str | None) -> str | None:
    """What the system says an item holds: the subject's level or enrolment date, or for
    the randomization's items whatever the randomization wrote."""
    if source == "dose_level":
        return str(subject.dose_level) if subject.dose_level is not None else None
    if source == "enrolment":
        return subject.enrolled_on.isoformat() if subject.enrolled_on else None
    return stored


def apply_system_values(subject: Subject, stored: Stored, raw: dict[Key, Raw]
                        ) -> dict[Key, Message]:
    """Put the system's value of each system-written item into ``raw``; return an error
    for every posted value that differs from it."""
    errors: dict[Key, Message] = {}
    for key, source in system_keys(stored.definition, stored.form).items():
        record = stored.values.get(key)
        value = system_value(source, subject, record.value if record is not None else None)
        posted = raw.get(key)
        if not is_blank_raw(posted) and str(posted).strip() != (value or ""):
            item = stored.form.item(key[2])
            choices = stored.definition.choices_of(stored.form.oid, item.oid)
            shown = choices.label_of(value) if choices and value in choices.codes else value
            errors[key] = Message(N_(
                "%(label)s is set by the system (%(source)s) and cannot be changed here; "
                "it stays %(value)s."), {"label": item.label, "source": SOURCE_LABELS[source],
                                        "value": shown or "blank"})
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return errors


def allocation_refusals(subject: Subject, stored: Stored, posted: Mapping[Key, Raw]
                        ) -> dict[Key, Message]:
    """Posted randomization dates (``StudyDefinition.allocation_items``) of a subject with
    no allocation in force; a value equal to the stored one is not a new entry."""
    if subject.arm:
        return {}
    items = stored.definition.allocation_items
    refused: dict[Key, Message] = {}
    for key, value in posted.items():
        if (stored.form.oid, key[2]) not in items or is_blank_raw(value):
            continue
        record = stored.values.get(key)
        if record is not None and record.value == str(value).strip():
            continue
        item = stored.form.item(key[2])
        refused[key] = Message(N_(
            "%(label)s cannot be recorded: subject %(subject)s has no randomization in force. "
            "Only a randomized subject has a randomization date: the earliest one in the "
            "study sets dates for every subject, such as the end of follow-up."),
            {"label": item.label, "subject": subject.subject_key})
    return refused


def may_correct_strata(actor: Actor | None) -> bool:
    return actor is not None and actor.role in ACTIONS[CORRECT_STRATA]


def strata_refusals(subject: Subject, stored: Stored, changes: list[Change],
                    actor: Actor | None) -> Mapping[Key, Message]:
    """Changes to a stratification item of a randomized subject the actor may not make."""
    if not subject.arm or may_correct_strata(actor):
        return {}
    strata = stored.definition.strata_items
    refused = {}
    for change in changes:
        name = strata.get((stored.form.oid, change.key[2]))
        if name is None:
            continue
        item = stored.form.item(change.key[2])
        refused[change.key] = Message(N_(
            "%(label)s was used to randomize this subject (stratum %(stratum)s): after "
            "randomization only a data manager can correct it."),
            {"label": item.label, "stratum": name})
    return refused
