"""Architecture rules that import-linter cannot express.

Records, documents, authorisations and the audit trail change only through their services:
no other module calls a writing manager/queryset method on those models. The bulk demo
loader is the one exception (it writes synthetic rows with COPY, outside any channel).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUARDED_MODELS = {
    "Record",
    "Authorisation",
    "DocumentEntry",
    "DocumentAuthor",
    "SubmissionSet",
    "Folder",
    "Association",
    "AuditEvent",
    "AuditChainHead",
}
WRITES = {"create", "bulk_create", "update", "delete", "update_or_create", "get_or_create", "bulk_update"}
OWNERS = {
    "dmp/records/services.py",
    "dmp/documents/services.py",
    "dmp/audit/services.py",
    "dmp/demo/generator.py",
}


def _root_name(node: ast.AST) -> str | None:
    """`Record` for `Record.objects.filter(...).update` and the like."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def guarded_writes(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
            chain = ast.unparse(node.func)
            if ".objects" in chain and _root_name(node.func) in GUARDED_MODELS:
                found.append((node.lineno, chain))
    return found


def test_the_checker_sees_a_write():
    assert guarded_writes("Record.objects.filter(pk=1).update(status='x')")
    assert guarded_writes("DocumentEntry.objects.select_for_update().get_or_create(a=1)")
    assert not guarded_writes("Record.objects.filter(pk=1).first()")
    assert not guarded_writes("Ticket.objects.create(a=1)")


def test_only_the_services_write_records_documents_authorisations_and_audit():
    offenders = []
    for path in sorted((ROOT / "dmp").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if "/tests/" in relative or "/migrations/" in relative or relative in OWNERS:
            continue
        offenders += [f"{relative}:{line} {call}" for line, call in guarded_writes(path.read_text())]
    assert offenders == []
