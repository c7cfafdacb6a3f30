"""The FINESS extraction loads sites and legal entities (ADR 0011): whole or not at all."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from dmp.common.errors import ValidationFailed
from dmp.identity.finess import read_finess
from dmp.identity.models import Structure
from dmp.identity.selectors import signs_for_structure
from dmp.identity.services import (
    FinessImport,
    structure_attach_to_legal_entity,
    structures_import_finess,
)

pytestmark = pytest.mark.django_db


def site_line(site: str, entity: str, name: str, city: str = "13005 MARSEILLE") -> str:
    """A `structureet` line of the extraction: 32 columns, the ones read filled in."""
    columns = ["structureet", site, entity, name[:38].upper(), name.upper()] + [""] * 27
    columns[15] = city
    columns[18] = "355"  # catégorie: centre hospitalier
    return ";".join(columns)


def extraction(*lines: str) -> bytes:
    head = "finess;etalab;95;IDENTIFIANT;LIBELLE;2026-11-30"
    geolocation = "geolocalisation;130000011;893412.5;6247000.1;1,ATLASANTE,100,IGN,BD_ADRESSE;2026-11-30"
    return "\r\n".join([head, *lines, geolocation]).encode("cp1252")


EXTRACTION = extraction(
    site_line("130000011", "130000003", "Hôpital de la Timone"),
    site_line("130000029", "130000003", "Hôpital Nord", "13015 MARSEILLE"),
    site_line("690000015", "690000007", "Clinique Saint-Étienne", "69003 LYON"),
)


def test_sites_are_created_and_signed_for_by_their_legal_entity():
    report = structures_import_finess(read_finess(EXTRACTION))
    assert (
        report.sites_created,
        report.sites_updated,
        report.legal_entities_created,
        report.sites_moved,
    ) == (
        3,
        0,
        2,
        3,
    )
    timone = Structure.objects.get(id_nat="1130000011")
    assert (timone.name, timone.city, timone.finess) == ("HÔPITAL DE LA TIMONE", "MARSEILLE", "130000011")
    entity = Structure.objects.get(id_nat="1130000003")
    assert entity.legal_entity is None
    assert entity.name == "Entité juridique FINESS 130000003"
    assert set(entity.sites.values_list("id_nat", flat=True)) == {"1130000011", "1130000029"}
    assert signs_for_structure(entity, timone)
    assert not signs_for_structure(entity, Structure.objects.get(id_nat="1690000015"))
    # The same file again changes nothing; a renamed site is updated, its entity kept by name.
    entity.name = "AP-HM"
    entity.save()
    again = structures_import_finess(read_finess(EXTRACTION))
    assert (again.sites_created, again.sites_updated, again.legal_entities_created, again.sites_moved) == (
        0,
        0,
        0,
        0,
    )
    renamed = extraction(site_line("130000011", "130000003", "Hôpital de la Timone Adultes"))
    assert structures_import_finess(read_finess(renamed)).sites_updated == 1
    assert Structure.objects.get(id_nat="1130000011").name == "HÔPITAL DE LA TIMONE ADULTES"
    assert Structure.objects.get(id_nat="1130000003").name == "AP-HM"


def test_a_site_moves_to_the_legal_entity_the_extraction_names():
    structures_import_finess(read_finess(EXTRACTION))
    moved = structures_import_finess(
        read_finess(extraction(site_line("130000029", "690000007", "Hôpital Nord")))
    )
    assert (moved.sites_updated, moved.sites_moved) == (1, 1)
    assert Structure.objects.filter(id_nat="1130000029", legal_entity__id_nat="1690000007").exists()


def snapshot() -> list[tuple[str, str, str, int | None]]:
    return list(Structure.objects.order_by("id_nat").values_list("id_nat", "name", "city", "legal_entity_id"))


@pytest.mark.parametrize(
    ("lines", "messages"),
    [
        (
            [site_line("13000001", "130000003", "Court"), site_line("130000029", "13000000X", "Nord")],
            ["'13000001' n'est pas un numéro FINESS", "'13000000X' n'est pas un numéro FINESS"],
        ),
        ([site_line("130000011", "130000003", "")], ["raison sociale vide ou trop longue"]),
        (
            [site_line("130000011", "130000003", "A"), site_line("130000011", "130000003", "B")],
            ["l'établissement 130000011 figure déjà ligne 3"],
        ),
        (["structureet;130000011;130000003;COURT"], ["ligne structureet incomplète"]),
    ],
)
def test_a_bad_line_refuses_the_whole_file_naming_it(personas, lines, messages):
    before = snapshot()
    with pytest.raises(ValidationFailed) as refused:
        read_finess(extraction(site_line("2A0000012", "2A0000004", "Hôpital d'Ajaccio"), *lines))
    assert [p.message for p in refused.value.problems] == messages
    assert all(p.location.startswith("ligne ") for p in refused.value.problems)
    assert snapshot() == before


def test_an_import_that_would_break_the_one_level_rule_changes_nothing(personas):
    """The demo CHU (1350000001) is a site of 1350000000, which has sites: neither may change side."""
    before = snapshot()
    for lines in (
        [site_line("350000000", "130000003", "Groupe hospitalier devenu site")],  # a legal entity as a site
        [site_line("130000011", "350000001", "Site du CHU")],  # a site as a legal entity
        [site_line("130000011", "130000003", "Timone"), site_line("130000003", "690000007", "Entité")],
    ):
        with pytest.raises(ValidationFailed) as refused:
            structures_import_finess(read_finess(extraction(*lines)))
        assert {p.code for p in refused.value.problems} == {"conflict"}
        assert snapshot() == before


def test_a_file_that_is_not_windows_1252_is_refused():
    with pytest.raises(ValidationFailed) as refused:
        read_finess(EXTRACTION + b"\x81")
    assert refused.value.problems[0].message == "le fichier n'est pas en Windows-1252"


def test_the_command_imports_checks_and_dry_runs(tmp_path, personas):
    path = tmp_path / "etalab-cs1100507-stock.csv"
    path.write_bytes(EXTRACTION)
    before = snapshot()
    out = io.StringIO()
    call_command("finess_import", str(path), "--dry-run", stdout=out)
    assert "dry run: nothing changed" in out.getvalue()
    assert "3 sites read: 3 created" in out.getvalue()
    assert snapshot() == before
    call_command("finess_import", str(path), stdout=io.StringIO())
    assert Structure.objects.filter(legal_entity__id_nat="1130000003").count() == 2
    path.write_bytes(extraction(site_line("130000011", "350000001", "Site du CHU")))
    after = snapshot()
    with pytest.raises(CommandError, match="nothing imported, 1 problem"):
        call_command("finess_import", str(path), stdout=io.StringIO())
    assert snapshot() == after


def test_a_site_attached_by_hand_then_listed_elsewhere_is_moved_not_duplicated():
    structures_import_finess(read_finess(EXTRACTION))
    nord = Structure.objects.get(id_nat="1130000029")
    structure_attach_to_legal_entity(nord, Structure.objects.get(id_nat="1690000007"))
    report = structures_import_finess(read_finess(EXTRACTION))
    assert (report.sites_updated, report.sites_moved) == (1, 1)
    assert Structure.objects.filter(id_nat="1130000029").count() == 1
    assert Structure.objects.filter(id_nat="1130000029", legal_entity__id_nat="1130000003").exists()


def test_a_structure_listed_as_its_own_legal_entity_may_head_other_sites():
    """A legal entity may be listed as a site of its own (its FINESS juridique and géographique
    alike): it stays no one's site and signs for the sites the file gives it."""
    report = structures_import_finess(
        read_finess(
            extraction(
                site_line("130000003", "130000003", "Siège AP-HM"),
                site_line("130000011", "130000003", "Timone"),
            )
        )
    )
    assert (report.sites_created, report.legal_entities_created, report.sites_moved) == (2, 0, 1)
    head = Structure.objects.get(id_nat="1130000003")
    assert head.legal_entity is None
    assert list(head.sites.values_list("id_nat", flat=True)) == ["1130000011"]
    assert structures_import_finess(
        read_finess(extraction(site_line("130000003", "130000003", "Siège AP-HM")))
    ) == (FinessImport(0, 0, 0, 0))
