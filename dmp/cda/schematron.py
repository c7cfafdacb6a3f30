"""Running ANS schematrons compiled to XSLT (SVRL) with Saxon, the engine they are written for."""

from __future__ import annotations

import functools
from pathlib import Path

from saxonche import PySaxonProcessor, PyXsltExecutable

from dmp.common.errors import ErrorCode, Problem
from dmp.common.xml import parse_xml

SVRL = "http://purl.oclc.org/dsdl/svrl"


@functools.lru_cache(maxsize=1)
def _processor() -> PySaxonProcessor:
    return PySaxonProcessor(license=False)


@functools.lru_cache(maxsize=64)
def _compiled(path: str, mtime: float) -> PyXsltExecutable:
    del mtime  # part of the cache key: a recompiled file is reloaded
    return _processor().new_xslt30_processor().compile_stylesheet(stylesheet_file=path)


def run_compiled_schematrons(directory: Path, document: bytes) -> list[Problem]:
    processor = _processor()
    source = processor.parse_xml(xml_text=document.decode("utf-8"))
    problems: list[Problem] = []
    for stylesheet in sorted(directory.glob("*.xsl")):
        executable = _compiled(str(stylesheet), stylesheet.stat().st_mtime)
        report = executable.transform_to_string(xdm_node=source) or ""
        if not report.strip():
            continue
        svrl = parse_xml(report.encode("utf-8"))
        for failed in svrl.iter(f"{{{SVRL}}}failed-assert"):
            if failed.get("role", "").lower() in {"warning", "info", "information"}:
                continue
            text = " ".join(" ".join(str(t) for t in failed.itertext()).split())
            problems.append(
                Problem(ErrorCode.INVALID, f"{stylesheet.stem}: {text}"[:500], failed.get("location", ""))
            )
    return problems
