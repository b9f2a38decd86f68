"""Group commit: concurrent webhook requests share one database write and one Redis trip.

A request `submit`s its item and waits. A flusher takes everything waiting (up to
`max_rows`), lets up to `max_wait` seconds pass for more while the batch is small, and
writes the batch with one call of `flush`; every request of the batch then gets its own
result. Batches form by themselves under load: whatever arrives while one batch is being
written makes the next one. A batch that fails fails its own requests, and only them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# flush(items) -> one result per item, in order; an item's result may be an exception,
# which fails that request alone (a batch writes to several tables).
Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


class GroupCommit(Generic[T, R]):
    """Batches submitted items; `start` and `stop` it with the application."""

    def __init__(
        self,
        flush: Flush[T, R],
        *,
        max_rows: int = 256,
        max_wait: float = 0.002,
        concurrency: int = 4,
        name: str = "batch",
        quiet: float = 0.0005,
    ) -> None:
        if max_rows < 1 or max_wait < 0 or concurrency < 1 or quiet <= 0:
            raise ValueError(
                "max_rows, concurrency and quiet must be positive, max_wait not negative"
            )
        self._flush = flush
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.quiet = quiet
        self.name = name
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        # Batches written at once. A batch's time is mostly waiting (a commit's fsync,
        # round trips), not CPU: while some are written, the next ones fill. Measured on the
        # 2-core machine, 4 gave more requests/s than 1, with smaller batches.
        self._slots = asyncio.Semaphore(concurrency)
        self._writing: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self.batches = 0  # batches written, for tests and benchmarks
        self.items = 0
        self.writing_seconds = 0.0  # spent writing batches, summed
        self.largest = 0

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def start(self) -> None:
        if not self.running:
            self._runner = asyncio.create_task(self._run(), name=f"group-commit:{self.name}")
            self._runner.add_done_callback(self._ended)

    def _ended(self, runner: asyncio.Task[None]) -> None:
        # Should the flusher ever die of a bug, its waiting requests must not hang: they
        # fail (a 503, Vonage retries) and later requests are written one by one.
        if runner.cancelled() or runner.exception() is None:
            return
        log.error("%s: the flusher stopped", self.name, exc_info=runner.exception())
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:
            if not future.done():
                future.set_exception(RuntimeError(f"{self.name}: flusher stopped"))

    async def stop(self) -> None:
        """Write what is waiting, wait for the batches being written, then end."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            # A flusher that died of a bug was logged by _ended.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        while self._waiting:
            await self._write(self._take())
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)

    async def submit(self, item: T) -> R:
        """Wait until the item's batch is written; its result, or its batch's exception."""
        if not self.running:
            # Not started (a process without the app's lifecycle): a batch of one.
            return await self._single(item)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._wake.set()
        return await future

    async def _single(self, item: T) -> R:
        (result,) = await self._flush([item])
        if isinstance(result, BaseException):
            raise result
        return result

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch, self._waiting = self._waiting[: self.max_rows], self._waiting[self.max_rows :]
        if not self._waiting:
            self._wake.clear()
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            await self._slots.acquire()
            # While the batch is small and requests keep coming, let them join: up to
            # `max_wait`, as long as each pause of `quiet` brought one more. A pause that
            # brought nobody ends the wait (a closed loop of clients is all here).
            deadline = loop.time() + self.max_wait
            count = -1
            while count != len(self._waiting) < self.max_rows:
                left = deadline - loop.time()
                if left <= 0:
                    break
                count = len(self._waiting)
                await asyncio.sleep(min(self.quiet, left))
            batch = self._take()
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._write_in_slot(batch))
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)

    async def _write_in_slot(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            await self._write(batch)
        finally:
            self._slots.release()

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        self.largest = max(self.largest, len(batch))
        began = time.perf_counter()
        try:
            results: Sequence[R | BaseException] = await self._flush([i for i, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
        except Exception as exc:  # the whole batch failed: each of its requests learns it
            log.warning("%s: a batch of %d failed: %r", self.name, len(batch), exc)
            results = [exc] * len(batch)
        self.writing_seconds += time.perf_counter() - began
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its request was cancelled (client gone)
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
