"""Property: whatever text, number, date or JSON a client sends to the API or posts to the
screens, the answer is never a server error (Hypothesis, fixed budget, derandomized)."""

from __future__ import annotations

import collections
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api import STUDY, form_url
from tests.app.test_input_boundary import FORM_WEB, SUBJECT_WEB
from tests.conftest import sign_in

BUDGET = 400

# Any code point, surrogates and NUL included, and the values the outside fuzz used.
ANY_CHAR = st.characters(exclude_categories=())
NASTY = st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff", "9" * 30, "-1", "²",
                         "0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00",
                         "9999-12-31T23:59:59-12:00", "x" * 5000, "", " ", "%00", "../",
                         "1e309", "NaN"])
TEXT = st.one_of(st.text(max_size=30), NASTY, st.text(ANY_CHAR, max_size=10))
# What a browser can post: form data is UTF-8, in which a lone surrogate cannot be written.
FORM_TEXT = TEXT.filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t))
NUMBER = st.one_of(st.integers(), st.integers(min_value=2**31 - 2, max_value=2**70))
SCALAR = st.one_of(TEXT, NUMBER, st.none(), st.booleans(),
                   st.decimals(allow_nan=False, allow_infinity=False))
JSON_VALUE = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=8)
ITEM_KEY = st.one_of(st.sampled_from(["VS.1.WEIGHT", "VS.1.SEX", "VS.1.VSDT", "VS.1.RACE",
                                      "VS.1.HEIGHT", "VS.1.BRTHDT", "VS.1.VSTM"]),
                     st.builds("VS.{}.WEIGHT".format, NUMBER), TEXT)


def _json(value) -> str:
    return json.dumps(value, default=str)


def _deep(depth: int) -> str:
    return '{"values": ' + "[" * depth + "]" * depth + "}"


API_READS = ["/subjects?page={}", "/subjects?per_page={}", "/subjects?cursor={}",
             "/subjects/{}", "/subjects/S01-001/audit?after={}",
             "/subjects/S01-001/audit?from={}", "/subjects/S01-001/audit?to={}",
             "/audit?to={}", "/queries?subject={}", "/queries/{}",
             "/subjects/S01-001/events/SCREEN/{}/forms/VITALS", "/jobs/{}", "/locks?page={}"]
WEB_READS = ["/studies/CAPTURE/subjects?page={}", "/studies/CAPTURE/subjects/{}",
             SUBJECT_WEB + "/audit?from={}", SUBJECT_WEB + "/audit?to={}",
             SUBJECT_WEB + "/events/SCREEN/{}/forms/VITALS", "/studies/CAPTURE/queries/{}",
             "/admin/users?page={}", "/studies/CAPTURE/queries?site={}"]


def _quoted(value) -> str:
    from urllib.parse import quote

    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


REQUESTS = st.one_of(
    # API: form saves with any values, reasons and keys; raw JSON, deep JSON
    st.builds(lambda values, reasons, version: ("api", "put", form_url("S01-001"), {
        "data": _json({"version": version, "partial": True, "values": values,
                       "reasons": reasons}).encode("utf-8", "surrogatepass"),
        "content_type": "application/json"}),
        st.dictionaries(ITEM_KEY, JSON_VALUE, max_size=3),
        st.dictionaries(ITEM_KEY, JSON_VALUE, max_size=2), st.one_of(NUMBER, st.none())),
    st.builds(lambda depth: ("api", "put", form_url("S01-001"), {
        "data": _deep(depth), "content_type": "application/json"}),
        st.sampled_from([63, 64, 65, 1000, 100_000])),
    # API: queries raised and answered with any text
    st.builds(lambda body: ("api-monitor", "post", f"{STUDY}/queries", {
        "data": _json(body).encode("utf-8", "surrogatepass"),
        "content_type": "application/json"}),
        st.fixed_dictionaries({"subject_key": TEXT, "text": TEXT, "event_oid": TEXT,
                               "form_oid": TEXT, "item_oid": TEXT, "repeat": NUMBER,
                               "row": NUMBER})),
    st.builds(lambda text: ("api", "post", "ANSWER", {
        "data": _json({"text": text}).encode("utf-8", "surrogatepass"),
        "content_type": "application/json"}), TEXT),
    # API: reads with any argument or path segment
    st.builds(lambda pattern, value: ("api", "get", STUDY + pattern.format(_quoted(value)), {}),
              st.sampled_from(API_READS), st.one_of(TEXT, NUMBER)),
    # screens: sign-in, form posts, token names, reads
    st.builds(lambda user, password: ("anonymous", "post", "/login", {
        "data": {"username": user, "password": password}}),
        FORM_TEXT, FORM_TEXT),
    st.builds(lambda weight, reason: ("web", "post", FORM_WEB, {
        "data": {"VS-1-WEIGHT": weight, "reason-VS-1-WEIGHT": reason, "action": "save"}}),
        FORM_TEXT, FORM_TEXT),
    st.builds(lambda name, days: ("web", "post", "/account/tokens", {
        "data": {"name": name, "days": days}}),
        FORM_TEXT, st.one_of(NUMBER.map(str), FORM_TEXT)),
    st.builds(lambda pattern, value: ("web", "get", pattern.format(_quoted(value)), {}),
              st.sampled_from(WEB_READS), st.one_of(TEXT, NUMBER)),
)


def test_no_input_gives_a_server_error(app, world):
    web, anonymous, api = app.test_client(), app.test_client(), app.test_client()
    assert sign_in(web, "mon1").status_code == 302  # reads the audit and the queries
    crc_web = app.test_client()
    assert sign_in(crc_web, "crc1").status_code == 302
    answer = f"{STUDY}/queries/{world['query']}/answer"
    tried = collections.Counter()

    @settings(max_examples=BUDGET, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(request=REQUESTS)
    def run(request):
        who, method, url, kwargs = request
        url = answer if url == "ANSWER" else url
        if who.startswith("api"):
            token = world["mon"] if who == "api-monitor" else world["crc"]
            response = getattr(api, method)(url, headers=token, **kwargs)
        elif who == "anonymous":
            response = getattr(anonymous, method)(url, **kwargs)
        else:
            client = crc_web if method == "post" else web
            response = getattr(client, method)(url, **kwargs)
        tried[response.status_code] += 1
        assert response.status_code < 500, (method, url, kwargs,
                                            response.get_data(as_text=True)[:300])

    start = time.monotonic()
    run()
    print(f"property: {sum(tried.values())} requests, {dict(sorted(tried.items()))}, "
          f"{time.monotonic() - start:.1f} s")
    assert sum(tried.values()) >= BUDGET and not any(code >= 500 for code in tried)
