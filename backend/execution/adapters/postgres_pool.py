"""The Postgres connection pool every Postgres adapter shares: bounded, lazily filled.

Every wait on Postgres is bounded on the client, because a server that accepts a connection and
then never answers is not bounded by anything on the server (``statement_timeout`` only runs on a
server that runs):

- getting a connection from the pool: ``timeout_s`` (the caller's ``pool.connection(timeout=)``);
- opening one: libpq's ``connect_timeout`` (psycopg rounds it up to at least 2 s), in the pool's
  own worker, never in a request;
- each wait for the server's answer (a statement, a pipeline flight, a COMMIT): ``timeout_s``,
  by :class:`BoundedConnection`. A connection that overruns it is closed, so the pool discards
  it and the caller gets an ``OperationalError``;
- TCP keepalives and ``tcp_user_timeout`` drop a connection whose peer vanished from the
  network. They cannot catch a hung server whose kernel still acknowledges every packet; the
  bound above does.

The DSN is parsed once, here: a DSN that libpq would reject, or a URL whose password is not
percent-encoded, stops start-up with a message that never repeats it. libpq echoes the part of
a DSN it cannot parse, and psycopg_pool logs that message at WARNING on every reconnect.
"""

from __future__ import annotations

import math
import re
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import PQGen
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from backend.execution.errors import ConfigurationError

# TCP keepalive: the first probe after this many idle seconds, then one a second.
_KEEPALIVE_IDLE_S = 10
_KEEPALIVE_COUNT = 3
_URL = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)


class BoundedConnection(psycopg.Connection[Any]):
    """A connection whose every wait for the server ends after ``io_timeout_s``.

    psycopg funnels all blocking I/O of a connection through ``wait()`` (statements, pipeline
    syncs, COMMIT, the pool's rollback of a returned connection), so bounding it bounds them all.
    """

    io_timeout_s: float | None = None  # set by the pool on each new connection

    def wait(self, gen: PQGen[Any], interval: float = 0.1, timeout: float | None = None) -> Any:
        bound = self.io_timeout_s
        if bound is not None and (timeout is None or timeout > bound):
            timeout = bound
        try:
            return super().wait(gen, interval, timeout)
        except pg_errors._WaitTimeout:
            # The protocol is mid-message and the server may never answer: the connection
            # cannot be reused. Closing it makes the pool discard it and fails any later wait
            # (a pipeline's closing sync) at once instead of after another bound.
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"no answer from Postgres within {timeout:g}s; connection closed"
            ) from None


def open_pool(dsn: str, *, max_size: int, timeout_s: float) -> ConnectionPool[Any]:
    """A lazily filled pool: start-up never waits for Postgres, a request waits at most timeout_s
    for a connection and at most timeout_s for each answer.

    Connections are in autocommit: a lone statement is one round trip, and the one transaction
    we need is opened explicitly, so its BEGIN can travel with the first statements.
    """
    params = parse_dsn(dsn)

    def configure(conn: BoundedConnection) -> None:
        conn.io_timeout_s = timeout_s

    pool: ConnectionPool[Any] = ConnectionPool(
        # The parsed parameters, not the text: what libpq parses from now on is well formed.
        "",
        connection_class=BoundedConnection,
        min_size=0,
        max_size=max_size,
        timeout=timeout_s,
        open=False,
        configure=configure,
        # psycopg_pool backs off between reconnection attempts (1 s, 2 s, 4 s, ...) and, by
        # default, keeps one series going for 5 minutes: after an outage the pool would only
        # try again seconds after Postgres is back, and turn requests away meanwhile. Ending a
        # series after about one timeout lets the next request start a fresh attempt at once
        # (still one at a time: the pool never runs two growing attempts together).
        reconnect_timeout=max(1.0, timeout_s),
        kwargs={
            **params,
            "autocommit": True,
            "connect_timeout": max(1, math.ceil(timeout_s)),
            "keepalives": 1,
            "keepalives_idle": _KEEPALIVE_IDLE_S,
            "keepalives_interval": 1,
            "keepalives_count": _KEEPALIVE_COUNT,
            # Unacknowledged data for this long drops the connection (a network partition).
            "tcp_user_timeout": max(1000, int(timeout_s * 1000)),
            "options": f"-c statement_timeout={int(timeout_s * 1000)}",
            "application_name": "execution-gateway",
        },
    )
    pool.open(wait=False)
    return pool


def parse_dsn(dsn: str) -> dict[str, Any]:
    """The DSN's parameters; ConfigurationError, without any of its text, if it is unusable."""
    advice = (
        "EXEC_POSTGRES_DSN (or DATABASE_URL) is not a valid libpq connection string or URL (its "
        "text is not repeated here: it may hold a password). In a URL, percent-encode the "
        "password's reserved characters: % as %25, @ as %40, / as %2F, : as %3A, a space as %20"
    )
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        raise ConfigurationError(advice) from None
    if _URL.match(dsn) and _ambiguous_url(dsn):
        raise ConfigurationError(advice)
    for port in str(params.get("port") or "").split(","):
        if port and not port.strip().isdigit():
            raise ConfigurationError(advice)
    return params


def _ambiguous_url(dsn: str) -> bool:
    """A raw ``@`` or ``/`` in a URL's password splits it into host, port and database names,
    which libpq then prints in its errors: refuse a URL with an ``@`` anywhere but once, in
    front of the host."""
    rest = dsn.split("://", 1)[1]
    authority, _, tail = rest.partition("/")
    return authority.count("@") > 1 or "@" in tail
