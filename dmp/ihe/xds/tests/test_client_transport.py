"""The dev kit's SOAP client keeps its connection open between calls, and survives a server that
closes an idle kept-alive connection (gunicorn's keep-alive timeout, a proxy's idle timeout).

The server here is a plain socket server speaking just enough HTTP/1.1 to answer each request
with a fixed SOAP body: what is tested is the client's connection handling, not the DMP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from opendmp_client.xds import XdsClient

ANSWER = (
    b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing">'
    b"<s:Header><a:Action>urn:ihe:iti:2007:RegistryStoredQueryResponse</a:Action></s:Header><s:Body>"
    b'<rs:RegistryResponse xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" '
    b'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"/></s:Body></s:Envelope>'
)


@dataclass
class Server:
    """Answers `answers_per_connection` requests on each connection, then closes it without a
    word, as a server whose keep-alive timeout expired does."""

    answers_per_connection: int
    connections: int = 0
    requests: int = 0
    listener: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/ihe/xds/"

    def serve(self) -> None:
        while True:
            try:
                peer, _ = self.listener.accept()
            except OSError:
                return  # closed by the test
            self.connections += 1
            with peer, peer.makefile("rb") as reader:
                for _ in range(self.answers_per_connection):
                    length = 0
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.decode("latin-1").partition(":")
                        if name.lower() == "content-length":
                            length = int(value)
                    if not line:
                        break
                    reader.read(length)
                    self.requests += 1
                    peer.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\n"
                        + f"Content-Length: {len(ANSWER)}\r\n\r\n".encode()
                        + ANSWER
                    )


@contextmanager
def serving(answers_per_connection: int) -> Iterator[Server]:
    server = Server(answers_per_connection)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.listener.close()


def client_of(endpoint: str) -> XdsClient:
    # `send` sends what it is given: no VIHF is made, so no claims, key or certificate.
    return XdsClient(endpoint=endpoint, claims=None, key=None, certificate=None)  # type: ignore[arg-type]


@pytest.fixture
def send_to() -> Iterator[object]:
    clients: list[XdsClient] = []

    def make(endpoint: str) -> XdsClient:
        clients.append(client := client_of(endpoint))
        return client

    yield make
    for client in clients:
        client.close()


def test_calls_share_one_connection(send_to):
    with serving(answers_per_connection=10) as server:
        client = send_to(server.endpoint)
        for _ in range(3):
            assert client.send("application/soap+xml", b"<request/>").ok
    assert (server.connections, server.requests) == (1, 3)


def test_a_connection_the_server_closed_while_idle_is_replaced_once(send_to):
    """The second call finds its kept-alive connection closed by the server: it is sent again
    on a new connection, not reported as a failure."""
    with serving(answers_per_connection=1) as server:
        client = send_to(server.endpoint)
        for _ in range(3):
            assert client.send("application/soap+xml", b"<request/>").ok
    assert (server.connections, server.requests) == (3, 3)


def test_a_server_that_closes_a_new_connection_is_a_failure(send_to):
    """Only a reused connection is retried: a server that hangs up on a fresh one fails the call."""
    with serving(answers_per_connection=0) as server:
        client = send_to(server.endpoint)
        with pytest.raises(ConnectionError):
            client.send("application/soap+xml", b"<request/>")
    assert (server.connections, server.requests) == (1, 0)


def test_exchange_gives_the_answer_as_received_and_read_answer_parses_it(send_to):
    """The raw answer (what a trace or a load generator keeps) is the server's bytes, on the same
    kept-alive connection as `send`; parsed, it is what `send` gives."""
    with serving(answers_per_connection=10) as server:
        client = send_to(server.endpoint)
        status, content_type, payload = client.exchange("application/soap+xml", b"<request/>")
        assert (status, content_type, payload) == (200, "application/soap+xml", ANSWER)
        assert client.read_answer(status, content_type, payload).ok
        assert client.send("application/soap+xml", b"<request/>").ok
    assert (server.connections, server.requests) == (1, 2)
