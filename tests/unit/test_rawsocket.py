"""The terminal's WebSocket on its own socket (``playground.rawsocket``):
frames, control frames, limits and the closing handshake, over a real socket
pair, the client side played by ``websockets``' own sans-I/O protocol."""
from __future__ import annotations

import asyncio
import socket

import pytest
from twisted.internet import error
from websockets.frames import Opcode
from websockets.protocol import OPEN, Protocol, Side

from playground import rawsocket

MiB = 1024 * 1024


class Transport:
    """What the connection needs of Twisted's transport: the socket, and
    ``connectionLost`` (Twisted closes the socket there)."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.lost = None

    def connectionLost(self, reason) -> None:
        self.lost = reason
        self.socket.close()


class Client:
    """The browser's end: a blocking socket and a client-side protocol."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ws = Protocol(Side.CLIENT, state=OPEN, max_size=None)
        self.frames: list = []
        self.eof = False

    def push(self) -> None:
        for data in self.ws.data_to_send():
            if data:
                self.sock.sendall(data)

    def send_binary(self, data: bytes, fin: bool = True) -> None:
        self.ws.send_binary(data, fin=fin)
        self.push()

    def send_text(self, text: str) -> None:
        self.ws.send_text(text.encode())
        self.push()

    async def read(self, until, timeout: float = 10.0) -> None:
        """Read frames until ``until(frames)`` (or EOF, which ends it too)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not until(self.frames) and not self.eof:
                data = await loop.sock_recv(self.sock, 1024 * 1024)
                if not data:
                    self.ws.receive_eof()
                    self.eof = True
                else:
                    self.ws.receive_data(data)
                self.frames.extend(self.ws.events_received())
                self.push()

    def of(self, opcode: Opcode) -> list:
        return [frame for frame in self.frames if frame.opcode is opcode]


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.setblocking(False)
    client.setblocking(False)
    yield server, client
    for sock in (server, client):
        sock.close()


def connect(pair, **options):
    server, client = pair
    received: list = []
    transport = Transport(server)
    settings = {"max_size": MiB, "ping_interval": 20.0, "ping_timeout": 30.0, **options}
    conn = rawsocket.Connection(transport, on_message=received.append, **settings)
    return conn, transport, Client(client), received


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def run(coroutine):
    return asyncio.run(coroutine)


def test_messages_arrive_whole_and_in_order_after_what_autobahn_had_read(pair):
    async def scenario():
        early = Protocol(Side.CLIENT, state=OPEN)
        early.send_binary(b"typed before the hand-over")
        conn, _, client, received = connect(pair, unparsed=b"".join(early.data_to_send()))
        conn.start()
        client.send_text('{"type": "ack", "bytes": 0}')
        client.send_binary(b"abc", fin=False)
        client.ws.send_continuation(b"def", fin=True)
        client.push()
        client.send_binary(bytes(range(256)) * 100)
        await until(lambda: len(received) == 4)
        assert received == [b"typed before the hand-over", '{"type": "ack", "bytes": 0}', b"abcdef",
                            bytes(range(256)) * 100]

    run(scenario())


def test_what_twisted_had_not_sent_goes_out_before_any_frame(pair):
    async def scenario():
        handshake = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
        conn, _, client, _ = connect(pair, unsent=handshake)
        conn.send_bytes(b"first output")
        loop = asyncio.get_running_loop()
        data = b""
        async with asyncio.timeout(10):
            while len(data) < len(handshake) + 2 + len(b"first output"):
                data += await loop.sock_recv(client.sock, 65536)
        assert data.startswith(handshake)
        client.ws.receive_data(data[len(handshake):])
        assert [f.data for f in client.ws.events_received()] == [b"first output"]

    run(scenario())


def test_a_ping_is_answered_with_a_pong(pair):
    async def scenario():
        conn, _, client, received = connect(pair)
        conn.start()
        client.ws.send_ping(b"are you there")
        client.push()
        await client.read(lambda frames: client.of(Opcode.PONG))
        assert client.of(Opcode.PONG)[0].data == b"are you there"
        assert received == []

    run(scenario())


def test_a_message_over_the_limit_closes_with_1009(pair):
    async def scenario():
        conn, _transport, client, received = connect(pair, max_size=1000)
        conn.start()
        client.send_binary(b"x" * 1001)
        await client.read(lambda frames: client.of(Opcode.CLOSE))
        assert client.ws.close_rcvd.code == 1009
        await until(lambda: conn.ended)
        assert received == []

    run(scenario())


def test_a_fragmented_message_over_the_limit_closes_with_1009(pair):
    async def scenario():
        conn, _, client, received = connect(pair, max_size=1000)
        conn.start()
        client.send_binary(b"x" * 600, fin=False)
        client.ws.send_continuation(b"x" * 600, fin=True)
        client.push()
        await client.read(lambda frames: client.of(Opcode.CLOSE))
        assert client.ws.close_rcvd.code == 1009
        assert received == []

    run(scenario())


def test_text_that_is_not_utf8_closes_with_1007(pair):
    async def scenario():
        conn, _, client, received = connect(pair)
        conn.start()
        client.ws.send_text(b"\xff\xfe not utf-8")
        client.push()
        await client.read(lambda frames: client.of(Opcode.CLOSE))
        assert client.ws.close_rcvd.code == 1007
        assert received == []

    run(scenario())


def test_an_unmasked_frame_closes_with_1002(pair):
    async def scenario():
        conn, _, client, received = connect(pair)
        conn.start()
        client.sock.sendall(b"\x82\x01x")  # a binary frame, as a server would send it
        await client.read(lambda frames: client.of(Opcode.CLOSE))
        assert client.ws.close_rcvd.code == 1002
        assert received == []

    run(scenario())


def test_a_close_code_reaches_the_client_and_the_connection_ends_cleanly(pair):
    async def scenario():
        conn, transport, client, _ = connect(pair)
        conn.start()
        conn.close(4404)
        conn.send_bytes(b"too late")  # nothing goes out after the close frame
        await client.read(lambda frames: client.eof)
        assert client.ws.close_rcvd.code == 4404
        assert client.of(Opcode.BINARY) == []
        await until(lambda: conn.ended)
        assert transport.lost.check(error.ConnectionDone)

    run(scenario())


def test_a_client_that_closes_gets_its_close_frame_back(pair):
    async def scenario():
        conn, transport, client, _ = connect(pair)
        conn.start()
        client.ws.send_close(1000)
        client.push()
        await client.read(lambda frames: client.eof)
        assert client.ws.close_rcvd.code == 1000
        await until(lambda: conn.ended)
        assert transport.lost.check(error.ConnectionDone)

    run(scenario())


def test_a_client_gone_without_a_close_frame_ends_the_connection(pair):
    async def scenario():
        conn, transport, client, _ = connect(pair)
        conn.start()
        client.sock.close()
        await until(lambda: conn.ended)
        assert transport.lost.check(error.ConnectionLost)

    run(scenario())


def test_a_client_that_stops_reading_gets_everything_in_order_once_it_reads_again(pair):
    async def scenario():
        conn, _, client, _ = connect(pair)
        conn.start()
        chunks = [bytes([i]) * 64 * 1024 for i in range(64)]  # 4 MiB, more than the socket holds
        for chunk in chunks:
            conn.send_bytes(chunk)
        assert conn.buffered > 0  # the socket is full; the rest waits
        await client.read(lambda frames: len(client.of(Opcode.BINARY)) == len(chunks))
        assert [frame.data for frame in client.of(Opcode.BINARY)] == chunks
        await until(lambda: conn.buffered == 0)

    run(scenario())


def test_a_quiet_client_is_pinged_and_one_that_never_answers_is_dropped(pair):
    async def scenario():
        conn, transport, client, _ = connect(pair, ping_interval=0.1, ping_timeout=0.2)
        conn.start()
        try:  # reading, and answering each ping (Client.read pushes the protocol's pong)
            await client.read(lambda frames: False, timeout=1.0)
        except TimeoutError:
            pass
        assert len(client.of(Opcode.PING)) >= 2
        assert not conn.ended
        client.push = lambda: None  # now it goes silent
        await until(lambda: conn.ended, timeout=5)
        assert transport.lost.check(error.ConnectionLost)
        # Ended while open: what the hub still writes is dropped, not kept or raised.
        conn.send_bytes(b"output after the end")
        conn.send_text("{}")
        conn.close(1000)
        assert conn.buffered == 0

    run(scenario())


def test_a_close_the_client_never_answers_ends_the_connection_after_a_timeout(pair, monkeypatch):
    monkeypatch.setattr(rawsocket, "CLOSE_TIMEOUT", 0.2)

    async def scenario():
        conn, transport, _client, _ = connect(pair)
        conn.start()
        conn.close(4410)
        await until(lambda: conn.ended, timeout=5)
        assert transport.lost is not None

    run(scenario())
