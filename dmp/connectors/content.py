"""The document published for a batch of external items: a CDA section with a readable table."""

from __future__ import annotations

from dmp.cda.builder import CdaSection
from dmp.connectors.clients import ExternalItem
from dmp.connectors.models import Source


def items_section(*, source: Source, title: str, items: list[ExternalItem]) -> CdaSection:
    """The narrative table of the items (the CDA builder escapes every value)."""
    last_column = "Quantité" if source == Source.PHARMACY else "Montant remboursé (€)"
    rows: list[tuple[str, ...]] = [("Date", "Libellé", "Code", last_column)]
    for item in items:
        last = (
            item.quantity
            if source == Source.PHARMACY
            else (f"{item.amount_eur:.2f}" if item.amount_eur else "")
        )
        rows.append((item.date.strftime("%d/%m/%Y"), item.label, item.code, last))
    return CdaSection(title=title, table=tuple(rows))
