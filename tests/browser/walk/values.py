"""What the walk types into a form: values chosen from the study definition.

The walk does not invent a clinical story item by item. It asks the project's own value
generator (``ecrf.demo.values.FormValues``: a value per item from its type, range, soft
range, code list or partial-date rule, adjusted until the form's edit checks pass) for the
values of one form, with the trial's ``demo.yaml`` story first and the walk's own values
(``overrides``) above both. The generator reads the subject's recorded data (anchors,
other forms of the event) from the live server's database: reading only, every value is
then typed into the browser by the form filler.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ecrf.capture import Subject, build_context, event_instance, local_today
from ecrf.core import PROJECT_ROOT, db
from ecrf.crf import FormDef
from ecrf.crf.validation import Key
from ecrf.demo.scripts import Dates, FormScript, load_script
from ecrf.demo.values import FormValues
from ecrf.studies import Study, definition_for

FOLDERS = {"DEXAML03": "dexaml03", "UCMSCEXO": "ucmscexo"}


@dataclass
class Planned:
    """The values of one form, by (group, row, item), and the rows of its repeating groups."""

    form: FormDef
    values: dict[Key, Any]
    rows: dict[str, tuple[int, ...]] = field(default_factory=dict)


class _Owner:
    """The subject as ``FormValues`` sees it (what ``ecrf.demo`` calls its owner)."""

    def __init__(self, subject: Subject, definition, index: int) -> None:
        self.definition = definition
        self.today = local_today(subject.site.timezone)
        self.enrolled_on = subject.enrolled_on
        self.number = index
        self.birth = dt.date(1961, 4, 17)

    def dates(self, day: dt.date, repeat: int = 1) -> Dates:
        return Dates(day, self.enrolled_on, self.today, repeat)


class ValueOracle:
    """Valid values for any form of one subject, the walk's story first."""

    def __init__(self, app, study_oid: str, subject_key: str, *, index: int = 0) -> None:
        self.app, self.study_oid, self.subject_key, self.index = app, study_oid, subject_key, index
        self._script = None

    def plan(self, event_oid: str, repeat: int, form_oid: str, day: dt.date | None, *,
             overrides: dict[str, Any] | None = None, rows: int | None = None) -> Planned:
        """Values for a form of an event already started in the browser.

        ``overrides`` uses demo.yaml's notation (text, a list of codes, ``None`` for a
        blank, ``{"rows": [...]}``, date expressions such as ``enrolment+3`` or ``day``);
        ``rows`` is how many rows each repeating group gets (default: the script's, else 1).
        """
        with self.app.app_context():
            try:
                subject = db.session.scalar(
                    sa.select(Subject).join(Study, Study.id == Subject.study_id)
                    .where(Study.oid == self.study_oid, Subject.subject_key == self.subject_key))
                definition = definition_for(subject.study_version)
                form = definition.form(form_oid)
                owner = _Owner(subject, definition, self.index)
                event = event_instance(db.session, subject, event_oid, repeat)
                assert event is not None, f"{event_oid} [{repeat}] is not started"
                day = day or event.actual_date or owner.today
                context = build_context(db.session, definition, form, subject, event,
                                        owner.today)
                script = self._form_script(definition, event_oid, form_oid)
                items = dict(script.items)
                items.update(overrides or {})
                count = rows if rows is not None else (script.rows if script.rows is not None
                                                       else 1)
                counts = {g.oid: tuple(range(1, count + 1)) for g in form.groups
                          if g.repeating}
                filler = FormValues(owner, form, day, counts, FormScript(items, count),
                                    repeat)
                values = filler.settle(context)
            finally:
                db.session.remove()
        return Planned(form, values, counts)

    def _form_script(self, definition, event_oid: str, form_oid: str) -> FormScript:
        if self._script is None:
            self._script = load_script(PROJECT_ROOT / "forms" / FOLDERS[self.study_oid],
                                       definition) or False
        if not self._script:
            return FormScript()
        return self._script.form(self.subject_key, self.index, event_oid, form_oid)

