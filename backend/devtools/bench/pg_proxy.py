"""A loopback TCP proxy in front of Postgres that counts round trips on the wire.

A round trip is a message the client sends and then waits on: a simple Query ('Q') or a Sync
('S', which ends an extended-protocol batch; a pipeline of statements ends with one Sync). The
count is what the server saw, whatever our code believes it sent. Connect with
``sslmode=disable`` so the stream stays readable.
"""

from __future__ import annotations

import socket
import threading

_SSL_OR_GSS_REQUEST = {80877103, 80877104}


class PgRoundTripProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._round_trips = 0
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True, name="pg-proxy").start()

    def round_trips(self) -> int:
        with self._lock:
            return self._round_trips

    def stop(self) -> None:
        self._stopping = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            # Forward each write at once: with Nagle's algorithm a small write waits for the
            # peer's delayed ACK (40 ms), which would be the proxy's cost, not the service's.
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(
                target=self._client_to_server, args=(client, server), daemon=True
            ).start()
            threading.Thread(target=_pipe, args=(server, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        buffer, started = b"", False
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                _close(client, server)
                return
            server.sendall(data)
            buffer += data
            buffer, started, counted = _count_messages(buffer, started)
            if counted:
                with self._lock:
                    self._round_trips += counted


def _count_messages(buffer: bytes, started: bool) -> tuple[bytes, bool, int]:
    counted = 0
    while True:
        if not started:  # untyped startup-phase messages: length, then a request code
            if len(buffer) < 8 or len(buffer) < int.from_bytes(buffer[:4], "big"):
                return buffer, started, counted
            length = int.from_bytes(buffer[:4], "big")
            code = int.from_bytes(buffer[4:8], "big")
            buffer = buffer[length:]
            started = code not in _SSL_OR_GSS_REQUEST
            continue
        if len(buffer) < 5:
            return buffer, started, counted
        length = int.from_bytes(buffer[1:5], "big")
        if len(buffer) < 1 + length:
            return buffer, started, counted
        if buffer[:1] in (b"Q", b"S"):
            counted += 1
        buffer = buffer[1 + length :]


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            data = b""
        if not data:
            _close(source, sink)
            return
        try:
            sink.sendall(data)
        except OSError:
            _close(source, sink)
            return


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass
