"""Local backing services for tests and ``make run``: Firestore emulator + Postgres.

Pure stdlib + psycopg 3. Used by the test suite's conftest and by
``python -m backend.devtools.run_local``. Progress is printed to stderr as
``[local-stack] ...`` lines because a fresh machine can take a while.

Firestore
    :func:`start_firestore_emulator` runs ``node tools/firestore-emulator/server.js``
    (pinned ``@firestore-emulator/server``, in-memory, bound to 127.0.0.1) and
    returns an :class:`EmulatorProcess` whose ``.host`` is the value for
    ``FIRESTORE_EMULATOR_HOST``. Needs ``make install`` (Node + ``npm ci``).

Postgres
    :func:`ensure_postgres` returns an admin DSN (user ``postgres``), in order:

    1. ``EXEC_TEST_PG_DSN`` if set (used as-is; must be reachable);
    2. ``postgresql://postgres@127.0.0.1:5432/postgres`` if it accepts a
       connection within 2 s -- skipped when ``EXEC_TEST_PG_SKIP_DEFAULT=1``;
    3. a throwaway cluster: ``initdb`` into ``<repo>/.local/pg/data`` (gitignored),
       started with ``pg_ctl`` on a free port, listening on 127.0.0.1 only, no
       Unix socket, trust auth, fsync off. An already-running throwaway cluster
       is reused. When running as root the cluster is owned by, and run as, the
       ``postgres`` OS user (via ``runuser``/``su``); if that user cannot reach
       ``<repo>/.local/pg`` (e.g. the repo lives under a 0700 home directory) a
       directory under the system temp dir is used instead. Stop it with
       :func:`stop_throwaway_postgres`.

    :func:`create_database`, :func:`drop_database` and :func:`apply_schema`
    (the migrations in ``backend/db/migrations``) operate on the returned DSN.

Environment variables read here:
    ``EXEC_TEST_PG_DSN``           admin DSN to use instead of discovering/starting one
    ``EXEC_TEST_PG_SKIP_DEFAULT``  ``1`` = do not try 127.0.0.1:5432 (forces the throwaway cluster)
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import glob
import hashlib
import os
import pwd
import queue
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

__all__ = [
    "DEFAULT_ADMIN_DSN",
    "EMULATOR_DIR",
    "REPO_ROOT",
    "EmulatorProcess",
    "apply_schema",
    "create_database",
    "drop_database",
    "ensure_postgres",
    "start_firestore_emulator",
    "stop_throwaway_postgres",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
EMULATOR_DIR = REPO_ROOT / "tools" / "firestore-emulator"
LOCAL_PG_DIR = REPO_ROOT / ".local" / "pg"

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

_READY_RE = re.compile(r"^firestore emulator listening on (?P<host>\S+):(?P<port>\d+)\s*$")
_DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PG_OS_USER = "postgres"


def _log(message: str) -> None:
    print(f"[local-stack] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Firestore emulator
# --------------------------------------------------------------------------------------


class EmulatorProcess:
    """A running Firestore emulator. ``host`` is the ``FIRESTORE_EMULATOR_HOST`` value."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.host = f"127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Idempotent."""
        proc = self.process
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"exited({self.process.returncode})"
        return f"EmulatorProcess(host={self.host!r}, pid={self.pid}, {state})"


def _pump_stdout(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    try:
        for line in stream:
            lines.put(line)
    finally:
        lines.put(None)


def _pump_stderr(stream: IO[str], tail: collections.deque[str]) -> None:
    for line in stream:
        tail.append(line.rstrip("\n"))
        with contextlib.suppress(Exception):  # sys.stderr may be swapped/closed (pytest capture)
            print(f"[firestore-emulator] {line.rstrip()}", file=sys.stderr, flush=True)


def start_firestore_emulator(
    port: int = 0, *, timeout: float = 20.0, stats_port: int | None = None
) -> EmulatorProcess:
    """Start the pinned Firestore emulator on 127.0.0.1:``port`` (0 = any free port).

    Blocks until the emulator prints its ready line (at most ``timeout`` seconds).
    The emulator also exits by itself if this Python process dies (its stdin closes).
    With ``stats_port``, it counts every RPC it receives and serves the counts as JSON on
    http://127.0.0.1:<stats_port>/ (used by the benchmark).
    """
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(
            "The Firestore emulator needs Node.js but `node` is not on PATH. "
            "Run `make install` (as root it installs Debian's nodejs/npm packages)."
        )
    if not (EMULATOR_DIR / "node_modules" / "@firestore-emulator" / "server").is_dir():
        raise RuntimeError(
            f"Firestore emulator dependencies are not installed "
            f"({EMULATOR_DIR / 'node_modules'} is missing). Run `make install` "
            f"(it runs `npm ci` in tools/firestore-emulator)."
        )

    _log(f"starting Firestore emulator (port {port or 'auto'})...")
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "EMULATOR_EXIT_ON_STDIN_EOF": "1",
    }
    if stats_port is not None:
        env["EMULATOR_STATS_PORT"] = str(stats_port)
    proc = subprocess.Popen(
        [node, "server.js"],
        cwd=EMULATOR_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    err_tail: collections.deque[str] = collections.deque(maxlen=40)
    threading.Thread(
        target=_pump_stdout, args=(proc.stdout, lines), name="emulator-stdout", daemon=True
    ).start()
    threading.Thread(
        target=_pump_stderr, args=(proc.stderr, err_tail), name="emulator-stderr", daemon=True
    ).start()

    emulator = EmulatorProcess(proc, port)
    started = time.monotonic()
    deadline = started + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            emulator.stop()
            raise RuntimeError(
                f"Firestore emulator did not become ready within {timeout:.0f}s. "
                f"stderr tail:\n" + "\n".join(err_tail)
            )
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:  # stdout closed: the process is exiting
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                emulator.stop()
                code = proc.returncode
            time.sleep(0.1)  # let the stderr pump catch up
            raise RuntimeError(
                f"Firestore emulator exited (code {code}) before becoming ready"
                + (f" (is port {port} already in use?)" if port else "")
                + "; stderr tail:\n"
                + "\n".join(err_tail)
            )
        match = _READY_RE.match(line)
        if match:
            emulator.port = int(match.group("port"))
            emulator.host = f"127.0.0.1:{emulator.port}"
            _log(
                f"Firestore emulator ready at {emulator.host} "
                f"(pid {proc.pid}, {time.monotonic() - started:.1f}s)"
            )
            return emulator
        # Any other stdout output is unexpected but harmless; surface it.
        _log(f"emulator: {line.rstrip()}")


# --------------------------------------------------------------------------------------
# Postgres
# --------------------------------------------------------------------------------------


def _can_connect(dsn: str, timeout: int = 2) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def ensure_postgres() -> str:
    """Return an admin DSN (libpq URL, user ``postgres``) for a reachable Postgres server.

    See the module docstring for the lookup order. Raises RuntimeError with the
    command to run if no server is reachable and none can be started.
    """
    env_dsn = os.environ.get("EXEC_TEST_PG_DSN", "").strip()
    if env_dsn:
        _log("using Postgres from EXEC_TEST_PG_DSN")
        if not _can_connect(env_dsn, timeout=5):
            raise RuntimeError(
                "EXEC_TEST_PG_DSN is set but that server does not accept connections. "
                "Fix the DSN, or unset it to use/start a local server."
            )
        return env_dsn

    if _truthy(os.environ.get("EXEC_TEST_PG_SKIP_DEFAULT")):
        _log("EXEC_TEST_PG_SKIP_DEFAULT set: not trying 127.0.0.1:5432")
    else:
        if _can_connect(DEFAULT_ADMIN_DSN):
            _log("using Postgres on 127.0.0.1:5432")
            return DEFAULT_ADMIN_DSN
        _log("no usable Postgres on 127.0.0.1:5432 (user postgres, trust auth)")

    return _ensure_throwaway_cluster()


def _find_pg_bindir() -> Path | None:
    """Directory holding initdb + pg_ctl: PATH first, then /usr/lib/postgresql/*/bin (newest)."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
        candidates.append(Path(on_path).parent)

    def version_key(path: str) -> tuple[int, ...]:
        parts = Path(path).parent.name.split(".")
        return tuple(int(p) if p.isdigit() else 0 for p in parts)

    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True):
        candidates.append(Path(found))
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _is_root() -> bool:
    return os.geteuid() == 0


def _pg_os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(_PG_OS_USER)
    except KeyError:
        raise RuntimeError(
            "Postgres refuses to run as root and there is no `postgres` OS user to run it as. "
            "Run `make install` (installs Debian's postgresql package, which creates that "
            "user) or set EXEC_TEST_PG_DSN to a reachable server."
        ) from None


def _as_pg_user(argv: list[str]) -> list[str]:
    """Wrap ``argv`` so it runs as the ``postgres`` OS user when we are root."""
    if not _is_root():
        return argv
    runuser = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.path.exists(p)), None
    )
    if runuser:
        return [runuser, "-u", _PG_OS_USER, "--", *argv]
    su = shutil.which("su") or "/bin/su"
    return [su, _PG_OS_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]


def _pg_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C")
    return env


def _run_pg(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_pg_user(argv),
        cwd=cwd,
        env=_pg_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def _pg_user_can_use(directory: Path) -> bool:
    """As root: can the postgres OS user write into ``directory``?"""
    result = subprocess.run(
        _as_pg_user(
            ["sh", "-c", 'test -d "$1" && test -w "$1" && test -x "$1"', "sh", str(directory)]
        ),
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return result.returncode == 0


def _fallback_pg_dir() -> Path:
    digest = hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"execution-gateway-pg-{digest}"


def _candidate_pg_dirs() -> list[Path]:
    return [LOCAL_PG_DIR, _fallback_pg_dir()]


def _prepare_pg_dir(base: Path) -> bool:
    """Create ``base`` so the server's OS user owns it. False if that user can't use it."""
    base.mkdir(parents=True, exist_ok=True)
    if not _is_root():
        return True
    pg_user = _pg_os_user()
    # Parents we created (e.g. .local/) stay root-owned but must be traversable.
    for parent in (base.parent, base.parent.parent):
        if parent.is_relative_to(REPO_ROOT) and parent != REPO_ROOT:
            os.chmod(parent, os.stat(parent).st_mode | 0o755)
    for root, dirs, files in os.walk(base):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(root, name), pg_user.pw_uid, pg_user.pw_gid)
    os.chown(base, pg_user.pw_uid, pg_user.pw_gid)
    os.chmod(base, 0o700)
    return _pg_user_can_use(base)


@contextlib.contextmanager
def _cluster_lock() -> Iterator[None]:
    """Serialise concurrent ensure/stop calls (e.g. two pytest runs) on this machine."""
    LOCAL_PG_DIR.parent.mkdir(parents=True, exist_ok=True)
    lock_path = LOCAL_PG_DIR.parent / "pg.lock"
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _running_port(datadir: Path) -> int | None:
    """Port of a live postmaster using ``datadir``, from postmaster.pid; None if not running."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by another user
    return port


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_dsn(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _wait_connectable(dsn: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _can_connect(dsn):
            return True
        time.sleep(0.2)
    return False


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _ensure_throwaway_cluster() -> str:
    bindir = _find_pg_bindir()
    if bindir is None:
        raise RuntimeError(
            "No Postgres server is reachable and no `initdb` was found (looked in PATH and "
            "/usr/lib/postgresql/*/bin). Run `make install` (installs Debian's postgresql "
            "package) or set EXEC_TEST_PG_DSN to the DSN of a reachable server "
            "(user with CREATEDB, e.g. postgresql://postgres@127.0.0.1:5432/postgres)."
        )
    if _is_root():
        _pg_os_user()  # fail early with a clear message

    with _cluster_lock():
        # Reuse a live throwaway cluster wherever it lives.
        for base in _candidate_pg_dirs():
            port = _running_port(base / "data")
            if port is not None:
                dsn = _cluster_dsn(port)
                if _wait_connectable(dsn, timeout=5):
                    _log(f"reusing throwaway Postgres cluster in {base} (port {port})")
                    return dsn
                _log(f"throwaway cluster in {base} is not answering; recreating it")
                _stop_cluster(bindir, base, mode="immediate")

        base = LOCAL_PG_DIR
        if not _prepare_pg_dir(base):
            fallback = _fallback_pg_dir()
            _log(f"the postgres OS user cannot use {base}; using {fallback} instead")
            base = fallback
            if not _prepare_pg_dir(base):
                raise RuntimeError(
                    f"the postgres OS user cannot write to {base}; set EXEC_TEST_PG_DSN instead"
                )
        return _init_and_start(bindir, base)


def _init_and_start(bindir: Path, base: Path) -> str:
    datadir = base / "data"
    logfile = base / "postgres.log"
    if datadir.exists():
        shutil.rmtree(datadir)

    _log(f"initdb of a throwaway Postgres cluster in {datadir} ({bindir})...")
    started = time.monotonic()
    result = _run_pg(
        [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ],
        cwd=base,
    )
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed (exit {result.returncode}):\n{result.stdout}")

    for attempt in range(1, 4):
        port = _free_port()
        _log(f"starting throwaway Postgres on 127.0.0.1:{port}...")
        result = _run_pg(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-l",
                str(logfile),
                "-w",
                "-t",
                "60",
                "-o",
                (
                    f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=200"
                ),
                "start",
            ],
            cwd=base,
        )
        dsn = _cluster_dsn(port)
        if result.returncode == 0 and _wait_connectable(dsn, timeout=15):
            _log(
                f"throwaway Postgres ready at 127.0.0.1:{port} "
                f"({time.monotonic() - started:.1f}s; stop with stop_throwaway_postgres())"
            )
            return dsn
        tail = _log_tail(logfile)
        if attempt < 3 and "in use" in tail:  # lost a port race; try another port
            _stop_cluster(bindir, base, mode="immediate")
            continue
        _stop_cluster(bindir, base, mode="immediate")
        raise RuntimeError(
            f"pg_ctl start failed (exit {result.returncode}):\n{result.stdout}\n"
            f"--- {logfile} ---\n{tail}"
        )
    raise AssertionError("unreachable")


def _stop_cluster(bindir: Path, base: Path, mode: str = "fast") -> bool:
    datadir = base / "data"
    if _running_port(datadir) is None:
        return False
    result = _run_pg(
        [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", mode, "-w", "-t", "30", "stop"],
        cwd=base,
    )
    return result.returncode == 0


def stop_throwaway_postgres(*, remove: bool = False) -> bool:
    """Stop the throwaway cluster started by :func:`ensure_postgres`, if it is running.

    Returns True if a running cluster was stopped. With ``remove=True`` its data
    directory is deleted too. Never touches a server it did not create.
    """
    bindir = _find_pg_bindir()
    stopped = False
    with _cluster_lock():
        for base in _candidate_pg_dirs():
            datadir = base / "data"
            if bindir is not None and _running_port(datadir) is not None:
                _log(f"stopping throwaway Postgres in {base}...")
                stopped = _stop_cluster(bindir, base) or stopped
            if remove and datadir.exists() and _running_port(datadir) is None:
                shutil.rmtree(datadir)
    return stopped


def _validate_db_name(name: str) -> None:
    if not _DB_NAME_RE.match(name):
        raise ValueError(
            f"invalid database name {name!r} (use [A-Za-z_][A-Za-z0-9_]*, <= 63 chars)"
        )


def _dsn_with_dbname(dsn: str, dbname: str) -> str:
    """Same server/credentials as ``dsn`` but database ``dbname`` (keeps URL form if URL)."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))
    return make_conninfo(dsn, dbname=dbname)


def create_database(admin_dsn: str, name: str, *, exist_ok: bool = False) -> str:
    """CREATE DATABASE ``name``; return its DSN. ``exist_ok`` tolerates an existing database."""
    _validate_db_name(name)
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and exist_ok:
            _log(f"database {name} already exists")
        else:
            _log(f"creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _dsn_with_dbname(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    """Terminate connections to ``name`` and DROP DATABASE IF EXISTS."""
    _validate_db_name(name)
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def apply_schema(dsn: str) -> None:
    """Create or upgrade the gateway's tables (``backend/db/migrations``), as the service does at
    start-up; idempotent."""
    from backend.execution.adapters.postgres_schema import migrate

    with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as conn:
        applied = migrate(conn)
    _log(f"database schema: {', '.join(applied) if applied else 'up to date'}")
