"""The hardened parser opens nothing a document names: no external DTD, no parameter entity,
whatever its encoding. libxml2 used to open a local file's external subset before the DOCTYPE
was refused: the answer told whether the file existed, and a pipe blocked the worker."""

from __future__ import annotations

import os
import threading

import pytest

from dmp.common.xml import UnsafeXml, parse_xml


def refusal(data: bytes) -> str:
    with pytest.raises(UnsafeXml) as refused:
        parse_xml(data)
    return refused.value.problems[0].message


@pytest.mark.parametrize(
    "template",
    [
        '<!DOCTYPE x SYSTEM "file://{}"><x/>',
        '<!DOCTYPE x [<!ENTITY % p SYSTEM "file://{}"> %p;]><x/>',
        '<?xml version="1.0"?>\n<!-- prolog --><!doctype x SYSTEM "file://{}"><x/>',
    ],
)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_file_named_in_a_dtd_is_never_opened(template, encoding, tmp_path):
    present = tmp_path / "present"
    present.write_text("<!ENTITY leaked 'secret'>")
    text = template
    if encoding != "utf-8":
        text = f'<?xml version="1.0" encoding="{encoding.upper()}"?>' + template.removeprefix(
            '<?xml version="1.0"?>\n'
        )
    answers = {refusal(text.format(path).encode(encoding)) for path in (present, tmp_path / "absent")}
    assert len(answers) == 1, answers  # the same answer whether the file exists or not
    # A pipe nobody writes to blocks whoever opens it: the parser must not even try.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[str] = []
    worker = threading.Thread(
        target=lambda: outcome.append(refusal(text.format(fifo).encode(encoding))), daemon=True
    )
    worker.start()
    worker.join(timeout=5)
    blocked = worker.is_alive()
    if blocked:  # release the stuck open so the test run can go on
        with fifo.open("wb"):
            pass
        worker.join(timeout=5)
    assert not blocked
    assert outcome == list(answers)


def test_doctype_text_inside_the_document_is_only_text():
    assert parse_xml(b"<x><![CDATA[<!DOCTYPE x>]]></x>").text == "<!DOCTYPE x>"


def test_a_document_of_countless_tiny_elements_is_refused_before_it_is_built():
    # 2 MB of markup would have built a tree of ~100 MB; 64 MB of it, 2 GB.
    with pytest.raises(UnsafeXml, match="tags exceeds"):
        parse_xml(b"<x>" + b"<y/>" * 500_000 + b"</x>")
    assert len(parse_xml(b"<x>" + b"<y/>" * 100_000 + b"</x>")) == 100_000


def test_a_text_node_over_libxml2s_default_10_mb_is_parsed_within_the_byte_limit():
    # An inline base64 body: a level 1 CDA's 8 MB PDF is 11 MB of base64.
    text = b"QUFB" * (3 * 1024 * 1024)
    assert parse_xml(b"<x>" + text + b"</x>").text == text.decode()
    with pytest.raises(UnsafeXml, match="exceeds the limit"):
        parse_xml(b"<x>" + text + b"</x>", max_bytes=len(text))
