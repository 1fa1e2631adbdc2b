"""Schemathesis over the OpenAPI document (/api/v1/openapi.json), through the WSGI app (no
network): every operation, with valid and invalid parameters and bodies generated from its
schema, never answers a server error. A fixed budget, derandomized: the same requests on
every run."""

from __future__ import annotations

import collections
import time

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.api import API

BUDGET = 800
# Path parameters that name something real, so that generated requests reach the
# operations and not only their 404.
KNOWN = {"study_oid": "CAPTURE", "subject_key": "S01-001", "event_oid": "SCREEN", "repeat": 1,
         "form_oid": "VITALS"}


def test_schemathesis_finds_no_server_error(app, world):
    crc = world["crc"]
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        fixed = {k: v for k, v in KNOWN.items() if k in names}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(generation_mode=mode))
            if fixed:
                strategies.append(operation.as_strategy(generation_mode=mode,
                                                        path_parameters=fixed))
    operations = len(strategies)
    answers = collections.Counter()

    @settings(max_examples=BUDGET, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(strategies))
    def run(case):
        response = case.call(headers=crc)
        case.validate_response(response, checks=[not_a_server_error])
        answers[response.status_code] += 1

    start = time.monotonic()
    run()
    print(f"schemathesis: {sum(answers.values())} requests over {operations} strategies, "
          f"{dict(sorted(answers.items()))}, {time.monotonic() - start:.1f} s")
    assert sum(answers.values()) >= BUDGET and not any(code >= 500 for code in answers)
