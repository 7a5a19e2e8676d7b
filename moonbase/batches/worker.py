"""The batch worker: claims a batch, validates it, runs its lines, writes its results.

Exactly once: a line is generated uncharged (``ChatService.run_batch_line``),
then charged in a group commit (``BillingService.settle_many``) in which its
result is written first, and only while the line is still pending. A crash
before that commit leaves the line pending and uncharged, so it runs again;
after it, the line is done and never runs again. Workers hold a batch through
a lapsing claim (``SKIP LOCKED`` on PostgreSQL), renewed as they go; a dead
worker's batch is taken over when its claim lapses. A worker runs a batch for
a turn (``turn_s``), then the batch of the account it served least recently.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from moonbase.auth.caller import KeyOwner
from moonbase.auth.key_policy import OPEN, policy_of
from moonbase.batches.validation import check_input
from moonbase.billing.service import BillingService, Settlement
from moonbase.chat.service import BatchRun, ChatService
from moonbase.errors import InternalError, MoonbaseError, QuotaExceededError, TryAgainLaterError
from moonbase.files.service import FileService
from moonbase.schemas.chat import ChatCompletionRequest
from moonbase.settings import DEFAULT_MAX_REQUEST_BYTES, BatchSettings
from moonbase.store.database import Database, unreachable
from moonbase.store.repositories import api_keys, projects
from moonbase.store.repositories import batches as batch_rows
from moonbase.store.tables import Batch, BatchLine

log = logging.getLogger(__name__)

LINES_PER_PAGE = 256
WATCH_INTERVAL_S = 0.5
COMMIT_GROUP = 64
RESULTS_PER_PAGE = 1000  # finished lines charged in one transaction, at most
RETRY_LATER_S = 1.0  # after a rate limit or a full engine queue
FAILED_STEP_HOLD_S = 30.0  # a batch whose step raised waits this long before a retry


class BatchWorker:
    def __init__(
        self,
        db: Database,
        files: FileService,
        chat: ChatService,
        billing: BillingService,
        settings: BatchSettings,
        max_line_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.db = db
        self.files = files
        self.chat = chat
        self.billing = billing
        self.settings = settings
        self.max_line_bytes = max_line_bytes  # a line is capped like an online body
        self.name = f"{socket.gethostname()}-{secrets.token_hex(4)}"

    async def run(self) -> None:
        """Work until cancelled."""
        while True:
            try:
                worked = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad batch must not stop the worker
                log.exception("batch worker step failed")
                worked = False
            if not worked:
                await asyncio.sleep(self.settings.poll_interval_s)

    async def step(self) -> bool:
        """Claim one batch and move it as far as possible; False if there was none."""
        async with self.db.transaction() as session:
            batch = await batch_rows.claim(
                session, self.name, time.time(), self.settings.claim_seconds
            )
            batch_id = batch.id if batch is not None else None
        if batch_id is None:
            return False
        try:
            await self._advance(batch_id, time.monotonic() + self.settings.turn_s)
        except Exception:
            # Keep the claim for a while instead of releasing it: the oldest
            # batch is claimed first, so a batch that fails at once would be
            # taken again at every poll, ahead of every other account's.
            log.exception("batch %s failed a step; retried in %s s", batch_id, FAILED_STEP_HOLD_S)
            await self._hold(batch_id, FAILED_STEP_HOLD_S)
            return True
        await self._release(batch_id)
        return True

    async def _advance(self, batch_id: str, turn_ends: float) -> None:
        """Move the batch on until it ends or its turn does (at least a few
        lines a turn, so every turn makes progress)."""
        while True:
            batch = await self._load(batch_id)
            now = int(time.time())
            if batch.status in ("validating", "in_progress") and now >= batch.expires_at:
                await self._finish(batch, "expired")
            elif batch.status == "validating":
                await self._validate(batch)
                continue
            elif batch.status == "in_progress":
                if await self._run_round(batch, turn_ends):
                    if time.monotonic() >= turn_ends:
                        return  # lines are left: another account's batch is next
                    continue
                await self._finish(batch, "completed")
            elif batch.status == "finalizing":
                await self._finish(batch, "completed")
            elif batch.status == "cancelling":
                await self._finish(batch, "cancelled")
            return

    async def _load(self, batch_id: str) -> Batch:
        async with self.db.read() as session:
            batch = await session.get(Batch, batch_id)
        assert batch is not None
        return batch

    async def _release(self, batch_id: str) -> None:
        async with self.db.transaction() as session:
            batch = await batch_rows.lock(session, batch_id)
            if batch is not None and batch.claimed_by == self.name:
                batch.claimed_by = None
                batch.claim_until = None
                batch.served_at = time.time()

    async def _hold(self, batch_id: str, seconds: float) -> None:
        async with self.db.transaction() as session:
            batch = await batch_rows.lock(session, batch_id)
            if batch is not None and batch.claimed_by == self.name:
                batch.claim_until = time.time() + seconds
                batch.served_at = time.time()

    async def _renew(self, batch_id: str) -> None:
        async with self.db.transaction() as session:
            batch = await batch_rows.lock(session, batch_id)
            if batch is not None:
                batch.claim_until = time.time() + self.settings.claim_seconds

    # -- validating ---------------------------------------------------------

    async def _validate(self, batch: Batch) -> None:
        # The input file is the batch's project's (checked when it was created).
        stored = await self.files.get(
            batch.account_id, batch.input_file_id, project_id=_project_of(batch)
        )
        checked = await check_input(
            batch,
            self.files.blob_stream(stored),
            self.chat,
            self.settings.max_lines,
            self.max_line_bytes,
        )
        async with self.db.transaction() as session:
            locked = await batch_rows.lock(session, batch.id)
            assert locked is not None
            if locked.status != "validating":  # cancelled meanwhile
                return
            now = int(time.time())
            if checked.errors:
                locked.status, locked.failed_at = "failed", now
                locked.errors_json = json.dumps(checked.errors, ensure_ascii=False)
                return
            await batch_rows.replace_lines(session, batch.id, checked.lines)
            locked.status, locked.in_progress_at = "in_progress", now
            locked.total, locked.model = len(checked.lines), checked.model

    # -- in_progress --------------------------------------------------------

    async def _run_round(self, batch: Batch, turn_ends: float) -> bool:
        """One pass over the pending lines, or as many as the turn allows
        (the lines queued when it ends still run); False when none were left.

        A pipeline, not rounds: ``concurrency`` runners take lines from a
        short queue refilled page by page, so the engine never idles waiting
        for the slowest line of a round; a committer charges finished lines in
        groups, each with its result, one transaction per group (a commit
        costs milliseconds through the async driver; a line, a share of one).
        A watcher renews the claim and, on a cancel or the window's end, stops
        the runners from starting more lines (lines in flight finish)."""
        lines: asyncio.Queue[BatchLine | None] = asyncio.Queue(self.settings.concurrency * 2)
        finished: asyncio.Queue[_Finished | None] = asyncio.Queue()

        stop = asyncio.Event()  # cancelled or past its window: run no more lines
        # The balance is checked here, twice a second, not per line: an account
        # that runs dry overspends by at most the lines in flight meanwhile.
        unfunded: list[QuotaExceededError] = []

        caller = await self._caller(batch)

        async def check_funds() -> None:
            try:
                await self.billing.ensure_funded(batch.account_id)
                if caller.project_id is not None:  # and the key's project within its budgets
                    await self.billing.budgets.check(caller.project_id)
                unfunded.clear()
            except QuotaExceededError as error:
                unfunded[:] = [error]

        async def runner() -> None:
            while (line := await lines.get()) is not None:
                if not stop.is_set():
                    await self._run_line(batch, caller, line, finished, unfunded)

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(WATCH_INTERVAL_S)
                await self._renew(batch.id)
                await check_funds()
                current = await self._load(batch.id)
                if current.status != "in_progress" or time.time() >= current.expires_at:
                    stop.set()

        await check_funds()

        runners = [asyncio.create_task(runner()) for _ in range(self.settings.concurrency)]
        committer = asyncio.create_task(self._commit(finished))
        watcher = asyncio.create_task(watch())
        fed, after = 0, 0
        try:
            while not stop.is_set() and (not fed or time.monotonic() < turn_ends):
                async with self.db.read() as session:
                    page = await batch_rows.pending(session, batch.id, LINES_PER_PAGE, after)
                if not page:
                    break
                for line in page:
                    await lines.put(line)
                    fed, after = fed + 1, line.line
                    if time.monotonic() >= turn_ends:
                        break
        finally:
            for _ in runners:
                await lines.put(None)
            try:
                await asyncio.gather(*runners)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                await finished.put(None)
                await committer
        return fed > 0

    async def _caller(self, batch: Batch) -> KeyOwner:
        """The key that created the batch, in the batch's project, with their
        policies: its lines may use only the models both the key and the
        project allow (their allowlists hold in batches too), read once per round."""
        policy, project_id = OPEN, _project_of(batch)
        async with self.db.read() as session:
            key = await api_keys.get(session, batch.api_key_id) if batch.api_key_id else None
            project = await projects.get(session, project_id)
        if key is not None:
            policy = policy_of(None, None, None, key.allowed_models)
        return KeyOwner(
            batch.api_key_id or "", batch.account_id, policy, project_id, projects.policy(project)
        )

    async def _run_line(
        self,
        batch: Batch,
        caller: KeyOwner,
        line: BatchLine,
        finished: asyncio.Queue[_Finished | None],
        unfunded: list[QuotaExceededError],
    ) -> None:
        request_id = f"batch-{batch.id}-{line.line}-{secrets.token_hex(4)}"
        try:
            if unfunded:
                raise unfunded[0]
            request = ChatCompletionRequest.model_validate_json(line.body_json)
            caller.check_model(request.model)
            request = request.model_copy(update={"stream": False, "stream_options": None})
            chat = await self.chat.prepare(
                request, request_id, batch.account_id, project_id=caller.project_id
            )
            run = await self.chat.run_batch_line(chat, caller)
        except TryAgainLaterError:
            await asyncio.sleep(RETRY_LATER_S)  # the line stays pending: next pass
            return
        except MoonbaseError as error:  # refused before generating: nothing to charge
            result = _result_line(request_id, line.custom_id, error.status_code, error.body())
            await self.db.write_sync(
                lambda connection: batch_rows.finish_line(
                    connection, line.id, batch.id, False, result
                )
            )
            return
        if run.completion is not None:
            body = run.completion.model_dump(exclude_none=True)
            status = 200
        else:
            failure = run.error or MoonbaseError("the engine failed mid-generation")
            body, status = failure.body(), failure.status_code
        result = _result_line(request_id, line.custom_id, status, body)
        ok = run.completion is not None
        await finished.put(_Finished(batch.id, line.id, line.custom_id, run, ok, result))

    async def _commit(self, finished: asyncio.Queue[_Finished | None]) -> None:
        """Charge finished lines in groups, each with its result, until told to stop."""
        done = False
        while not done:
            first = await finished.get()
            group = [first] if first is not None else []
            done = first is None
            while not done and len(group) < COMMIT_GROUP and not finished.empty():
                item = finished.get_nowait()
                done = item is None
                if item is not None:
                    group.append(item)
            if group:
                await self._charge(group)

    async def _charge(self, group: list[_Finished]) -> None:
        """Charge a group of lines; if the database refuses it, each line alone, so
        a line it cannot take fails by itself (uncharged) and the rest commit."""
        try:
            await self.billing.settle_many([item.settlement() for item in group])
            return
        except Exception as exc:
            if unreachable(exc):
                raise  # the batch is retried once the database is back
        for item in group:
            try:
                await self.billing.settle_many([item.settlement()])
            except Exception as exc:
                if unreachable(exc):
                    raise
                log.error("batch line %s refused by the database: %s", item.line_id, exc)
                failure = InternalError("the result of this request could not be stored")
                result = _result_line(
                    item.run.ticket.request_id, item.custom_id, failure.status_code, failure.body()
                )
                await self._fail_line(item.line_id, item.batch_id, result)

    async def _fail_line(self, line_id: int, batch_id: str, result: str) -> None:
        await self.db.write_sync(
            lambda connection: batch_rows.finish_line(connection, line_id, batch_id, False, result)
        )

    # -- results ------------------------------------------------------------

    async def _finish(self, batch: Batch, final: str) -> None:
        """Write the output and error files, then the final state (idempotent)."""
        if final == "completed" and batch.status != "finalizing":
            async with self.db.transaction() as session:
                locked = await batch_rows.lock(session, batch.id)
                assert locked is not None
                locked.status, locked.finalizing_at = "finalizing", int(time.time())
        output_id = batch.output_file_id or await self._write(batch, "done", "output")
        error_id = batch.error_file_id or await self._write(batch, "failed", "errors")
        async with self.db.transaction() as session:
            locked = await batch_rows.lock(session, batch.id)
            assert locked is not None
            locked.output_file_id, locked.error_file_id = output_id, error_id
            locked.status = final
            setattr(locked, f"{final}_at", int(time.time()))

    async def _write(self, batch: Batch, status: str, kind: str) -> str | None:
        """The results of lines in ``status`` as a file, read page by page (a
        50,000-line batch never sits in memory); None when there are none."""
        digest, size, after = hashlib.sha256(), 0, 0
        with tempfile.NamedTemporaryFile(
            "wb", suffix=".jsonl", dir=self.files.blobs.spool_dir, delete=False
        ) as handle:
            while True:
                async with self.db.read() as session:
                    page = await batch_rows.results(
                        session, batch.id, status, after, RESULTS_PER_PAGE
                    )
                if not page:
                    break
                chunk = "".join(result + "\n" for _, result in page).encode()
                digest.update(chunk)
                size += len(chunk)
                await asyncio.to_thread(handle.write, chunk)
                after = page[-1][0]
        path = Path(handle.name)
        if not size:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            return None
        stored = await self.files.store_generated(  # the batch's project's, like its input
            batch.account_id,
            f"{batch.id}_{kind}.jsonl",
            path,
            size,
            digest.hexdigest(),
            project_id=_project_of(batch),
        )
        return stored.id


@dataclass(frozen=True)
class _Finished:
    batch_id: str
    line_id: int
    custom_id: str
    run: BatchRun
    ok: bool
    result: str

    def settlement(self) -> Settlement:
        def keep(connection: Connection) -> bool:
            # False when the line already has a result: then it is not charged.
            return batch_rows.finish_line(
                connection, self.line_id, self.batch_id, self.ok, self.result
            )

        return Settlement(self.run.ticket, self.run.usage, batch=True, keep=keep)


def _project_of(batch: Batch) -> str:
    """The batch's project (a batch written without one: the account's default)."""
    return projects.owning(batch.account_id, batch.project_id)


def _result_line(request_id: str, custom_id: str, status: int, body: dict[str, Any]) -> str:
    return json.dumps(
        {
            "id": f"batch_req_{secrets.token_hex(12)}",
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": request_id, "body": body},
            "error": None,
        },
        ensure_ascii=False,
    )
