"""Which code sees a request id bound with structlog.contextvars: tasks created after the
bind do, a task created before it does not; asyncio.to_thread carries it into a thread,
loop.run_in_executor does not (and a pool thread can keep another request's id).

Run: python snippets/operations/logs_context_copy.py
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, merge_contextvars
from structlog.processors import JSONRenderer, add_log_level

FILE = StringIO()  # stands for stdout
log = structlog.wrap_logger(
    structlog.PrintLogger(FILE), processors=[merge_contextvars, add_log_level, JSONRenderer()]
)


# --8<-- [start:where]
def blocking_work(where: str) -> None:
    """Runs in a thread: whatever context that thread has is what the line gets."""
    log.info(where)


def leaky_job() -> None:
    """A job that binds in a pool thread without a copied context: the binding stays."""
    bind_contextvars(request_id="req-0")


async def background_worker(jobs: asyncio.Queue) -> None:
    """Started once, at start-up: its context is the start-up's, with no request in it."""
    while (job := await jobs.get()) is not None:
        log.info("worker: job done, id not passed")
        with bound_contextvars(request_id=job["request_id"]):  # the id came in the message
            log.info("worker: job done, id taken from the job")


async def handle_request(jobs: asyncio.Queue, early: asyncio.Event) -> None:
    early_task = asyncio.create_task(wait_and_log(early, "task created before the bind"))
    bind_contextvars(request_id="req-1")  # in this task's context only
    log.info("handler, after the bind")
    await asyncio.create_task(child_that_binds())  # a copy of our context, taken now
    log.info("handler, after its child bound step=audit")
    early.set()
    await early_task
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as pool:  # one thread: which one runs is certain
        await loop.run_in_executor(pool, blocking_work, "loop.run_in_executor")
        await loop.run_in_executor(pool, leaky_job)  # another request's job, on that thread
        await loop.run_in_executor(pool, blocking_work, "loop.run_in_executor, after leaky_job")
        context = contextvars.copy_context()  # what asyncio.to_thread does for us
        await loop.run_in_executor(pool, context.run, blocking_work, "run_in_executor(ctx.run)")
    await asyncio.to_thread(blocking_work, "asyncio.to_thread")
    await jobs.put({"request_id": "req-1"})


async def child_that_binds() -> None:
    bind_contextvars(step="audit")  # changes the child's copy, not the handler's context
    log.info("child task, created after the bind")


async def wait_and_log(event: asyncio.Event, where: str) -> None:
    await event.wait()  # runs after the bind, but its context was copied before it
    log.info(where)


async def main_async() -> None:
    jobs: asyncio.Queue = asyncio.Queue()
    worker = asyncio.create_task(background_worker(jobs))  # at start-up, before any request
    await asyncio.create_task(handle_request(jobs, asyncio.Event()))
    await jobs.put(None)
    await asyncio.wait_for(worker, 2)


# --8<-- [end:where]


def lines() -> list[dict]:
    """Run it all once; the JSON lines it logged, parsed."""
    FILE.seek(0)
    FILE.truncate()
    asyncio.run(main_async())
    return [json.loads(line) for line in FILE.getvalue().splitlines()]


def main() -> None:
    print(f"{'where the line was logged':<46}{'request_id':<12}step")
    for line in lines():
        print(f"{line['event']:<46}{line.get('request_id', '-'):<12}{line.get('step', '-')}")


if __name__ == "__main__":
    main()
