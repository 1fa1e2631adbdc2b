"""Study definitions: the ``forms/<study>/`` folders, validated and loaded.

``check_study`` reports every problem of a folder; ``load_study`` returns the immutable
definition with its canonical content and content hash; ``definition_from_content``
rebuilds a definition from stored content. The format is documented in forms/README.md.
"""

from .definition import (
    NY,
    Arm,
    CheckDef,
    CodeList,
    CodeListItem,
    DoseLevel,
    EscalationDef,
    EscalationDesign,
    FormDef,
    GroupDef,
    ItemDef,
    ItemType,
    LabAnalyte,
    LabsDef,
    LabSpec,
    Parameter,
    ParameterType,
    RandomizationDef,
    Range,
    Severity,
    StratumDef,
    StudyDefinition,
)
from .loader import LoadedStudy, check_study, content_hash, definition_from_content, load_study
from .problems import Problem, StudyDefinitionError, UnknownOidError
from .source_map import SOURCE_MAP_FILE, ItemTarget, SourceMap

__all__ = [
    "NY",
    "Arm",
    "CheckDef",
    "CodeList",
    "CodeListItem",
    "DoseLevel",
    "EscalationDef",
    "EscalationDesign",
    "FormDef",
    "GroupDef",
    "ItemDef",
    "ItemType",
    "LabAnalyte",
    "LabsDef",
    "LabSpec",
    "LoadedStudy",
    "Parameter",
    "ParameterType",
    "Problem",
    "RandomizationDef",
    "Range",
    "Severity",
    "StratumDef",
    "StudyDefinition",
    "SourceMap",
    "ItemTarget",
    "SOURCE_MAP_FILE",
    "StudyDefinitionError",
    "UnknownOidError",
    "check_study",
    "content_hash",
    "definition_from_content",
    "load_study",
]
