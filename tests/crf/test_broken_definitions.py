"""One mutation of the valid `full` fixture per problem class: exact file, line, message."""

import dataclasses
import shutil
from pathlib import Path

import pytest

from ecrf.crf import check_study, definition_from_content, load_study

from .conftest import line_of

S, CL = "study.yaml", "codelists.yaml"
GRID = ("max_rows: 60\n    items:", "max_rows: 60\n    layout: grid\n    items:")

# (id, file, [(old, new), ...], marker on the expected line, message fragment)
# The expected line is the line of the mutated file that contains the marker.
CASES = [
    # structure (JSON Schema)
    ("typo-attribute", "crfs/CONSENT.yaml", [("required: true", "requried: true")],
     "requried", "unknown attribute 'requried' (did you mean 'required'?)"),
    ("missing-label", "crfs/ELIG.yaml", [("        label: All criteria met\n", "")],
     "- oid: ELIGIBLE", "missing required attribute 'label'"),
    ("oid-pattern", "crfs/RESP.yaml", [("- oid: PROGDT", "- oid: progdt")],
     "progdt", "'progdt' is not an OID"),
    ("type-enum", "crfs/RESP.yaml", [("type: date", "type: dat")],
     "type: dat", "'dat' is not one of: text, integer"),
    ("type-suggestion", "crfs/RESP.yaml", [("type: date", "type: dat")],
     "type: dat", "(did you mean 'date'?)"),
    ("ratio-type", S, [("ratio: 1", "ratio: one")], "ratio: one", "expected an integer"),
    ("format-version", S, [("format: 1", "format: 2")], "format: 2", "must be 1"),
    ("sdtm-pattern", "crfs/CONSENT.yaml", [("sdtm: DS.DSSTDTC", "sdtm: DSSTDTC")],
     "sdtm: DSSTDTC", "is not an SDTM annotation DOMAIN.VARIABLE"),
    ("yaml-boolean-code", CL, [("{code: AZA,", "{code: on,")], "code: on",
     "YAML reads yes/no/on/off as true/false: quote it"),
    ("number-for-text", S, [('protocol_version: "2.1"', "protocol_version: 2.1")],
     "protocol_version", "expected text, got the number 2.1 (quote it)"),
    ("window-shape", S, [("window: 7d", "window: [7d]")], "window: [7d]",
     "expected text or a mapping, got a list"),
    ("window-inner-typo", S, [("{before: 0d, after: 28d}", "{before: 0d, afterr: 28d}")],
     "afterr", "unknown attribute 'afterr'"),
    ("sdtm-domain", "crfs/DEMOG.yaml", [("sdtm_domain: DM", "sdtm_domain: Dm")],
     "sdtm_domain", "is not a two-letter SDTM domain"),
    ("design-enum", S, [("design: boin", "design: crm")], "design: crm",
     "'crm' is not one of: 3+3, boin"),
    ("lab-test-enum", "crfs/HEMATO.yaml", [("{test: NEUT,", "{test: NEUTRO,")],
     "NEUTRO", "'NEUTRO' is not one of: NEUT, PLAT, WBC, LYM, HGB, ALT, AST, BILI, CREAT"),
    ("language-code", S, [("languages: [en, fr]", "languages: [en, French]")],
     "languages:", "'French' is not a language code"),
    ("parameter-name", S, [("  max_cycles:", "  MaxCycles:")], "MaxCycles",
     "'MaxCycles' is not a name"),
    # YAML itself
    ("duplicate-key", "crfs/RESP.yaml",
     [("        type: date", "        type: date\n        type: text  # dup")], "# dup",
     "duplicate key 'type' (first at line 8)"),
    ("duplicate-key-study", S, [("  max_cycles:", "  strict:\n    type: text\n  max_cycles:")],
     "  strict:\n    type: boolean", "duplicate key 'strict' (first at line 22)"),
    ("yaml-syntax", "crfs/RESP.yaml", [("name: Response", "name: Response: bad")],
     "Response: bad", "invalid YAML: mapping values are not allowed here"),
    ("yaml-indentation", "crfs/RESP.yaml", [("        type: date", "       type: date")],
     "       type: date", "invalid YAML"),
    # identifiers
    ("duplicate-item", "crfs/DEMOG.yaml", [("- oid: HEIGHT", "- oid: WEIGHT  # dup")],
     "# dup", "item WEIGHT is already defined in this form"),
    ("duplicate-event", S, [("- oid: UNSCHED", "- oid: FU  # dup")], "# dup",
     "event OID FU is used twice"),
    ("duplicate-arm", S, [("- code: CTRL", "- code: DEX  # dup")], "# dup",
     "arm code DEX is used twice"),
    ("duplicate-group", "crfs/RESP.yaml", [("- oid: RESP_MAIN", "- oid: DEATH_MAIN")],
     "DEATH_MAIN", "group OID DEATH_MAIN is already used at crfs/DEATH.yaml:4"),
    ("duplicate-code", CL, [("{code: AZA, label: Azacitidine}",
                             "{code: INTENSIVE, label: Azacitidine}")],
     "label: Azacitidine", "code 'INTENSIVE' appears twice"),
    ("ny-redefined", CL, [('{code: N, label: "No"', '{code: U, label: "No"')],
     "  NY:", "NY is built in with codes Y, N"),
    ("form-file-name", "crfs/RESP.yaml", [("oid: RESP\n", "oid: RESPONSE\n")],
     "oid: RESPONSE", "form RESPONSE must be in crfs/RESPONSE.yaml"),
    # references
    ("event-form", S, [("forms: [RAND]", "forms: [RANDX]")], "RANDX",
     "unknown form 'RANDX' (no crfs/RANDX.yaml)"),
    ("unused-form", S, [("forms: [RAND]", "forms: [RESP]")], None,
     "form RAND is not used by any event"),
    ("form-listed-twice", S, [("forms: [RAND]", "forms: [RAND, RAND]")], "[RAND, RAND]",
     "form RAND is listed twice"),
    ("codelist-ref", "crfs/ELIG.yaml", [("codelist: SALVTYPE", "codelist: SALVTYPES")],
     "SALVTYPES", "unknown code list 'SALVTYPES'"),
    ("choice-without-list", "crfs/ELIG.yaml", [("        codelist: SALVTYPE\n", "")],
     "- oid: SALVTYPE", "a single_choice item needs a codelist or choices"),
    ("codelist-and-choices", "crfs/DEMOG.yaml",
     [("        choices:\n", "        codelist: RACE\n        choices:\n")],
     "choices:", "give either codelist or choices, not both"),
    ("yes-no-with-list", "crfs/ELIG.yaml",
     [("        required: true", "        required: true\n        codelist: SALVTYPE  # x")],
     "codelist: SALVTYPE  # x", "a yes_no item uses the built-in NY list"),
    ("codelist-on-text", "crfs/DEMOG.yaml",
     [("        length: 3", "        length: 3\n        codelist: RACE  # x")],
     "# x", "codelist only applies to choice items, not text"),
    # item attributes
    ("calculated-no-result-type", "crfs/DEMOG.yaml",
     [("        result_type: integer\n", "")], "- oid: AGE",
     "a calculated item needs result_type"),
    ("calculated-no-expression", "crfs/DEMOG.yaml",
     [("        expression: 'age(date(\"1970-01-01\"), CONSENT.CONSDT)'\n", "")],
     "- oid: AGE", "a calculated item needs expression"),
    ("expression-not-calculated", "crfs/RESP.yaml",
     [("type: date", "type: date\n        expression: 'today()'")], "expression:",
     "expression only applies to calculated items"),
    ("calculated-type", "crfs/DEMOG.yaml", [("result_type: integer", "result_type: date")],
     "age(date", "the expression must give date, but the expression gives integer"),
    ("range-order", "crfs/DEMOG.yaml", [("{min: 100, max: 250}", "{min: 300, max: 250}")],
     "min: 300", "range min 300 is greater than max 250"),
    ("soft-below-hard", "crfs/DEMOG.yaml", [("{min: 35, max: 150}", "{min: 10, max: 150}")],
     "min: 10", "soft_range min 10 is below range min 20"),
    ("soft-above-hard", "crfs/DEMOG.yaml", [("{min: 35, max: 150}", "{min: 35, max: 350}")],
     "max: 350", "soft_range max 350 is above range max 300"),
    ("precision-integer", "crfs/DEMOG.yaml",
     [("        unit: cm", "        unit: cm\n        precision: 0")], "precision: 0",
     "precision only applies to decimal items, not integer"),
    ("unit-on-text", "crfs/DEMOG.yaml",
     [("        length: 3", "        length: 3\n        unit: chars")], "unit: chars",
     "unit only applies to numeric items, not text"),
    ("range-on-date", "crfs/RESP.yaml",
     [("type: date", "type: date\n        range: {min: 1}")], "range:",
     "range only applies to numeric items, not date"),
    ("length-on-integer", "crfs/DEMOG.yaml",
     [("        unit: cm", "        unit: cm\n        length: 3  # x")], "# x",
     "length only applies to text items, not integer"),
    ("required-twice", "crfs/DEMOG.yaml",
     [("        show_if: 'SEX = \"F\"'", "        show_if: 'SEX = \"F\"'\n        required: true")],
     "required_if", "required: true already makes the item required"),
    ("lab-on-text", "crfs/HEMATO.yaml",
     [("        unit: 10^9/L\n        lab: {test: NEUT",
       "        lab: {test: NEUT")] + [("label: Neutrophils\n        type: decimal",
                                        "label: Neutrophils\n        type: text")],
     "lab: {test: NEUT", "lab grading only applies to numeric items, not text"),
    ("lab-unit-mismatch", "crfs/HEMATO.yaml", [("unit: g/dL\n", "unit: g/L\n")],
     "lab: {test: HGB", "lab unit 'g/dL' differs from the item unit 'g/L'"),
    ("lab-unit-unknown", "crfs/HEMATO.yaml",
     [("{test: PLAT, unit: 10^9/L", "{test: PLAT, unit: mmol/L")],
     "test: PLAT", "unit 'mmol/L' not recognised for PLAT"),
    ("lab-no-unit", "crfs/HEMATO.yaml", [("        unit: 10^9/L\n        lab: {test: NEUT",
                                          "        lab: {test: NEUT")],
     "lab: {test: NEUT", "lab grading needs a unit"),
    ("lab-lln-reference", "crfs/HEMATO.yaml", [("param.max_cycles * 30", "param.nope * 30")],
     "param.nope", "unknown parameter 'nope' in 'param.nope'"),
    ("min-rows-order", "crfs/HEMATO.yaml", [("min_rows: 0", "min_rows: 90")], "min_rows",
     "min_rows 90 is greater than max_rows 60"),
    ("rows-not-repeating", "crfs/RAND.yaml",
     [("  - oid: RAND_MAIN", "  - oid: RAND_MAIN\n    max_rows: 3")], "max_rows",
     "max_rows only applies to a repeating group"),
    # grids
    ("grid-not-repeating", "crfs/RAND.yaml",
     [("  - oid: RAND_MAIN", "  - oid: RAND_MAIN\n    layout: grid")], "layout: grid",
     "a grid shows the rows of a repeating group"),
    ("grid-layout-enum", "crfs/HEMATO.yaml", [("max_rows: 60", "max_rows: 60\n    layout: table")],
     "layout: table", "'table' is not one of: stack, grid"),
    ("grid-partial-date-cell", "crfs/HEMATO.yaml",
     [GRID, ("label: Date of sample\n        type: date",
             "label: Date of sample\n        type: partial_date")],
     "type: partial_date", "LBDT is a partial_date item (three inputs); a grid cell holds a "
                           "single value"),
    ("row-label-without-grid", "crfs/HEMATO.yaml",
     [("max_rows: 60", "max_rows: 60\n    row_label: LBDT")], "row_label",
     "row_label only applies to a grid (add layout: grid)"),
    ("row-label-unknown", "crfs/HEMATO.yaml",
     [GRID, ("layout: grid", "layout: grid\n    row_label: LBDTX")], "row_label",
     "row_label LBDTX is not an item of this group"),
    ("planned-days-anchor", "crfs/HEMATO.yaml",
     [GRID, ("layout: grid", "layout: grid\n    planned_days: {date: LBDT, anchor: c1d9, "
                             "first: 1, last: 28}")], "planned_days",
     "unknown anchor 'c1d9'"),
    ("planned-days-not-a-date", "crfs/HEMATO.yaml",
     [GRID, ("layout: grid", "layout: grid\n    planned_days: {date: NEUT, anchor: c1d1, "
                             "first: 1, last: 28}")], "planned_days",
     "NEUT must be a date item to hold the planned day's date"),
    ("planned-days-order", "crfs/HEMATO.yaml",
     [GRID, ("layout: grid", "layout: grid\n    planned_days: {date: LBDT, anchor: c1d1, "
                             "first: 9, last: 2}")], "planned_days",
     "first day 9 is after last day 2"),
    ("planned-days-too-many", "crfs/HEMATO.yaml",
     [GRID, ("layout: grid", "layout: grid\n    planned_days: {date: LBDT, anchor: c1d1, "
                             "first: 1, last: 61}")], "planned_days",
     "days 1 to 61 are 61 rows, more than max_rows 60"),
    # anchors and schedule
    ("anchor-partial-date", S, [("consent: CONSENT.CONSDT", "consent: DEMOG.BRTHDT")],
     "consent: DEMOG", "partial dates cannot be an anchor"),
    ("anchor-not-date", S, [("consent: CONSENT.CONSDT", "consent: DEMOG.INITIALS")],
     "consent: DEMOG", "DEMOG.INITIALS must be a date or datetime item to be an anchor"),
    ("anchor-unknown-item", S, [("consent: CONSENT.CONSDT", "consent: CONSENT.CONSDTX")],
     "CONSDTX", "unknown item 'CONSENT.CONSDTX'"),
    ("anchor-unknown-form", S, [("consent: CONSENT.CONSDT", "consent: CONS.CONSDT")],
     "consent: CONS.", "unknown form 'CONS' in 'CONS.CONSDT'"),
    ("anchor-repeating", S, [("c1d1: TREAT.C1D1DT", "c1d1: HEMATO.LBDT")], "c1d1: HEMATO",
     "HEMATO.LBDT is in repeating group HEMATO_DAY"),
    ("enrolment-builtin", S, [("  consent: CONSENT.CONSDT",
                               "  consent: CONSENT.CONSDT\n  enrolment: CONSENT.CONSDT")],
     "enrolment: CONSENT", "'enrolment' is built in"),
    ("event-anchor", S, [("anchor: c1d1", "anchor: c1d2")], "anchor: c1d2",
     "unknown anchor 'c1d2'"),
    ("stop-anchor", S, [("[death, withdrawal]", "[death, withdrwal]")], "withdrwal",
     "unknown anchor 'withdrwal'"),
    ("stop-at-anchor", S, [("stop_at: [progression]", "stop_at: [progresion]")],
     "progresion", "unknown anchor 'progresion'"),
    ("repeat-on-scheduled", S, [("    date_item: RAND.RANDDT",
                                 "    date_item: RAND.RANDDT\n    repeat: {every: 7d}")],
     "repeat: {every: 7d}", "repeat only applies to repeating events, not scheduled"),
    ("repeating-without-repeat", S, [("    repeat: {every: 3m}\n", "")], "- oid: FU",
     "a repeating event needs repeat"),
    ("repeat-every-zero", S, [("repeat: {every: 3m}", "repeat: {every: 0m}")],
     "every: 0m", "must be positive, got 0m"),
    ("period-syntax", S, [("offset: 3m", "offset: 3 months")], "offset: 3 months",
     "invalid period '3 months'"),
    ("window-negative", S, [("window: 14d", "window: -14d")], "window: -14d",
     "must not be negative, got -14d"),
    ("window-side-negative", S, [("{before: 0d, after: 28d}", "{before: -2d, after: 28d}")],
     "before: -2d", "must not be negative, got -2d"),
    ("scheduled-without-anchor", S, [("    anchor: enrolment\n", "")], "- oid: SCREEN",
     "a scheduled event needs an anchor"),
    ("unscheduled-with-anchor", S,
     [("kind: unscheduled", "kind: unscheduled\n    anchor: enrolment  # x")],
     "# x", "anchor does not apply to an unscheduled event"),
    ("log-with-window", S, [("kind: log", "kind: log\n    window: 3d")], "window: 3d",
     "window does not apply to a log event"),
    ("date-item-other-form", S, [("forms: [RAND]\n    date_item: RAND.RANDDT",
                                  "forms: [RAND]\n    date_item: CONSENT.CONSDT")],
     "date_item: CONSENT", "must be an item of one of the event's forms (RAND)"),
    ("date-item-not-date", S, [("forms: [RAND]\n    date_item: RAND.RANDDT",
                                "forms: [RAND]\n    date_item: RAND.RANDTMX")],
     "RANDTMX", "unknown item 'RAND.RANDTMX'"),
    # expressions
    ("show-if-syntax", "crfs/DEMOG.yaml", [("show_if: 'SEX = \"F\"'", "show_if: 'SEX = = \"F\"'")],
     "show_if", "expected a value after '=', found '=' (column 25)"),
    ("show-if-unknown-item", "crfs/AE.yaml",
     [("show_if: 'AESER = \"Y\"'", "show_if: 'AESERX = \"Y\"'")],
     "show_if", "unknown item 'AESERX' (column 19)"),
    ("block-expression", "crfs/AE.yaml",
     [("    expression: 'is_blank(AEENDTC) or AEENDTC >= AESTDTC'",
       "    expression: |\n      is_blank(AEENDTC)\n        or AEENDTX >= AESTDTC")],
     "or AEENDTX", "unknown item 'AEENDTX' (column 12)"),
    ("folded-expression", "crfs/AE.yaml",
     [("    expression: 'is_blank(AEENDTC) or AEENDTC >= AESTDTC'",
       "    expression: >\n      is_blank(AEENDTC)\n      or AEENDTX >= AESTDTC")],
     "expression: >", "unknown item 'AEENDTX'"),
    ("show-if-self", "crfs/DEMOG.yaml", [("show_if: 'SEX = \"F\"'", "show_if: 'PREGNANT = \"Y\"'")],
     "show_if", "show_if of PREGNANT refers to PREGNANT itself"),
    ("show-if-cycle", "crfs/ELIG.yaml",
     [("        type: yes_no\n      - oid: ELIGIBLE",
       "        type: yes_no\n        show_if: 'ELIGIBLE = \"Y\"'\n      - oid: ELIGIBLE"),
      ("        required: true", "        show_if: 'RELAPSE = \"Y\"'")],
     "show_if: 'ELIGIBLE", "show_if cycle: RELAPSE -> ELIGIBLE -> RELAPSE"),
    ("show-if-not-boolean", "crfs/DEMOG.yaml", [("show_if: 'SEX = \"F\"'", "show_if: 'SEX'")],
     "show_if", "show_if must give true/false, but the expression gives text"),
    ("required-if-type", "crfs/DEMOG.yaml",
     [("'SEX = \"F\" and AGE < 55'", "'SEX = \"F\" and AGE < \"55\"'")],
     "required_if", "cannot compare integer with text (column 41)"),
    ("condition-not-boolean", S,
     [("condition: 'subject.site != \"X\"'", "condition: 'subject.site'")],
     "condition: 'subject.site'", "condition must give true/false, but the expression gives text"),
    ("subject-field", S, [("subject.site != \"X\"", "subject.country != \"X\"")],
     "subject.country", "unknown subject field 'subject.country'"),
    ("schedule-bare-item", S, [("subject.site != \"X\"", "CONSDT != \"X\"")], "CONSDT !=",
     "unknown name 'CONSDT': outside a form, write FORM.CONSDT"),
    ("until-anchor", S, [("anchor.progression", "anchor.progress")], "anchor.progress",
     "unknown anchor 'progress' in 'anchor.progress' (column 28)"),
    ("study-end-param", S, [("param.study_end_date", "param.study_end")], "param.study_end",
     "unknown parameter 'study_end'"),
    ("study-end-type", S, [("study_end: param.study_end_date", "study_end: param.max_cycles")],
     "study_end:", "study_end must give date, but the expression gives integer"),
    ("check-not-boolean", "crfs/DEMOG.yaml", [("'is_blank(BMI) or BMI < 60'", "'BMI + 1'")],
     "BMI + 1", "a check must give true/false, but the expression gives decimal"),
    ("check-unknown-group", "crfs/AE.yaml", [("group: AE_LINE", "group: AE_LINEX")],
     "AE_LINEX", "unknown group 'AE_LINEX' in form AE"),
    ("check-group-not-repeating", "crfs/DEMOG.yaml",
     [("message_labels: {fr: IMC invraisemblable.}",
       "message_labels: {fr: IMC invraisemblable.}\n    group: DEMOG_MAIN")],
     "group: DEMOG_MAIN", "group DEMOG_MAIN is not repeating"),
    ("check-repeating-without-group", "crfs/HEMATO.yaml", [("    group: HEMATO_DAY\n", "")],
     "LBDT >= TREAT", "item 'LBDT' is in repeating group HEMATO_DAY; only expressions "
                      "evaluated per row of HEMATO_DAY can use it"),
    ("other-form-repeating", "crfs/DEMOG.yaml",
     [("'is_blank(BMI) or BMI < 60'", "'is_blank(AE.AETERM)'")], "AE.AETERM",
     "item 'AE.AETERM' is in repeating group AE_LINE"),
    ("unknown-function", "crfs/DEMOG.yaml",
     [("'is_blank(BMI) or BMI < 60'", "'is_empty(BMI)'")], "is_empty", "is_empty"),
    # randomization and dose escalation
    ("arm-ratio", S, [("ratio: 1", "ratio: 0")], "ratio: 0", "ratio must be positive, got 0"),
    ("block-multiple", S, [("block_sizes: [2, 4]", "block_sizes: [3, 4]")], "block_sizes",
     "block size 3 is not a multiple of the sum of arm ratios (2)"),
    ("one-arm", S, [("  - code: CTRL\n    name: Salvage alone\n    ratio: 1\n", "")],
     "randomization:\n", "randomization needs at least two arms"),
    ("stratum-type", S, [("item: ELIG.RELAPSE", "item: RAND.RANDDT  # x")], "# x",
     "stratification item RAND.RANDDT must be single_choice (or yes_no), not date"),
    ("stratum-unknown", S, [("item: ELIG.SALVTYPE", "item: ELIG.SALV")], "ELIG.SALV",
     "unknown item 'ELIG.SALV'"),
    ("stratum-twice", S, [("name: status", "name: salvage  # x")], "# x",
     "stratum salvage is declared twice"),
    ("eligibility-type", S, [("eligibility: ELIG.ELIGIBLE", "eligibility: ELIG.SALVTYPE")],
     "eligibility:", "must be a yes_no item"),
    ("dose-gap", S, [("- level: 2", "- level: 3")], "levels:",
     "dose levels must be numbered 1 to 2 in order without gaps; found 1, 3"),
    ("boin-rate", S, [("target_dlt_rate: 0.30", "target_dlt_rate: 1.5")], "target_dlt_rate",
     "target_dlt_rate must be between 0 and 1 (exclusive), got 1.5"),
    ("boin-rate-zero", S, [("target_dlt_rate: 0.30", "target_dlt_rate: 0")], "target_dlt_rate",
     "between 0 and 1 (exclusive), got 0"),
    ("boin-no-rate", S, [("  target_dlt_rate: 0.30\n", "")], "dose_escalation:",
     "boin needs target_dlt_rate"),
    ("three-plus-three-rate", S, [("design: boin", "design: 3+3")], "target_dlt_rate",
     "target_dlt_rate only applies to the boin design"),
    ("dlt-anchor", S, [("dlt_anchor: c1d1", "dlt_anchor: infusion")], "dlt_anchor",
     "unknown anchor 'infusion'"),
    ("dlt-window", S, [("dlt_window: 14d", "dlt_window: 0d")], "dlt_window",
     "must be positive, got 0d"),
    ("start-level", S, [("cohort_size: 3", "cohort_size: 3\n  start_level: 5")], "start_level",
     "start_level 5 is not a declared level"),
    # labels and parameters
    ("undeclared-language", S, [("labels: {fr: Sélection}", "labels: {de: Auswahl}")],
     "de: Auswahl", "language 'de' is not declared in study.yaml languages (declared: en, fr)"),
    ("undeclared-language-help", "crfs/DEMOG.yaml",
     [("help_labels: {fr:", "help_labels: {es:")], "help_labels", "language 'es'"),
    ("param-integer", S, [("default: 4", "default: four")], "default: four",
     "default 'four' does not match type integer"),
    ("param-bool-not-integer", S, [("default: 4", "default: true")], "default: true",
     "default True does not match type integer"),
    ("param-date", S, [("default: null\n    description: End",
                        "default: 2024-02-30\n    description: End")], "2024-02-30",
     "default '2024-02-30' does not match type date: expected a date YYYY-MM-DD"),
    ("param-text", S, [('default: "main"', "default: 3")], "default: 3",
     "default 3 does not match type text"),
    ("param-boolean", S, [("default: true", "default: 1")], "default: 1",
     "default 1 does not match type boolean"),
    ("param-unit", S, [("type: boolean", "type: boolean\n    unit: kg")], "unit: kg",
     "unit only applies to numeric parameters, not boolean"),
]


def _mutate(folder, file, replacements):
    path = folder / file
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, f"{old!r} not in {file}"
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return text


@pytest.mark.parametrize(("file", "replacements", "marker", "fragment"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_definition_is_reported_where_it_is(study_copy, file, replacements, marker,
                                                   fragment):
    folder = study_copy()
    text = _mutate(folder, file, replacements)
    problems = check_study(folder)
    matching = [p for p in problems if fragment in p.message]
    assert matching, "\n".join(str(p) for p in problems)
    if marker is None:
        return
    expected_line = line_of(text, marker)
    assert (file, expected_line) in {(p.file, p.line) for p in matching}, \
        f"expected {file}:{expected_line}; got " + "; ".join(str(p) for p in matching)


def test_unused_form_is_reported_on_its_oid_line(study_copy):
    folder = study_copy()
    _mutate(folder, "study.yaml", [("forms: [RAND]", "forms: [RESP]")])
    problems = [p for p in check_study(folder) if "not used by any event" in p.message]
    assert [(p.file, p.line, p.path) for p in problems] == [("crfs/RAND.yaml", 1, "oid")]


def test_the_unmodified_fixture_is_valid(study_copy):
    assert check_study(study_copy()) == []


# --- where the safety services read their data: recovery_endpoints, adverse_events and
# dose_escalation.dlt_drug, mutated in the safety test study (which declares all three) ----

SAFETY_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "safety_study"

SOURCE_CASES = [
    # recovery_endpoints
    ("day1-anchor", [("day1_anchor: chemo_d1", "day1_anchor: chemo_day1")], "chemo_day1",
     "unknown anchor 'chemo_day1'"),
    ("counts-unknown-form", [("group: COUNTS.CNT_DAY", "group: COUNT.CNT_DAY")],
     "COUNT.CNT_DAY", "unknown form 'COUNT' in 'COUNT.CNT_DAY'"),
    ("counts-unknown-group", [("group: COUNTS.CNT_DAY", "group: COUNTS.CNT_DAYS")],
     "COUNTS.CNT_DAYS", "unknown group 'COUNTS.CNT_DAYS' (groups of COUNTS: CNT_DAY)"),
    ("counts-group-pattern", [("group: COUNTS.CNT_DAY", "group: CNT_DAY")], "group: CNT_DAY",
     "'CNT_DAY' is not a group reference FORM.GROUP"),
    ("counts-not-repeating", [("group: COUNTS.CNT_DAY", "group: CHEMO.CHEMO_MAIN")],
     "CHEMO.CHEMO_MAIN",
     "CHEMO.CHEMO_MAIN must be a repeating group (one row per measurement day)"),
    ("counts-missing-anc", [("    anc: ANC\n", "")], "  counts:",
     "missing required attribute 'anc'"),
    ("counts-unknown-item", [("anc: ANC", "anc: ANCX")], "anc: ANCX",
     "unknown item 'ANCX' in form COUNTS"),
    ("counts-date-type", [("date: LBDT", "date: TMAX")], "date: TMAX",
     "TMAX must be a date or partial_date item, not decimal"),
    ("counts-numeric-type", [("platelets: PLT", "platelets: PLTTX")], "platelets: PLTTX",
     "PLTTX must be a numeric (integer or decimal) item, not yes_no"),
    ("counts-temperature-type", [("max_temperature: TMAX", "max_temperature: LBDT")],
     "max_temperature: LBDT", "LBDT must be a numeric (integer or decimal) item, not date"),
    ("counts-transfusion-type", [("platelet_transfusion: PLTTX", "platelet_transfusion: PLT")],
     "platelet_transfusion: PLT", "PLT must be a yes_no item, not integer"),
    ("counts-typo", [("hemoglobin: HGB", "haemoglobin: HGB")], "haemoglobin",
     "unknown attribute 'haemoglobin' (did you mean 'hemoglobin'?)"),
    ("episode-kind", [("    febrile_neutropenia:\n", "    febrile_neutropaenia:\n")],
     "febrile_neutropaenia",
     "unknown attribute 'febrile_neutropaenia' (did you mean 'febrile_neutropenia'?)"),
    ("episode-not-repeating", [("group: FN.FN_LINE", "group: FN.FN_ANY")], "FN.FN_ANY",
     "FN.FN_ANY must be a repeating group (one row per episode)"),
    ("episode-item-in-other-group", [("start: FNSTDT", "start: FNANY")], "start: FNANY",
     "FNANY is in group FN.FN_ANY, not in FN.FN_LINE"),
    ("episode-end-type", [("end: FNENDT", "end: FNONGO")], "end: FNONGO",
     "FNONGO must be a date or partial_date item, not yes_no"),
    ("episode-ongoing-type", [("ongoing: FNONGO", "ongoing: FNENDT")], "ongoing: FNENDT",
     "FNENDT must be a yes_no item, not date"),
    ("episode-any-in-rows", [("any_episode: FNANY", "any_episode: FNONGO")],
     "any_episode: FNONGO", "FNONGO is in repeating group FN.FN_LINE"),
    ("episode-any-unknown", [("any_episode: FNANY", "any_episode: FNALL")],
     "any_episode: FNALL", "unknown item 'FNALL' in form FN"),
    ("recovery-run-value", [("  fn_criteria:\n", "  recovery_run:\n    type: text\n"
                                               "    default: calendar\n  fn_criteria:\n")],
     "default: calendar",
     "recovery_run must be one of measurements, calendar_days, not 'calendar'"),
    ("recovery-run-type", [("  fn_criteria:\n", "  recovery_run:\n    type: integer\n"
                                              "    default: 3\n  fn_criteria:\n")],
     "type: integer\n    default: 3\n  fn_criteria", "recovery_run must be a text parameter"),
    ("whole-run-type", [("  fn_criteria:\n", "  transfusion_free_whole_run:\n"
                                            "    type: text\n    default: 'yes'\n"
                                            "  fn_criteria:\n")],
     "type: text\n    default: 'yes'",
     "transfusion_free_whole_run must be a boolean parameter"),
    # adverse_events
    ("ae-unknown-group", [("group: AE.AE_LINE", "group: AE.AE_LINES")], "AE.AE_LINES",
     "unknown group 'AE.AE_LINES' (groups of AE: AE_LINE)"),
    ("ae-missing-term", [("  term: AETERM\n", "")], "adverse_events:",
     "missing required attribute 'term'"),
    ("ae-unknown-item", [("term: AETERM", "term: AETERN")], "term: AETERN",
     "unknown item 'AETERN' in form AE"),
    ("ae-onset-type", [("onset: AESTDTC", "onset: AETERM")], "onset: AETERM",
     "AETERM must be a date, partial_date or datetime item, not text"),
    ("ae-serious-type", [("serious: AESER", "serious: AETOXGR")], "serious: AETOXGR",
     "AETOXGR must be a yes_no item, not single_choice"),
    ("ae-awareness-type", [("awareness: AESAWDTC", "awareness: AESTDTC")],
     "awareness: AESTDTC", "AESTDTC must be a datetime item, not partial_date"),
    ("ae-death-date-type", [("death_date: AEDTHDT", "death_date: AESRPDTC")],
     "death_date: AESRPDTC", "AESRPDTC must be a date or partial_date item, not datetime"),
    ("ae-criterion-type", [("death: AESDTH", "death: AEOUT")], "death: AEOUT",
     "AEOUT must be a yes_no item, not single_choice"),
    ("ae-criterion-name", [("hospitalisation: AESHOSP", "hospitalization: AESHOSP")],
     "hospitalization", "unknown attribute 'hospitalization' (did you mean 'hospitalisation'?)"),
    ("ae-grade-codes", [("grade: AETOXGR", "grade: AEEXPECT")], "grade: AEEXPECT",
     "AEEXPECT has codes that are not grades (EXPECTED, UNEXPECTED)"),
    ("ae-outcome-codes", [("outcome: AEOUT", "outcome: AERELCHM")], "outcome: AERELCHM",
     "AERELCHM has codes the safety rules cannot read (unrelated, unlikely, possible, "
     "probable, definite); outcome (CDISC OUT) codes are"),
    ("ae-causality-type", [("PRODUCT: AERELEXO", "PRODUCT: AETERM")], "PRODUCT: AETERM",
     "AETERM must be a single_choice item, not text"),
    ("ae-causality-codes", [("CHEMOTHERAPY: AERELCHM", "CHEMOTHERAPY: AEEXPECT")],
     "CHEMOTHERAPY: AEEXPECT", "AEEXPECT has codes the safety rules cannot read "
     "(EXPECTED, UNEXPECTED); causality codes are unrelated, unlikely, possible, probable, "
     "definite"),
    ("ae-causality-drug-name", [("PRODUCT: AERELEXO", "product: AERELEXO")],
     "product: AERELEXO", "'product' is not an OID"),
    ("ae-sponsor-is-investigator",
     [("  death_date: AEDTHDT", "  death_date: AEDTHDT\n  sponsor_causality: AERELCHM")],
     "CHEMOTHERAPY: AERELCHM", "AERELCHM is the sponsor's causality (sponsor_causality)"),
    ("ae-susar-drug", [("susar_drugs: [PRODUCT]", "susar_drugs: [PRODUKT]")], "susar_drugs",
     "unknown drug 'PRODUKT' (drugs of adverse_events.causality: PRODUCT, CHEMOTHERAPY)"),
    # dose_escalation.dlt_drug
    ("dlt-drug", [("dlt_drug: PRODUCT", "dlt_drug: EXO")], "dlt_drug: EXO",
     "unknown drug 'EXO' (drugs of adverse_events.causality: PRODUCT, CHEMOTHERAPY)"),
    ("dlt-drug-without-ae-log", [("\nadverse_events:", "\nadverse_event:")], "dlt_drug",
     "dlt_drug needs an adverse_events block whose causality names this drug"),
]


@pytest.fixture
def safety_copy(tmp_path):
    target = tmp_path / "safety_study"
    shutil.copytree(SAFETY_FIXTURE, target)
    return target


@pytest.mark.parametrize(("replacements", "marker", "fragment"),
                         [c[1:] for c in SOURCE_CASES], ids=[c[0] for c in SOURCE_CASES])
def test_broken_data_source_is_reported_where_it_is(safety_copy, replacements, marker,
                                                    fragment):
    text = _mutate(safety_copy, S, replacements)
    problems = check_study(safety_copy)
    matching = [p for p in problems if fragment in p.message]
    assert matching, "\n".join(str(p) for p in problems)
    expected_line = line_of(text, marker)
    assert (S, expected_line) in {(p.file, p.line) for p in matching}, \
        f"expected {S}:{expected_line}; got " + "; ".join(str(p) for p in matching)


def test_the_data_source_problem_names_its_path(safety_copy):
    _mutate(safety_copy, S, [("anc: ANC", "anc: ANCX"), ("PRODUCT: AERELEXO", "PRODUCT: X")])
    paths = {p.path for p in check_study(safety_copy)}
    assert {"recovery_endpoints.counts.anc", "adverse_events.causality.PRODUCT"} <= paths


def test_the_data_sources_are_built_into_the_definition(safety_copy):
    assert check_study(safety_copy) == []
    loaded = load_study(safety_copy)
    definition = loaded.definition
    assert definition_from_content(loaded.content) == definition
    recovery = definition.recovery_endpoints
    assert (recovery.day1_anchor, recovery.counts.form, recovery.counts.group) == (
        "chemo_d1", "COUNTS", "CNT_DAY")
    assert (recovery.counts.anc, recovery.counts.red_cell_transfusion) == ("ANC", "RBCTX")
    assert set(recovery.episodes()) == {"febrile_neutropenia"}
    assert recovery.febrile_neutropenia.any_episode == "FNANY"
    ae = definition.adverse_events
    assert (ae.form, ae.group, ae.term, ae.serious) == ("AE", "AE_LINE", "AETERM", "AESER")
    assert dict(ae.causality) == {"PRODUCT": "AERELEXO", "CHEMOTHERAPY": "AERELCHM"}
    assert ae.susar_drugs == ("PRODUCT",) and ae.sponsor_causality is None
    assert definition.dose_escalation.dlt_drug == "PRODUCT"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ae.term = "X"  # type: ignore[misc]
