"""The database: sessions for reads and writes, the charge's sync path, migrations.

SQLite (the default) and PostgreSQL share the code above the driver; below
it they differ where they must. PostgreSQL: one async engine, row locks and
an advisory lock around migrations. SQLite: a separate read engine (readers
never queue behind the one writer), writes that take the lock up front
(``BEGIN IMMEDIATE``) and queue for it in this process instead of sleeping in
SQLite's busy handler,
``write_sync`` on the plain sqlite3 driver (inline when the lock is free, else
on one writer thread), and a file lock around migrations.
"""

from __future__ import annotations

import asyncio
import fcntl
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: replicas starting together take turns migrating.
_MIGRATION_LOCK_ID = 0x6D6F6F6E
# Alembic's `context` and `op` are process-wide proxies: two upgrades in one
# process at once would trample each other, whatever the database. Upgrades
# run on the event loop's thread (SQLAlchemy's greenlet bridge), so the guard
# is an asyncio lock, one per loop.
_UPGRADE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


class Database:
    def __init__(self, url: str, pool_size: int = 10, max_overflow: int = 20) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {
            "pool_pre_ping": True,
            "pool_size": pool_size,
            "max_overflow": max_overflow,
        }
        if self.is_sqlite:
            options = {"connect_args": {"timeout": 30}}
        self.engine = create_async_engine(url, **options)
        self._read_engine = self.engine
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)
            # Readers must not queue behind writers' BEGIN IMMEDIATE: in WAL mode a
            # plain (deferred) read transaction runs beside a writer.
            self._read_engine = create_async_engine(url, **options)
            event.listen(self._read_engine.sync_engine, "connect", _sqlite_pragmas)
        self._sync_engine: Engine | None = None
        self._inline_engine: Engine | None = None
        self._sync_thread: ThreadPoolExecutor | None = None
        if self.is_sqlite:
            # write_sync's engine: the same file through the plain sqlite3 driver,
            # used from one thread, under the same writer lock.
            sync_engine = create_engine(
                url.replace("+aiosqlite", ""),
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            event.listen(sync_engine, "connect", _sqlite_pragmas)
            event.listen(sync_engine, "begin", _sqlite_begin_immediate)
            self._sync_engine = sync_engine
            self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
            # The same, run on the event loop's own thread while no other process
            # holds the write lock: it fails at once instead of waiting for one.
            inline_engine = create_engine(url.replace("+aiosqlite", ""))
            event.listen(inline_engine, "connect", _sqlite_pragmas)
            event.listen(inline_engine, "connect", _sqlite_no_waiting)
            event.listen(inline_engine, "begin", _sqlite_begin_immediate)
            self._inline_engine = inline_engine
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._readers = async_sessionmaker(self._read_engine, expire_on_commit=False)
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits together, or not at all."""
        if not self.is_sqlite:
            async with self._sessions() as session, session.begin():
                yield session
            return
        # SQLite has one writer at a time, and a connection that finds the
        # lock taken sleeps in SQLite's busy handler (backing off up to 100 ms)
        # instead of queueing: eight concurrent writers spent most of their
        # time asleep. Writers of this process queue here instead, in order;
        # other processes still meet the busy timeout.
        loop = asyncio.get_running_loop()
        lock = self._writers.setdefault(loop, asyncio.Lock())
        async with lock, self._sessions() as session, session.begin():
            yield session

    async def write_sync(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction on a synchronous connection: the hot
        path's writes (the charges of requests that ended together).

        SQLite: through aiosqlite every statement is a hop to its thread
        (~0.6 ms each here, more when the cores are busy), so a charge cost
        ~3 ms. Here the transaction runs on the event loop's thread (a few
        hundred microseconds of SQLite work, no hop) unless another process
        holds the write lock; then it waits its turn on a writer thread.
        ``work`` may therefore run twice, the first attempt rolled back.
        PostgreSQL: the same function runs on the async connection."""
        if self._sync_engine is None or self._inline_engine is None:
            async with self.engine.begin() as connection:
                return await connection.run_sync(work)
        sync, inline, thread = self._sync_engine, self._inline_engine, self._sync_thread

        def transaction(engine: Engine) -> T:
            with engine.begin() as connection:
                return work(connection)

        loop = asyncio.get_running_loop()
        async with self._writers.setdefault(loop, asyncio.Lock()):
            try:
                return transaction(inline)
            except OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            return await loop.run_in_executor(thread, transaction, sync)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only (API-key lookups, reports): never waits on writers."""
        async with self._readers() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with self.read() as session:
            await session.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Bring the schema to head; safe when several processes start at once."""
        path = _sqlite_path(self.url) if self.is_sqlite else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        lock = _UPGRADE_LOCKS.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock, _sqlite_file_lock(path), self.engine.begin() as connection:
            if not self.is_sqlite:
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
            await connection.run_sync(_upgrade_to_head)

    async def dispose(self) -> None:
        if self._sync_engine is not None and self._sync_thread is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._sync_thread, self._sync_engine.dispose)
            self._sync_thread.shutdown(wait=False)
        if self._inline_engine is not None:
            self._inline_engine.dispose()
        await self.engine.dispose()
        if self._read_engine is not self.engine:
            await self._read_engine.dispose()


def _upgrade_to_head(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@asynccontextmanager
async def _sqlite_file_lock(sqlite_path: Path | None) -> AsyncIterator[None]:
    """Serialise SQLite migrations across processes (PostgreSQL uses an advisory lock)."""
    if sqlite_path is None:
        yield
        return
    lock_file = sqlite_path.with_name(sqlite_path.name + ".migrate-lock")
    with open(lock_file, "w") as handle:  # noqa: ASYNC230 - creating a lock file does not block
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a killed
    # process loses nothing committed and the file is never corrupted; a power
    # loss may roll back the last commits, each one whole (a charge with its
    # usage record, a batch line with its result). FULL cost ~10 ms a commit
    # here and capped batches at 30 lines/s. PostgreSQL is the store for those
    # who need every commit on disk before the reply.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_no_waiting(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    """Take SQLite's write lock when a transaction starts, not at its first write.

    A deferred transaction that reads a balance and then writes it could fail
    to upgrade its lock under concurrency (SQLITE_BUSY at once, no waiting);
    an immediate one waits its turn (busy_timeout), so read-modify-write
    sequences never interleave.
    """
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_path(url: str) -> Path | None:
    _, _, rest = url.partition(":///")
    return Path(rest) if rest and rest != ":memory:" else None


def unreachable(exc: BaseException) -> bool:
    """The database could not take a statement (down, locked, a dropped
    connection, a full pool): worth retrying. Any other error is the
    statement's own fault, and retrying it would fail the same way."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc, OperationalError | InterfaceError | PoolTimeoutError | OSError | TimeoutError
    )
