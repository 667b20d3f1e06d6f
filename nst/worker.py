"""The RQ worker (``python -m nst.worker``): run style-transfer jobs from the Redis queue
(``NST_QUEUE``).

One process runs one job at a time with RQ's ``SimpleWorker`` (no fork per job), so the network
built for the first job stays loaded for the next. Run one per GPU (``CUDA_VISIBLE_DEVICES=0``,
``=1``, ...) or several on a CPU machine. The worker:

- claims a job (QUEUED to RUNNING) unless it was cancelled or its page stopped polling;
- runs the runner of the job's kind (``nst.jobs.backend.register_kind``) with a
  ``CancelToken`` that a heartbeat thread sets when the page asks to stop, stops polling, or
  Redis is unreachable for ``WORKER_TTL`` s; the engine checks it every step and ends with the
  best image so far;
- publishes progress and history about twice a second and the preview (PNG) at most once a
  second, with an expiry, then the result;
- keeps a clip's frames in Redis as each one finishes (``:frames``, PNG, with the job's
  expiry);
- refreshes ``nst:job:<id>:alive`` every second: if the process dies, the key expires and the
  page reports the job FAILED with its last preview, or a clip's kept frames as a shorter clip
  (jobs are not requeued).

SIGTERM or Ctrl-C stops the running job cooperatively (its picture is kept) and then exits.
When Redis goes away the worker waits for it and carries on, with the model still loaded.

A job that no longer responds to its cancel (a hung run) is ended with RQ's stop command,
``python -m nst.worker --stop-job <id>``: a ``SimpleWorker`` runs the job in its own process,
so the worker marks the job FAILED (its last published preview stays the picture so far) and
exits with status 3, for its supervisor to start a fresh one.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

import redis
import redis.exceptions
from rq import Queue, SimpleWorker
from rq.job import get_current_job
from rq.serializers import JSONSerializer

from nst.config import warm_up_enabled
from nst.jobs import queue_url
from nst.jobs.backend import (
    JobProgress,
    JobState,
    encode_png,
    follow_run,
    job_kind,
)
from nst.jobs.redis import (
    JOB_TTL,
    QUEUE_NAME,
    WORKER_TTL,
    all_keys,
    connect,
    describe,
    fail,
    finished_ttl,
    kept_frames,
    key,
)
from nst.records import CancelToken, Result
from nst.support import exit_if_unsupported

logger = logging.getLogger("nst.worker")

HEARTBEAT_SECONDS = 1.0  # how often the worker says it is alive and looks for a cancel
PUBLISH_SECONDS = 0.5  # progress and history at most this often
PREVIEW_SECONDS = 1.0  # a preview at most this often (the first and the last always)
RECONNECT_SECONDS = 5.0
EXIT_JOB_STOPPED = 3  # the process ended to stop a hung job (RQ's stop-job command)
STOPPED_BY_OPERATOR = (
    "This job stopped responding and was ended on its worker; the picture so far is kept."
)

_running: dict[str, CancelToken] = {}  # the job this process runs, for a cooperative SIGTERM


class StudioWorker(SimpleWorker):
    """RQ's in-process worker; a stop request also cancels the running job within a step."""

    stop_requested = False

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stop_requested = True
        for token in list(_running.values()):
            token.cancel()
        super().request_stop(signum, frame)

    def kill_horse(self, sig: Any = None) -> None:
        """RQ's stop-job command. The job runs in this very process (no work horse), so the
        process ends: the job is marked FAILED first, and the worker leaves RQ's registry."""
        job_id = self.get_current_job_id()
        if job_id is None:
            return
        logger.warning("Job %s: stop command received; ending this worker process.", job_id)
        with contextlib.suppress(redis.exceptions.RedisError):
            pipe = self.connection.pipeline()
            fail(
                pipe, job_id, STOPPED_BY_OPERATOR, keep_request=kept_frames(self.connection, job_id)
            )
            pipe.execute()
        with contextlib.suppress(Exception):
            self.register_death()
        logging.shutdown()
        os._exit(EXIT_JOB_STOPPED)


def run_job(job_id: str) -> str:
    """The RQ job function: run the studio job ``job_id`` and record how it ended."""
    rq_job = get_current_job()
    if rq_job is None:
        raise RuntimeError("run_job runs inside an RQ worker.")
    return JobRun(rq_job.connection, job_id).run()


class JobRun:
    """One job on this worker: claim, heartbeat, stream, finish."""

    def __init__(self, connection: redis.Redis, job_id: str) -> None:
        self.connection = connection
        self.job_id = job_id
        self.token = CancelToken()
        self.rows: list[str] = []  # history rows not yet published
        self.progress: JobProgress | None = None
        self.preview: Any = None  # the latest preview array, published or not
        self.preview_step = 0
        self.preview_published = True
        self.last_publish = 0.0
        self.last_preview = 0.0
        self.stop_heartbeat = threading.Event()

    def run(self) -> str:
        claimed = self.claim()
        if claimed is not JobState.RUNNING:
            return claimed.value if claimed else "gone"
        _running[self.job_id] = self.token
        heartbeat = threading.Thread(target=self.heartbeat, name="nst-heartbeat", daemon=True)
        heartbeat.start()
        state: JobState = JobState.FAILED
        error: str | None = None
        result: Result | None = None

        def start() -> Any:
            fields = self.connection.hgetall(key(self.job_id, "request"))
            blobs = {name.decode(): value for name, value in fields.items()}
            kind = job_kind(self.connection.hget(key(self.job_id), "kind").decode())
            request = kind.decode_request(json.loads(blobs.pop("meta")), blobs)
            return kind.runner(request, self.token)

        def record(progress: JobProgress, row: dict[str, Any] | None, preview: Any) -> None:
            self.progress = progress
            if row is not None:
                self.rows.append(json.dumps(row))
            if preview is not None:
                self.preview, self.preview_step = preview, progress.step
                self.preview_published = False
                if progress.frame is not None:  # a clip's preview is a finished frame
                    self.keep_frame(preview)
            self.publish()

        try:
            state, error, result = follow_run(
                start, self.token, record, job_id=self.job_id, log=logger
            )
        finally:
            self.stop_heartbeat.set()
            _running.pop(self.job_id, None)
        heartbeat.join(5)
        self.finish(state, error, result)
        return state.value

    def claim(self) -> JobState | None:
        """QUEUED to RUNNING, atomically; a cancelled or abandoned job ends here unstarted."""
        record = key(self.job_id)
        with self.connection.pipeline() as pipe:
            pipe.watch(record, key(self.job_id, "cancel"))
            state = pipe.hget(record, "state")
            if state is None:
                return None  # forgotten, or expired
            if state.decode() != JobState.QUEUED.value:
                return JobState(state.decode())
            cancelled = pipe.exists(key(self.job_id, "cancel"))
            watched = pipe.exists(key(self.job_id, "watched"))
            pipe.multi()
            now = repr(time.time())
            if cancelled or not watched:
                pipe.hset(record, mapping={"state": JobState.CANCELLED.value, "finished_at": now})
                pipe.delete(key(self.job_id, "request"))
                outcome = JobState.CANCELLED
            else:
                pipe.hset(
                    record,
                    mapping={
                        "state": JobState.RUNNING.value,
                        "started_at": now,
                        "worker": f"{socket.gethostname()}:{os.getpid()}",
                    },
                )
                pipe.set(key(self.job_id, "alive"), b"1", ex=WORKER_TTL)
                outcome = JobState.RUNNING
            try:
                pipe.execute()
            except redis.exceptions.WatchError:  # cancelled this very moment
                return self.claim()
        return outcome

    def heartbeat(self) -> None:
        """Say we are alive; cancel the run when asked to, or when Redis stays away."""
        last_ok = time.monotonic()
        while not self.stop_heartbeat.wait(HEARTBEAT_SECONDS):
            try:
                pipe = self.connection.pipeline()
                pipe.set(key(self.job_id, "alive"), b"1", ex=WORKER_TTL)
                pipe.exists(key(self.job_id, "cancel"))
                pipe.exists(key(self.job_id, "watched"))
                _, cancelled, watched = pipe.execute()
                last_ok = time.monotonic()
                if cancelled or not watched:
                    if not self.token.cancelled:
                        logger.info(
                            "Job %s: %s.",
                            self.job_id,
                            "cancelled" if cancelled else "its page stopped polling",
                        )
                    self.token.cancel()
            except redis.exceptions.RedisError:
                if time.monotonic() - last_ok > WORKER_TTL and not self.token.cancelled:
                    logger.warning("Job %s: Redis is unreachable; stopping the run.", self.job_id)
                    self.token.cancel()

    def keep_frame(self, frame: Any) -> None:
        """Append a finished clip frame (PNG) to ``:frames`` at once, so that it outlives this
        process; a Redis error only loses this frame from a dead worker's shorter clip."""
        try:
            pipe = self.connection.pipeline()
            pipe.rpush(key(self.job_id, "frames"), encode_png(frame))
            pipe.expire(key(self.job_id, "frames"), JOB_TTL)
            pipe.execute()
        except redis.exceptions.RedisError:
            logger.warning("Job %s: could not keep a finished frame.", self.job_id)

    def publish(self, *, final: bool = False) -> None:
        """Send progress, history rows and (throttled) the preview; errors only cost an update."""
        now = time.monotonic()
        if not final and now - self.last_publish < PUBLISH_SECONDS:
            return
        self.last_publish = now
        try:
            pipe = self.connection.pipeline()
            if self.rows:
                pipe.rpush(key(self.job_id, "history"), *self.rows)
                pipe.expire(key(self.job_id, "history"), JOB_TTL)
            mapping: dict[str, Any] = {}
            if self.progress is not None:
                mapping["progress"] = json.dumps(self.progress.to_dict())
            first = self.last_preview == 0.0
            if not self.preview_published and (
                final or first or now - self.last_preview >= PREVIEW_SECONDS
            ):
                pipe.set(key(self.job_id, "preview"), encode_png(self.preview), ex=JOB_TTL)
                mapping["preview_step"] = self.preview_step
                mapping["preview_at"] = repr(time.time())  # nst.benchmarks.queueing's latency
                self.preview_published, self.last_preview = True, now
            if mapping:
                pipe.hset(key(self.job_id), mapping=mapping)
            pipe.execute()
            self.rows = []
        except redis.exceptions.RedisError:
            logger.warning("Job %s: could not publish progress.", self.job_id)

    def finish(self, state: JobState, error: str | None, result: Result | None) -> None:
        """Record the outcome: the result (or the last preview as the picture so far)."""
        if result is None and self.preview is not None:
            config_text = self.connection.hget(key(self.job_id), "config")
            if config_text is not None:
                from nst.config import StyleConfig

                result = Result(
                    image=self.preview,
                    history=[json.loads(row) for row in self.rows],
                    timings={},
                    config=StyleConfig.from_dict(json.loads(config_text)),
                    stopped=True,
                    error=error,
                    steps_done=self.progress.step if self.progress else 0,
                )
        self.publish(final=True)
        kind = job_kind(self.connection.hget(key(self.job_id), "kind").decode())
        pipe = self.connection.pipeline()
        if result is not None:
            meta, blobs = kind.encode_result(result)
            pipe.hset(key(self.job_id, "result"), mapping={"meta": json.dumps(meta), **blobs})
            pipe.set(key(self.job_id, "preview"), blobs.get("image", b""), ex=JOB_TTL)
            if not blobs.get("image"):
                pipe.delete(key(self.job_id, "preview"))
            if result.history:
                pipe.delete(key(self.job_id, "history"))
                pipe.rpush(
                    key(self.job_id, "history"),
                    *(json.dumps(row, default=float) for row in result.history),
                )
        mapping = {
            "state": state.value,
            "error": error or "",
            "finished_at": repr(time.time()),
        }
        if result is not None:
            mapping["preview_step"] = int(result.steps_done)
        pipe.hset(key(self.job_id), mapping=mapping)
        pipe.delete(
            key(self.job_id, "request"),
            key(self.job_id, "alive"),
            key(self.job_id, "cancel"),
            key(self.job_id, "frames"),  # the result holds the clip now
        )
        for name in all_keys(self.job_id):
            pipe.expire(name, finished_ttl())
        pipe.execute()
        if self.connection.hget(key(self.job_id), "forget"):
            self.connection.delete(*all_keys(self.job_id))


def stop_job(url: str, job_id: str) -> int:
    """Send RQ's stop-job command for a hung job; 0 if a worker was told, 2 otherwise."""
    from rq.command import send_stop_job_command
    from rq.exceptions import InvalidJobOperation, NoSuchJobError

    connection = connect(url)
    try:
        state = connection.hget(key(job_id), "state")
        if state is not None and state.decode() != JobState.RUNNING.value:
            print(
                f"Job {job_id} is not running ({state.decode()}); only a running job can be "
                "stopped this way.",
                file=sys.stderr,
            )
            return 2
        send_stop_job_command(connection, job_id, serializer=JSONSerializer)
    except (NoSuchJobError, InvalidJobOperation):
        print(
            f"No worker is running a job {job_id} in the queue at {describe(url)}.", file=sys.stderr
        )
        return 2
    except redis.exceptions.RedisError:
        print(f"The job queue at {describe(url)} cannot be reached.", file=sys.stderr)
        return 2
    print(f"Told the worker running job {job_id} to stop it; that worker process exits.")
    return 0


def worker_connection(url: str) -> redis.Redis:
    """A client for the worker: like the web tier's, but with room for RQ's blocking dequeue."""
    return redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=60.0)


def wait_for_redis(connection: redis.Redis, url: str) -> None:
    """Block until Redis answers, saying once what we wait for."""
    said = False
    while True:
        try:
            connection.ping()
            if said:
                logger.info("The job queue at %s is reachable again.", describe(url))
            return
        except redis.exceptions.AuthenticationError:
            raise SystemExit(
                f"The job queue at {describe(url)} refused the password in the URL."
            ) from None
        except redis.exceptions.RedisError:
            if not said:
                logger.warning(
                    "Waiting for the job queue at %s (retrying every %g s)…",
                    describe(url),
                    RECONNECT_SECONDS,
                )
                said = True
            time.sleep(RECONNECT_SECONDS)


def preload() -> None:
    """Load both networks and trace the default run's loss now (``nst.front.warm_up``), so
    the first job starts at once."""
    from nst.front import warm_up

    logger.info("Networks ready in %.1f s.", warm_up())


def main(argv: list[str] | None = None) -> int:
    exit_if_unsupported()  # no TensorFlow here: one sentence, not a traceback at the first job
    parser = argparse.ArgumentParser(
        prog="python -m nst.worker",
        description="Run style-transfer jobs from the Redis queue, one at a time, with the "
        "network kept loaded. Start one per GPU (CUDA_VISIBLE_DEVICES) or several per CPU box.",
    )
    parser.add_argument("--url", help="Redis URL (default: NST_QUEUE), e.g. redis://:pw@host/0")
    parser.add_argument("--queue", default=QUEUE_NAME, help="RQ queue name (default: %(default)s)")
    parser.add_argument("--name", help="worker name (default: host.pid)")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--max-jobs", type=int, help="exit after this many jobs")
    parser.add_argument(
        "--no-preload",
        action="store_true",
        help="build the networks and trace the loss on the first job, not at start (as "
        "NST_WARM_UP=0)",
    )
    parser.add_argument(
        "--stop-job",
        metavar="JOB_ID",
        help="end a hung job by stopping the worker process that runs it, then exit",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        url = args.url or queue_url()
    except ValueError as error:
        parser.error(str(error))
    if not url:
        parser.error("set NST_QUEUE (or --url) to the Redis URL the web tier uses.")
    if args.stop_job:
        return stop_job(url, args.stop_job)
    if not args.no_preload and warm_up_enabled():
        preload()
    connection = worker_connection(url)
    name = args.name or f"{socket.gethostname()}.{os.getpid()}"
    for attempt in itertools.count():
        wait_for_redis(connection, url)
        queue = Queue(args.queue, connection=connection, serializer=JSONSerializer)
        worker = StudioWorker(
            [queue],
            connection=connection,
            serializer=JSONSerializer,
            name=name if attempt == 0 else f"{name}.{attempt}",  # the old name may linger
            worker_ttl=30,
        )
        try:
            worker.work(burst=args.burst, max_jobs=args.max_jobs, logging_level="INFO")
        except redis.exceptions.RedisError:
            logger.warning("Lost the job queue at %s.", describe(url))
        if worker.stop_requested or args.burst or args.max_jobs:
            return 0
        time.sleep(1.0)  # the work loop ended on a Redis error: reconnect
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
