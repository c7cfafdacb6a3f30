"""Reader for IHE SVS (Sharing Value Sets) files, the format ANS publishes value sets in."""

from __future__ import annotations

from dmp.common.xml import parse_xml
from dmp.terminology.registry import Code

SVS_NS = "urn:ihe:iti:svs:2008"


def read_svs(data: bytes) -> tuple[str, list[Code]]:
    """(value set OID, concepts) of an SVS RetrieveValueSetResponse document."""
    root = parse_xml(data)
    value_set = root.find(f"{{{SVS_NS}}}ValueSet")
    if value_set is None:
        raise ValueError("not an SVS RetrieveValueSetResponse: no ValueSet element")
    concepts = [
        Code(
            code=concept.get("code", ""),
            system=concept.get("codeSystem", ""),
            display=concept.get("displayName", ""),
        )
        for concept in value_set.iter(f"{{{SVS_NS}}}Concept")
        if concept.get("code")
    ]
    return value_set.get("id", ""), concepts
