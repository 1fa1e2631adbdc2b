"""YAML reading with line numbers, and problems of the folder itself."""

import time
from pathlib import Path

import pytest

from ecrf.crf import Problem, check_study
from ecrf.crf.problems import format_path
from ecrf.crf.yaml_lines import Document, load_yaml, read_yaml_file

from .conftest import alias_bomb, line_of


@pytest.mark.parametrize(("parts", "text"), [
    ((), ""),
    (("oid",), "oid"),
    (("groups", 0, "items", 3, "show_if"), "groups[0].items[3].show_if"),
    (("codelists", "NY", 1), "codelists.NY[1]"),
])
def test_format_path(parts, text):
    assert format_path(parts) == text


@pytest.mark.parametrize(("problem", "text"), [
    (Problem("crfs/AE.yaml", 42, "groups[0].items[3].show_if", "unknown item 'AESERX'"),
     "crfs/AE.yaml:42: groups[0].items[3].show_if: unknown item 'AESERX'"),
    (Problem("study.yaml", None, "", "missing"), "study.yaml: missing"),
    (Problem("study.yaml", 3, "", "bad"), "study.yaml:3: bad"),
    (Problem("study.yaml", None, "events", "bad"), "study.yaml: events: bad"),
])
def test_problem_text(problem, text):
    assert str(problem) == text


def test_values_and_lines_are_kept():
    doc, problems = load_yaml("a: 1\nb:\n  - x: 2024-03-15\n    y: [1, 2.5, true, null]\n",
                              "f.yaml")
    assert problems == []
    assert doc.data == {"a": 1, "b": [{"x": "2024-03-15", "y": [1, 2.5, True, None]}]}
    assert doc.line(("a",)) == 1
    assert doc.line(("b",)) == 2
    assert doc.line(("b", 0)) == 3
    assert doc.line(("b", 0, "y", 1)) == 4
    assert doc.line(("b", 0, "missing", "deeper")) == 3  # nearest existing ancestor


def test_dates_stay_text_so_content_is_json():
    doc, _ = load_yaml("d: 2024-03-15\nt: 2024-03-15T10:00:00Z\n", "f.yaml")
    assert doc.data == {"d": "2024-03-15", "t": "2024-03-15T10:00:00Z"}


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first at line 1)"),
    ("items:\n  - oid: X\n    label: L\n    oid: Y\n", 4, "duplicate key 'oid' (first at line 2)"),
    ("m: {k: 1, k: 2}\n", 1, "duplicate key 'k'"),
])
def test_duplicate_keys_are_errors(text, line, fragment):
    _, problems = load_yaml(text, "f.yaml")
    assert [(p.line, fragment in p.message) for p in problems] == [(line, True)]


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("a: 1\nb: [1, 2\nc: 3\n", 3, "invalid YAML"),
    ("a: 1\n  b: 2\n", 2, "mapping values are not allowed here"),
    ("a: 1\n\tb: 2\n", 2, "invalid YAML"),
    ("a: 'unclosed\n", 2, "invalid YAML"),
    ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
])
def test_syntax_errors_have_their_line(text, line, fragment):
    doc, problems = load_yaml(text, "f.yaml")
    assert doc is None
    [problem] = problems
    assert problem.line == line and fragment in problem.message


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("", None, "the file is empty"),
    ("# only a comment\n", None, "the file is empty"),
    ("a: !custom 1\n", 1, "unsupported YAML value"),
    ("a: .nan\n", 1, "is not a finite number"),
    ("base: &b {x: 1}\nc:\n  <<: *b\n", 3, "merge keys (<<) are not supported"),
    ("on: 1\n", 1, "key 'on' must be text (YAML reads yes/no/on/off as true/false"),
    ("1: x\n", 1, "key '1' must be text"),
])
def test_unsupported_yaml(text, line, fragment):
    _, problems = load_yaml(text, "f.yaml")
    assert [(p.line, fragment in p.message) for p in problems] == [(line, True)]


@pytest.mark.parametrize(("text", "offset", "expected"), [
    ("e: a = b\n", 4, (1, 8)),
    ("e: 'a = b'\n", 4, (1, 9)),
    ("e: 'x = ''y'' and z'\n", 12, (1, 19)),
    ('e: "a = b"\n', 4, (1, 9)),
    ("x: 1\ne: |\n  a and\n    b = c\n", 10, (4, 7)),
    ("e: >\n  a and\n  b\n", 6, (1, None)),
    ("e: a and\n  b\n", 6, (1, None)),
])
def test_expression_offsets_map_to_file_positions(text, offset, expected):
    doc, _ = load_yaml(text, "f.yaml")
    assert doc.locate(("e",), offset) == expected


def test_document_from_data_has_no_lines():
    doc = Document.from_data("study.yaml", {"a": 1})
    assert doc.line(("a",)) is None
    assert doc.locate(("a",), 0) == (None, None)


# --- folders -------------------------------------------------------------------------


def test_missing_folder_is_a_problem(tmp_path):
    missing = tmp_path / "nope"
    assert check_study(missing) == [Problem(str(missing), None, "", "study folder not found")]


def test_a_file_is_not_a_folder(tmp_path):
    file = tmp_path / "study.yaml"
    file.write_text("x: 1\n")
    assert check_study(file) == [Problem(str(file), None, "", "not a folder")]


def test_empty_folder(tmp_path):
    assert [str(p) for p in check_study(tmp_path)] == [
        "study.yaml: missing: a study folder needs study.yaml",
        "crfs/: no CRF files (crfs/<FORM>.yaml)",
    ]


def test_yml_extension_and_encoding(study_copy):
    folder = study_copy()
    (folder / "crfs" / "EXTRA.yml").write_text("oid: EXTRA\n")
    (folder / "crfs" / "BAD.yaml").write_bytes(b"oid: \xff\xfe\n")
    messages = {(p.file, p.message.split(" (")[0]) for p in check_study(folder)}
    assert messages == {("crfs/EXTRA.yml", "CRF files must end in .yaml"),
                        ("crfs/BAD.yaml", "not UTF-8 text")}


def test_duplicate_form_across_files(study_copy):
    folder = study_copy()
    (folder / "crfs" / "RESP2.yaml").write_text((folder / "crfs" / "RESP.yaml").read_text())
    problems = [str(p) for p in check_study(folder)]
    assert problems == [
        "crfs/RESP2.yaml:1: oid: form RESP is already defined in crfs/RESP.yaml",
        "crfs/RESP2.yaml:1: oid: form RESP must be in crfs/RESP.yaml, not crfs/RESP2.yaml",
        "crfs/RESP2.yaml:4: groups[0].oid: group OID RESP_MAIN is already used at "
        "crfs/RESP.yaml:4",
    ]


def test_duplicate_codelist_across_files(study_copy):
    folder = study_copy()
    path = folder / "crfs" / "RESP.yaml"
    path.write_text(path.read_text() + "codelists:\n  SALVTYPE:\n    - {code: X, label: X}\n")
    assert [str(p) for p in check_study(folder)] == [
        "crfs/RESP.yaml:10: codelists.SALVTYPE: code list SALVTYPE is already defined in "
        "codelists.yaml:5",
    ]


def test_a_syntax_error_in_one_crf_does_not_hide_the_others(study_copy):
    folder = study_copy()
    (folder / "crfs" / "RESP.yaml").write_text("oid: RESP\nname: [unclosed\n")
    problems = check_study(folder)
    assert problems[0].file == "study.yaml"  # the anchor to RESP.PROGDT, RESP events
    assert ("crfs/RESP.yaml", 3) in {(p.file, p.line) for p in problems}
    assert any("unknown form 'RESP'" in p.message for p in problems)


def test_several_problems_in_several_files_are_all_reported(study_copy):
    folder = study_copy()
    edits = {
        "study.yaml": [("anchor: c1d1", "anchor: c1d2"), ("ratio: 1", "ratio: 0"),
                       ("offset: 3m", "offset: 3x")],
        "codelists.yaml": [("{code: AZA,", "{code: INTENSIVE,")],
        "crfs/DEMOG.yaml": [("show_if: 'SEX = \"F\"'", "show_if: 'SEXX = \"F\"'"),
                            ("        unit: cm", "        unit: cm\n        precison: 1")],
        "crfs/AE.yaml": [("group: AE_LINE", "group: NOPE")],
    }
    texts = {}
    for file, replacements in edits.items():
        path = folder / file
        text = path.read_text(encoding="utf-8")
        for old, new in replacements:
            text = text.replace(old, new, 1)
        path.write_text(text, encoding="utf-8")
        texts[file] = text
    got = [(p.file, p.line, p.message) for p in check_study(folder)]
    study, demog = texts["study.yaml"], texts["crfs/DEMOG.yaml"]
    assert got == [
        ("study.yaml", line_of(study, "ratio: 0"), "ratio must be positive, got 0"),
        ("study.yaml", line_of(study, "anchor: c1d2"),
         "unknown anchor 'c1d2' (known: c1d1, consent, death, enrolment, progression, "
         "randomization, withdrawal)"),
        ("study.yaml", line_of(study, "offset: 3x"),
         "invalid period '3x': expected an integer and d, w, m or y"),
        ("codelists.yaml", line_of(texts["codelists.yaml"], "{code: INTENSIVE, label: Aza"),
         "code 'INTENSIVE' appears twice"),
        ("crfs/AE.yaml", line_of(texts["crfs/AE.yaml"], "group: NOPE"),
         "unknown group 'NOPE' in form AE"),
        ("crfs/DEMOG.yaml", line_of(demog, "precison"),
         "unknown attribute 'precison' (did you mean 'precision'?)"),
        ("crfs/DEMOG.yaml", line_of(demog, "show_if"), "unknown item 'SEXX' (column 19)"),
    ]


def test_a_broken_study_yaml_does_not_hide_crf_problems(study_copy):
    folder = study_copy()
    (folder / "study.yaml").write_text("format: 1\nstudy: {oid: X\n")
    path = folder / "crfs" / "DEMOG.yaml"
    path.write_text(path.read_text().replace("codelist: RACE", "codelist: RACEX"))
    got = [str(p) for p in check_study(folder)]
    # No false alarms about parameters, anchors or languages study.yaml would declare.
    assert got == [
        "study.yaml:3: invalid YAML: while parsing a flow mapping, expected ',' or '}', "
        "but got '<stream end>' (started at line 2)",
        "crfs/DEMOG.yaml:56: groups[0].items[8].codelist: unknown code list 'RACEX'",
    ]


# --- hostile files: refused fast, with file, line and column -------------------------


@pytest.mark.parametrize(("text", "line", "column", "fragment"), [
    (alias_bomb(), 6, 5, "refused: the file expands to more than 100,000 values"),
    ("a: &a [1, *a]\n", 1, 11, "refused: an alias (*name) refers to a node that contains it"),
    ("a: &a {x: {y: *a}}\n", 1, 15, "an alias (*name) refers to a node that contains it"),
    ("x: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(1001)), 1002, 8,
     "refused: more than 1,000 aliases"),
    ("a: " + "[" * 100 + "]" * 100 + "\n", 1, 67, "refused: nested more than 64 levels deep"),
    ("a: " + "[" * 100_000 + "\n", 1, 67, "refused: nested more than 64 levels deep"),
    ("oid: X\n\x00name: a\n", 2, 1, "character U+0000 (NUL) at column 1 is not allowed"),
    ("oid: X\nname: a\x07b\n", 2, 8, "character U+0007 at column 8 is not allowed"),
    ("oid: X\nname: \ud800\n", 2, 7, "character U+D800 at column 7 is not allowed"),
    ("a: 1\n\tb: 2\n", 2, 1, "invalid YAML"),
    ("a:\n  b: 1\n c: 2\n", 3, 2, "invalid YAML"),
    ("a: [1, 2\n", 2, 1, "invalid YAML"),
    ("a: *nope\n", 1, 4, "found undefined alias 'nope'"),
    ("a: 1\n---\nb: 2\n", 2, 1, "expected a single document"),
])
def test_hostile_yaml_is_a_problem_with_its_position(text, line, column, fragment):
    doc, problems = load_yaml(text, "study.yaml")
    assert doc is None
    [problem] = problems
    assert (problem.file, problem.line, problem.column) == ("study.yaml", line, column)
    assert fragment in problem.message, problem.message


def test_an_alias_bomb_is_refused_in_well_under_a_second():
    start = time.perf_counter()
    _, problems = load_yaml(alias_bomb(levels=30), "study.yaml")
    assert time.perf_counter() - start < 1
    assert "expands to more than 100,000 values" in problems[0].message


def test_aliases_within_the_limits_still_work():
    doc, problems = load_yaml("a: &x {code: Y, label: Oui}\nb: [*x, *x]\n", "f.yaml")
    assert problems == []
    assert doc.data["b"] == [{"code": "Y", "label": "Oui"}] * 2


@pytest.mark.parametrize(("raw", "message"), [
    (b"oid: X\nname: \xff\xfe\n", "crfs/BAD.yaml:2: not UTF-8 text (invalid start byte at "
                                 "byte 14, column 7)"),
    (b"oid: X\n\x00\n", "crfs/BAD.yaml:2: invalid YAML: character U+0000 (NUL) at column 1 is "
                        "not allowed in YAML text"),
    (b"a: " + b"x" * (2 * 1024 * 1024), "crfs/BAD.yaml: the file is 2.0 MB; a study file may "
                                         "be at most 2 MB"),
])
def test_unreadable_files_are_problems(study_copy, raw, message):
    folder = study_copy()
    (folder / "crfs" / "BAD.yaml").write_bytes(raw)
    assert message in [str(p) for p in check_study(folder)]


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "study.yaml"
    with path.open("wb") as out:
        out.truncate(50 * 1024 * 1024)  # sparse: nothing is written, nothing may be read
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read"))
    _, problems = read_yaml_file(path, "study.yaml")
    assert [str(p) for p in problems] == [
        "study.yaml: the file is 50.0 MB; a study file may be at most 2 MB"]
