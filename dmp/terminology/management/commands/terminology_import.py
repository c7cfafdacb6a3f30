"""Refresh the built-in value sets from official ANS files (IHE SVS XML).

    manage.py terminology_import DIR [--type-class-map FILE.json]

DIR holds the JDV_*.xml files (as published in TestContenuCDA's jeuxDeValeurs). The
typeCode -> classCode association (ASS_X16) is read from a JSON object {typeCode: classCode}
or from a FHIR-style export with "groups"[].map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dmp.terminology.registry import DATA_FILE
from dmp.terminology.svs import read_svs

# Which SVS file feeds which value set (file-name prefix, both "-" and "_" spellings exist).
SOURCES = {
    "type_code": "JDV_J07",
    "format_code": "JDV_J10",
    "healthcare_facility_type": "JDV_J02",
    "practice_setting": "JDV_J04",
    "confidentiality": "JDV_J08",
    "author_specialty": "JDV_J01",
    "class_code": "JDV_J06",
    "content_type": "JDV_J59",
}


class Command(BaseCommand):
    help = "Rebuild dmp/terminology/data/valuesets.json from ANS SVS value set files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--type-class-map", type=Path, default=None)
        parser.add_argument("--output", type=Path, default=DATA_FILE)

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = options["directory"]
        output: Path = options["output"]
        current = json.loads(output.read_text(encoding="utf-8")) if output.exists() else {}
        value_sets: dict[str, Any] = dict(current.get("value_sets", {}))
        for name, prefix in SOURCES.items():
            candidates = sorted(
                p for p in directory.glob("*.xml") if p.name.replace("-", "_").startswith(prefix + "_")
            )
            if not candidates:
                self.stdout.write(f"{name}: no {prefix} file, kept as is")
                continue
            oid, codes = read_svs(candidates[0].read_bytes())
            value_sets[name] = {
                "oid": oid,
                "source": candidates[0].name,
                "codes": [[c.code, c.system, c.display] for c in codes],
            }
            self.stdout.write(f"{name}: {len(codes)} codes from {candidates[0].name}")
        type_to_class = dict(current.get("type_to_class", {}))
        map_file: Path | None = options["type_class_map"]
        if map_file is not None:
            raw = json.loads(map_file.read_text(encoding="utf-8"))
            if "groups" in raw:
                for group in raw["groups"]:
                    type_to_class.update(group.get("map", {}))
            elif isinstance(raw, dict):
                type_to_class.update(raw)
            else:
                raise CommandError("the type/class map must be a JSON object")
        output.write_text(
            json.dumps(
                {"value_sets": value_sets, "type_to_class": type_to_class},
                ensure_ascii=False,
                indent=1,
                sort_keys=True,
            )
            + "\n",
            encoding="utf-8",
        )
        self.stdout.write(self.style.SUCCESS(f"wrote {output}"))
