"""A tiny TCP proxy on 127.0.0.1 that a test can make misbehave.

Modes, switchable at any time:

- ``passthrough()``: forward bytes both ways;
- ``blackhole()``: keep every socket open but stop forwarding (bytes are read and thrown away, so
  neither side sees an error; a new connection is accepted and then ignored, so no server greeting
  ever comes) — a dead route, a frozen VM, a stateful firewall that lost its state;
- ``reset()``: reset (RST) every open connection and each new one as soon as it is accepted — a
  crashed middlebox, a firewall rejecting the route. ``drop()`` resets only the open ones.

One thread runs a ``selectors`` loop and does every socket operation itself; the control methods
hand their work to it and wait, so when ``reset()`` returns the RSTs have been sent. (Closing a
socket that another thread is blocked on in ``select()`` would delay the RST until that call
returns — the first version of this proxy did exactly that.)
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["TcpProxy"]

_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


class TcpProxy:
    """Forward ``(host, port)`` on 127.0.0.1 to ``(upstream_host, upstream_port)``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = "pass"
        self.accepted = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._peer: dict[socket.socket, socket.socket | None] = {}
        self._clients: set[socket.socket] = set()
        self._todo: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="faultproxy", daemon=True)
        self._thread.start()

    # -- control (any thread) -------------------------------------------------------------------
    def passthrough(self) -> None:
        """Heal: forward again. Connections that lost bytes while blackholed stay broken."""
        self.mode = "pass"

    def blackhole(self) -> None:
        """Stop forwarding in both directions, without closing anything."""
        self.mode = "blackhole"

    def reset(self) -> None:
        """Reset every open connection, and every new one until healed."""
        self.mode = "reset"
        self._run(self._drop_all)

    def drop(self) -> None:
        """Reset every connection open right now; new ones are served as the mode says."""
        self._run(self._drop_all)

    @property
    def open_connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._clients)

    def close(self) -> None:
        if self._thread.is_alive():
            self._run(self._shutdown)
            self._thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, fn: Callable[[], None]) -> None:
        done = threading.Event()
        self._todo.put((fn, done))
        self._wake_w.send(b"x")
        if not done.wait(10):
            raise RuntimeError("proxy loop did not respond")

    # -- the loop (its own thread) --------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping:
            for key, _ in self._sel.select(0.5):
                sock = key.fileobj
                if sock is self._wake_r:
                    self._wake_r.recv(4096)
                    self._run_todo()
                elif sock is self._listener:
                    self._accept()
                else:
                    assert isinstance(sock, socket.socket)
                    if sock in self._peer:
                        self._forward(sock)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._sel.close()

    def _run_todo(self) -> None:
        while True:
            try:
                fn, done = self._todo.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            finally:
                done.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            self.accepted += 1
            client.setblocking(True)
            if self.mode == "reset":
                _reset(client)
                continue
            upstream: socket.socket | None = None
            if self.mode == "pass":
                try:
                    upstream = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    _reset(client)
                    continue
                upstream.settimeout(None)
                self._peer[upstream] = client
                self._sel.register(upstream, selectors.EVENT_READ, None)
            # In a blackhole the client is accepted (as the kernel would anyway) and then ignored.
            self._peer[client] = upstream
            self._clients.add(client)
            self._sel.register(client, selectors.EVENT_READ, None)

    def _forward(self, src: socket.socket) -> None:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close_pair(src, rst=False)  # MySQL never half-closes: close both sides
            return
        dst = self._peer.get(src)
        if self.mode != "pass" or dst is None:
            return  # swallowed: the sender thinks it went out, the receiver never sees it
        try:
            dst.sendall(data)
        except OSError:
            self._close_pair(src, rst=True)

    def _close_pair(self, sock: socket.socket, *, rst: bool) -> None:
        peer = self._peer.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            self._peer.pop(s, None)
            self._clients.discard(s)
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s)
            if rst:
                _reset(s)
            else:
                with contextlib.suppress(OSError):
                    s.close()

    def _drop_all(self) -> None:
        for sock in list(self._clients):
            self._close_pair(sock, rst=True)

    def _shutdown(self) -> None:
        self._drop_all()
        self._stopping = True


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    with contextlib.suppress(OSError):
        sock.close()
