"""define.xml of both demo studies: valid against the Define-XML 2.1 schema and describing
exactly their SDTM datasets (the demo loads once for the module)."""

from __future__ import annotations

import pytest
from lxml import etree

from ecrf.core.extensions import db
from ecrf.outputs.datasets.define import define_xml
from ecrf.studies import store as studies
from tests.outputs.define_checks import NS, consistency_problems, schema_errors
from tests.outputs.test_sdtm_demo import STUDIES, demo  # noqa: F401  (the module's fixture)


@pytest.mark.parametrize("oid", STUDIES)
def test_demo_define_xml_is_valid_and_consistent(demo, oid):  # noqa: F811
    study, package = demo[oid]
    version = studies.latest_version(db.session, study)
    xml = define_xml(package, studies.definition_for(version), study_oid=oid,
                     version_label=version.label, content_hash=version.content_hash)
    assert schema_errors(xml) == []
    assert consistency_problems(xml, package) == []
    root = etree.fromstring(xml)
    groups = {g.get("Name") for g in root.iterfind(".//odm:ItemGroupDef", NS)}
    assert {"DM", "DS", "AE", "EX", "LB", "VS", "RS", "TA", "TE", "TV", "TI", "TS"} <= groups
    lab_tests = {r["LBTESTCD"] for r in package["LB"].rows}
    assert len(root.findall(".//def:ValueListDef[@OID='VL.LB.LBORRES']/odm:ItemRef", NS)) \
        == len(lab_tests)
