"""After-ack work: what a listener does once Slack has its acknowledgement, on a thread of its own.

Slack shows the person an error if an interaction is not acknowledged within 3 seconds, so the
serving event loop (uvicorn's, which also carries Socket Mode) should only read, verify, parse,
route and ack. Everything after that — database reads and writes, Web API calls
(``chat.postEphemeral``, ``views.open``, ``views.publish``, ``conversations.members``) and
``response_url`` answers — is handed to :class:`AfterAck`, which runs it on its own event loop
in its own thread:

- a burst of after-ack work cannot queue in front of new requests. asyncio runs ready callbacks
  first come, first served, so on one loop a hundred pending Web API calls would delay the next
  ack by all of their callbacks; across two threads the serving loop only waits for the GIL,
  which Python hands over at least every few milliseconds;
- Web API and ``response_url`` calls share one pooled aiohttp session: without one, slack_sdk
  opens a new session and a new TCP (and, against Slack, TLS) connection for every call;
- lookups by key run on that loop (:meth:`AfterAck.read`); writes and the reads that grow with
  the fleet run on a small executor of its own, so the after-ack work never takes every thread
  of the serving loop's default executor, and the connection pool is not asked for more
  connections than it keeps;
- the queue is bounded. With ``max_pending`` jobs waiting, a listener waits for room before it
  returns its ack: an overload shows as slower acks (which Slack reports) instead of unbounded
  memory and work that runs after its ``trigger_id`` (valid 3 s) has expired.

The thread starts on first use (or :meth:`start`); :meth:`aclose` / :meth:`close` let queued
work finish for a few seconds, then cancel the rest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

Job = Callable[[], Awaitable[None]]
"""Called on the after-ack loop; it creates and awaits the coroutine there."""


class Slots:
    """A counting semaphore that threads release and event loops wait on, first come first served.

    asyncio's own semaphore belongs to one loop, and a threading one would block the loop; and
    under overload the waiters must be served in order, or an unlucky ack waits many turns.
    """

    def __init__(self, count: int) -> None:
        self._free = count
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def acquire(self) -> None:
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock, contextlib.suppress(ValueError):  # already handed a slot: _hand_over passes it on
                self._waiters.remove((loop, waiter))
            raise

    def release(self) -> None:
        """Give the slot to the longest waiter (on its own loop), or back to the pool. Any thread."""
        with self._lock:
            if not self._waiters:
                self._free += 1
                return
            loop, waiter = self._waiters.popleft()
        try:
            loop.call_soon_threadsafe(self._hand_over, waiter)
        except RuntimeError:  # that loop has closed: the waiter is gone, pass the slot on
            self.release()

    def _hand_over(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # cancelled while the slot was on its way
            self.release()
        else:
            waiter.set_result(None)


class AfterAck:
    """A thread with its own event loop, Web API client, ``response_url`` sender and DB executor."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        max_pending: int = 256,
        db_threads: int = 2,
        drain_seconds: float = 5.0,
    ) -> None:
        self._token = token
        self._base_url = base_url
        self._drain_seconds = drain_seconds
        self._slots = Slots(max_pending)
        self._lock = threading.Lock()
        self._db = concurrent.futures.ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="slack-after-db")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._inbox: list[Job] = []
        self._woken = False  # a _take_inbox call is already scheduled on the loop
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> asyncio.AbstractEventLoop:
        """Start the thread (once) and return its loop; the pooled session exists when this returns."""
        with self._lock:
            if self._closed:
                raise RuntimeError("after-ack worker is closed")
            if self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run_loop, args=(loop,), name="slack-after-ack", daemon=True)
            self._thread.start()
            asyncio.run_coroutine_threadsafe(self._open(), loop).result(timeout=10)
            self._loop = loop
            return loop

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _open(self) -> None:
        # keep-alive connections to Slack; force_close=False is aiohttp's default, stated for the reader
        connector = aiohttp.TCPConnector(limit=64, force_close=False)
        self._session = aiohttp.ClientSession(connector=connector)
        self._client = AsyncWebClient(token=self._token, base_url=self._base_url, session=self._session)

    def close(self, timeout: float | None = None) -> None:
        """Let queued work finish for ``timeout`` seconds (default ``drain_seconds``), cancel the rest, stop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        wait = self._drain_seconds if timeout is None else timeout
        if loop is not None and thread is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(wait), loop).result(timeout=wait + 10)
            except Exception:
                log.warning("after-ack worker did not shut down cleanly", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        self._db.shutdown(wait=False, cancel_futures=True)

    async def aclose(self, timeout: float | None = None) -> None:
        """:meth:`close` without blocking the calling event loop (for the ASGI lifespan)."""
        await asyncio.to_thread(self.close, timeout)

    async def _shutdown(self, timeout: float) -> None:
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                log.warning("%d after-ack job(s) cancelled at shutdown", len(late))
                await asyncio.wait(late, timeout=1)
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------ handing work over
    async def submit(self, job: Job) -> None:
        """Hand ``job`` to the after-ack loop. Returns at once unless ``max_pending`` jobs are queued."""
        await self._slots.acquire()  # waits only under overload: the ack waits for room (backpressure)
        try:
            loop = self.start()
            with self._lock:
                self._inbox.append(job)
                wake, self._woken = not self._woken, True
            if wake:
                loop.call_soon_threadsafe(self._take_inbox)
        except BaseException:
            self._slots.release()
            raise

    def _take_inbox(self) -> None:
        """On the after-ack loop: start a task for every job handed over since the last wake-up.

        Jobs are handed over through a list rather than one ``call_soon_threadsafe`` each: a
        wake-up writes to the loop's self-pipe, a system call after which the serving thread
        must win the GIL back from a busy worker, so under load one wake-up serves many jobs.
        """
        with self._lock:
            jobs = list(self._inbox)
            self._inbox.clear()
            self._woken = False
        for job in jobs:
            task = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed job is logged; it never stops the worker
            log.exception("after-ack work failed")
        finally:
            self._slots.release()

    # ------------------------------------------------------------------ tools for jobs (on the after-ack loop)
    @property
    def client(self) -> AsyncWebClient:
        """The Web API client with the bot token and the pooled session. Only for use inside a job."""
        if self._client is None:
            raise RuntimeError("the after-ack worker has not started")
        return self._client

    async def respond(self, response_url: str, message: dict[str, Any]) -> None:
        """POST ``message`` to a slash command's ``response_url`` over the pooled session.

        Raises on a non-2xx answer (an expired or used-up URL), where Bolt's ``respond()`` would
        return it unnoticed, so the caller can log that the person got no answer.
        """
        sender = AsyncWebhookClient(url=response_url, session=self._session)
        answer = await sender.send_dict(message)
        if answer.status_code >= 300:
            raise RuntimeError(f"response_url answered {answer.status_code}: {answer.body[:200]}")

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a short database read here, on the after-ack loop: a lookup by key (the incident a
        button names, its channel, the room's incident, the active silences), whose size does not
        grow with the fleet. A read never waits on a lock (SQLite's WAL readers, PostgreSQL's
        MVCC) and takes a fraction of a millisecond, less than the two thread hand-offs of
        :meth:`db` (bench/RESULTS.md, *Session 11*). It holds up the other jobs' Web API calls
        for that long, never an ack; in a database outage, until the call's deadline, when every
        job's database calls would wait anyway. Reads that grow with the fleet or its history
        (``/alerts``, ``/slo status``, the Home tab, an incident's alerts or timeline, which a
        storm fills with thousands, a chart, the weekly review) and every write go to :meth:`db`,
        so they never hold up the others."""
        return fn(*args, **kwargs)

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking database call on the after-ack DB executor: a write, which may wait for
        the lock, or a read that grows with the fleet."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, functools.partial(fn, *args, **kwargs))
