"""INS: NIR/NIA keys (Corsica included), HL7 form, INS-C from Carte Vitale data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmp.identity.ins import (
    InsAuthority,
    InvalidIns,
    compute_ins_c,
    make_nir,
    nir_key,
    parse_hl7_ins,
    parse_ins,
)


def test_a_known_nir_key():
    # 1 85 05 78 006 084 -> key 97 - (1850578006084 mod 97)
    assert nir_key("1850578006084") == 97 - 1850578006084 % 97
    assert parse_ins(f"1850578006084{nir_key('1850578006084'):02d}", InsAuthority.NIR).value.startswith("185")


@pytest.mark.parametrize(("department", "stands_for"), [("2A", "19"), ("2B", "18")])
def test_corsica_departments_count_as_19_and_18(department, stands_for):
    body = f"28502{department}123456"
    assert nir_key(body) == 97 - int(f"28502{stands_for}123456") % 97
    ins = parse_ins(f"{body}{nir_key(body):02d}", InsAuthority.TEST_NIR)
    assert ins.value[5:7] == department


@given(
    sex=st.sampled_from([1, 2]),
    year=st.integers(1900, 2025),
    month=st.integers(1, 12),
    department=st.sampled_from(["01", "35", "75", "2A", "2B", "99"]),
    commune=st.integers(1, 999),
    order=st.integers(1, 999),
)
def test_every_generated_nir_parses_and_any_other_key_is_refused(
    sex, year, month, department, commune, order
):
    nir = make_nir(sex=sex, year=year, month=month, department=department, commune=commune, order=order)
    assert parse_ins(nir, InsAuthority.NIR).value == nir
    wrong = f"{nir[:13]}{(int(nir[13:]) % 97) + 1:02d}"
    with pytest.raises(InvalidIns, match="control key"):
        parse_ins(wrong, InsAuthority.NIR)


@pytest.mark.parametrize(
    ("value", "authority", "message"),
    [
        ("18505780060841", InsAuthority.NIR, "15 characters"),
        ("585057800608412", InsAuthority.NIR, "13 digits"),
        ("1850578006084AB", InsAuthority.NIR, "2 digits"),
        ("185057800608412", "1.2.3", "unknown INS assigning authority"),
        ("123", InsAuthority.INS_C, "22 digits"),
    ],
)
def test_bad_ins_are_refused_with_the_reason(value, authority, message):
    with pytest.raises(InvalidIns, match=message):
        parse_ins(value, authority)


def test_hl7_form_round_trips_and_rejects_garbage():
    nir = make_nir(sex=2, year=1985, month=3, department="35", commune=238, order=101)
    ins = parse_ins(nir, InsAuthority.TEST_NIR)
    assert parse_hl7_ins(ins.hl7()) == ins
    for bad in (nir, f"{nir}^^^&1.2.250.1.213.1.4.10&ISO^NH<x/>", f"{nir}^^^&1.2.250.1.213.1.4.99&ISO"):
        with pytest.raises(InvalidIns):
            parse_hl7_ins(bad)


def test_ins_c_is_stable_normalises_the_first_name_and_has_a_valid_key():
    nir = make_nir(sex=1, year=1960, month=1, department="75", commune=101, order=12)
    first = compute_ins_c(nir=nir, first_name="Jérôme-André", birth_date_yymmdd="600100")
    again = compute_ins_c(nir=nir[:13], first_name="JEROMEANDRE", birth_date_yymmdd="600100")
    assert first == again
    assert first.authority is InsAuthority.INS_C
    assert len(first.value) == 22
    assert parse_ins(first.value, InsAuthority.INS_C) == first
    assert compute_ins_c(nir=nir, first_name="Jerome", birth_date_yymmdd="600100") != first
    with pytest.raises(InvalidIns, match="YYMMDD"):
        compute_ins_c(nir=nir, first_name="Jerome", birth_date_yymmdd="1960-01")
    with pytest.raises(InvalidIns, match="no letter"):
        compute_ins_c(nir=nir, first_name="123", birth_date_yymmdd="600100")
