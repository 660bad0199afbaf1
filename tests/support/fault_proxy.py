"""A loopback TCP proxy that a test switches between pass, refuse, hang and reset.

Put it in front of Postgres or the Firestore emulator and point the service at ``proxy.address``:

- ``PASS``: bytes flow both ways (bytes held while hanging are delivered first, in order).
- ``REFUSE``: the server is down. The port is closed (a connect gets ECONNREFUSED) and every open
  connection is reset.
- ``HANG``: the server accepts and then never answers. New connections are accepted, and on every
  connection the bytes are read and held, so the peer's writes succeed and it waits forever.
- ``RESET``: the server dies mid-request. A connection is reset (RST) as soon as either side
  sends anything, including a request held while hanging.

One thread runs a selector loop over every socket, so a mode switch takes effect between two
reads and never races a blocked ``recv``. ``set()`` returns once the loop has applied the mode.
"""

from __future__ import annotations

import random
import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType


class Mode(StrEnum):
    PASS = "pass"
    REFUSE = "refuse"
    HANG = "hang"
    RESET = "reset"


@dataclass(eq=False)
class _Pair:
    client: socket.socket
    upstream: socket.socket
    # Bytes read while hanging, per direction, delivered in order when the proxy passes again.
    to_upstream: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, mode: Mode = Mode.PASS) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._listener: socket.socket | None = _listen_outside_ephemeral_ports()
        self.port: int = self._listener.getsockname()[1]
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pairs: dict[socket.socket, _Pair] = {}
        self._lock = threading.Lock()
        self._mode = Mode.PASS
        self._wanted: tuple[Mode, threading.Event] | None = None
        self._stopping = False
        self.accepted = 0
        # The last error of the loop itself (a broken connection only drops that connection).
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="fault-proxy")
        self._thread.start()
        if mode is not Mode.PASS:
            self.set(mode)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._mode

    def set(self, mode: Mode) -> None:
        """Switches the mode; returns once it is in force."""
        if not self._thread.is_alive():
            raise RuntimeError(f"the fault proxy's loop has stopped: {self.error!r}")
        applied = threading.Event()
        with self._lock:
            self._wanted = (mode, applied)
        self._wake_w.send(b"x")
        if not applied.wait(5) or self.error is not None:
            raise RuntimeError(f"the fault proxy did not apply {mode}: {self.error!r}")

    def close(self) -> None:
        self._stopping = True
        if self._thread.is_alive():
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass  # the loop closed it on its way out
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the loop (its own thread) ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, _ in self._selector.select(timeout=0.5):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._wake_r:
                        sock.recv(4096)
                        self._apply_wanted_mode()
                    elif sock is self._listener:
                        self._accept()
                    elif sock in self._pairs:
                        try:
                            self._relay(sock)
                        except OSError:  # that connection is broken; the others go on
                            if (pair := self._pairs.get(sock)) is not None:
                                self._drop(pair, reset=True)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            for pair in list(self._pairs.values()):
                self._drop(pair, reset=True)
            if self._listener is not None:
                self._listener.close()
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _apply_wanted_mode(self) -> None:
        with self._lock:
            wanted, self._wanted = self._wanted, None
        if wanted is None:
            return
        mode, applied = wanted
        self._mode = mode
        if mode is Mode.REFUSE:
            if self._listener is not None:
                self._selector.unregister(self._listener)
                self._listener.close()
                self._listener = None
            for pair in list(self._pairs.values()):
                self._drop(pair, reset=True)
        else:
            if self._listener is None:
                # SO_REUSEADDR (create_server's default) lets the same port be bound again, and
                # a port outside the ephemeral range is not handed to someone's outgoing socket.
                try:
                    self._listener = socket.create_server(("127.0.0.1", self.port))
                except OSError as exc:
                    self.error = exc
                    applied.set()
                    return
                self._selector.register(self._listener, selectors.EVENT_READ)
            for pair in list(self._pairs.values()):
                if mode is Mode.PASS:
                    self._flush(pair)
                elif mode is Mode.RESET and (pair.to_upstream or pair.to_client):
                    self._drop(pair, reset=True)  # a request held while hanging dies now
        applied.set()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        self.accepted += 1
        try:
            upstream = socket.create_connection(self._upstream, timeout=2)
        except OSError:
            _reset(client)
            return
        try:
            for sock in (client, upstream):
                sock.settimeout(None)
                # Forward each write at once: Nagle's delay would be the proxy's, not the server's.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # the client gave up already
            _reset(client)
            upstream.close()
            return
        pair = _Pair(client, upstream)
        self._pairs[client] = self._pairs[upstream] = pair
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _relay(self, sock: socket.socket) -> None:
        pair = self._pairs[sock]
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(pair, reset=False)
            return
        if self._mode is Mode.RESET:
            self._drop(pair, reset=True)
            return
        held = pair.to_upstream if sock is pair.client else pair.to_client
        held.extend(data)
        if self._mode is Mode.PASS:
            self._flush(pair)

    def _flush(self, pair: _Pair) -> None:
        try:
            if pair.to_upstream:
                pair.upstream.sendall(pair.to_upstream)
                pair.to_upstream.clear()
            if pair.to_client:
                pair.client.sendall(pair.to_client)
                pair.to_client.clear()
        except OSError:
            self._drop(pair, reset=True)

    def _drop(self, pair: _Pair, *, reset: bool) -> None:
        for sock in (pair.client, pair.upstream):
            if self._pairs.pop(sock, None) is not None:
                self._selector.unregister(sock)
        if reset:
            _reset(pair.client)
        else:
            pair.client.close()
        pair.upstream.close()


def _listen_outside_ephemeral_ports() -> socket.socket:
    """A listener on a free port below the kernel's ephemeral range: REFUSE closes it and PASS
    binds the same port again, which an outgoing connection must not have taken meanwhile."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(10000, max(10001, low))
        try:
            return socket.create_server(("127.0.0.1", port))
        except OSError:
            continue
    return socket.create_server(("127.0.0.1", 0))


def _reset(sock: socket.socket) -> None:
    """Closes with an RST instead of a FIN: the peer sees ECONNRESET, as when a server dies."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
