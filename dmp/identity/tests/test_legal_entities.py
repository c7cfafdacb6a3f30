"""Sites and legal entities (ADR 0011): one level, and who signs for whom."""

from __future__ import annotations

import pytest

from dmp.common.errors import ValidationFailed
from dmp.identity.models import Structure
from dmp.identity.selectors import signs_for_structure
from dmp.identity.services import structure_attach_to_legal_entity

pytestmark = pytest.mark.django_db


def structure(id_nat: str) -> Structure:
    return Structure.objects.create(id_nat=id_nat, name=f"Structure {id_nat}")


def test_a_legal_entity_signs_for_itself_and_its_sites_only():
    group, site, sibling, stranger = (
        structure(i) for i in ("1990000000", "1990000001", "1990000002", "1990000009")
    )
    structure_attach_to_legal_entity(site, group)
    structure_attach_to_legal_entity(sibling, group)
    assert signs_for_structure(group, group)
    assert signs_for_structure(group, site)
    assert signs_for_structure(group, sibling)
    assert signs_for_structure(site, site)
    assert not signs_for_structure(site, sibling)
    assert not signs_for_structure(site, group)
    assert not signs_for_structure(group, stranger)
    assert not signs_for_structure(stranger, site)
    assert not signs_for_structure(group, None)
    assert set(group.sites.all()) == {site, sibling}


@pytest.mark.parametrize("case", ["itself", "site_as_entity", "entity_as_site"])
def test_legal_entities_are_one_level_deep_and_a_refusal_changes_nothing(case):
    group, site, other = structure("1990000000"), structure("1990000001"), structure("1990000005")
    structure_attach_to_legal_entity(site, group)
    attempt = {
        "itself": (other, other),  # nobody is their own legal entity
        "site_as_entity": (other, site),  # a site is no legal entity
        "entity_as_site": (group, other),  # a legal entity with sites is no site
    }[case]
    with pytest.raises(ValidationFailed):
        structure_attach_to_legal_entity(*attempt)
    assert dict(Structure.objects.values_list("id_nat", "legal_entity__id_nat")) == {
        "1990000000": None,
        "1990000001": "1990000000",
        "1990000005": None,
    }
