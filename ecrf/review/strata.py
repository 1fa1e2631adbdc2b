"""A query on a stratification factor corrected after randomization.

The allocation keeps the stratum it was made in (``Subject.strata``) and the schedule
follows it; the correction is a mis-stratification that the site must document, so the
save opens a query on the corrected item saying what was used and what is recorded now.
"""

from __future__ import annotations

import json
import logging

from ecrf.capture import FormInstance, Subject
from ecrf.core import FormChange, audit
from ecrf.review import queries
from ecrf.review.support import ReviewError
from ecrf.studies import definition_for

log = logging.getLogger(__name__)

TEXT = ("Mis-stratification: {subject} was randomized with {label} = {used} (stratum "
        "{stratum}); it is now recorded as {new}. The allocation (arm {arm}) and the "
        "treatment schedule keep the stratum used at randomization. Confirm the corrected "
        "value against the source and document the mis-stratification.")


# Held back while historical data is imported (``audit.historical_import``).
AUTOMATIC_QUERIES = "automatic_queries"


def query_misstratification(change: FormChange) -> None:
    subject, form = change.subject, change.form_instance
    if not isinstance(subject, Subject) or not isinstance(form, FormInstance) \
            or not subject.arm or not change.changes \
            or audit.held_back(change.session, AUTOMATIC_QUERIES):
        return
    definition = definition_for(form.study_version)
    try:
        used = json.loads(subject.strata) if subject.strata else {}
    except ValueError:
        used = {}
    for item in change.changes:
        name = definition.strata_items.get((change.form_oid, item.item))
        if name is None or used.get(name) == item.new:
            continue
        item_def = definition.item(change.form_oid, item.item)
        choices = definition.choices_of(change.form_oid, item.item)
        labels = {c.code: c.label for c in choices.items} if choices else {}

        def shown(code, labels=labels):
            return f"{labels.get(code, code)} ({code})" if code else "blank"

        text = TEXT.format(subject=subject.subject_key, label=item_def.label,
                           used=shown(used.get(name)), stratum=name, new=shown(item.new),
                           arm=subject.arm)
        target = queries.QueryTarget(change.event_oid, change.repeat, change.form_oid,
                                     item.group, item.row, item.item)
        try:
            queries.raise_query(change.session, change.actor, subject, text, target=target)
        except ReviewError as exc:
            # Whoever may correct a stratum may raise queries; if a grant says otherwise
            # the correction still stands and the audit trail records it.
            log.warning("no mis-stratification query for %s: %s", subject.subject_key, exc)
