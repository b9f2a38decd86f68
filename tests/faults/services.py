"""A PostgreSQL cluster and a Redis server of a test's own, that the test stops and restarts.

Each cluster is a copy of one migrated template (initdb and the migrations run once per
session), started with `pg_ctl` on a free port; Redis is a `redis-server` child without
persistence, so that killing it loses everything, as a crash would. Without the binaries
the tests skip with the reason (fail under CI=true, see tests/services.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.services import in_ci

PG_BIN = Path(os.environ.get("CAMPAIGNS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = os.environ.get("CAMPAIGNS_TEST_REDIS_SERVER") or shutil.which("redis-server")
DATABASE = "campaigns"
# fsync off keeps a 2-core machine fast and loses nothing when only the server dies (the
# kernel keeps what it wrote); synchronous_commit stays on: an immediate stop must not
# lose a commit the client was told about, as it would not in production.
PG_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "
    "-c full_page_writes=off -c max_connections=100 "
    "-c deadlock_timeout=200ms -c log_lock_waits=on"
)


_INITDB = ("--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
_NO_PERSISTENCE = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


def require_binaries() -> None:
    """Skip (or fail, in CI) when initdb, pg_ctl or redis-server is missing."""
    missing = [str(PG_BIN / name) for name in ("initdb", "pg_ctl") if not (PG_BIN / name).exists()]
    if REDIS_SERVER is None:
        missing.append("redis-server")
    if not missing:
        return
    message = f"fault-injection tests need {', '.join(missing)}"
    if in_ci():
        pytest.fail(f"{message}; CI requires them", pytrace=False)
    pytest.skip(f"{message} (set CAMPAIGNS_TEST_PG_BIN, or install postgresql and redis)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres() -> dict[str, str]:
    # initdb and postgres refuse to run as root: run them as the postgres user then.
    return {"user": "postgres"} if os.geteuid() == 0 else {}


def work_dir(prefix: str) -> Path:
    """A directory the postgres user can reach (pytest's own tmp is private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres")
    return path


class PgCluster:
    """One PostgreSQL cluster: a data directory, a port, a log."""

    def __init__(self, data: Path, port: int) -> None:
        self.data = data
        self.port = port
        self.log = data.parent / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args],
            check=check,
            capture_output=True,
            timeout=60,
            **_as_postgres(),  # type: ignore[arg-type]
        )

    @classmethod
    def init(cls, root: Path) -> PgCluster:
        data = root / "data"
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", *_INITDB],
            check=True,
            capture_output=True,
            timeout=120,
            **_as_postgres(),  # type: ignore[arg-type]
        )
        return cls(data, free_port())

    def copy_to(self, root: Path) -> PgCluster:
        """A cluster of its own from this (stopped) one: same databases, another port."""
        subprocess.run(["cp", "-a", str(self.data), str(root / "data")], check=True, timeout=60)
        return PgCluster(root / "data", free_port())

    def start(self) -> None:
        self._ctl(
            "-l", str(self.log), "-w", "-t", "30", "-o", f"-p {self.port} {PG_OPTIONS}", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "-t", "30", "stop", check=False)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class RedisServer:
    """A redis-server child on a port of its own, no persistence."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), *_NO_PERSISTENCE, "--dir", str(self.root)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: whatever it held is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
