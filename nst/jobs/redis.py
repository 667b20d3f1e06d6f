"""The Redis backend: jobs wait in an RQ queue and run on ``python -m nst.worker`` processes.

Selected with ``NST_QUEUE=redis://[:password@]host:port/db``. The web tier only writes requests
and reads records; it never imports TensorFlow. What lives in Redis, per job (``<id>`` is a
uuid4, unguessable):

- ``nst:job:<id>``: a hash with the owner's SHA-256, kind, state, times, the latest progress
  (JSON), the preview's step and the error sentence;
- ``nst:job:<id>:request``: the request as JSON metadata plus PNG blobs, deleted once the job
  has finished; ``:history`` one JSON row per step; ``:preview`` the latest image as PNG (with
  an expiry); ``:result`` the result (JSON plus PNG); ``:frames`` a clip's finished frames as
  PNG, pushed by the worker as each one finishes (at most the clip's planned frames), so that a
  clip whose worker dies keeps them as a shorter clip;
- ``:cancel`` a flag the worker checks about every second, ``:watched`` the page's heartbeat
  (expires ``heartbeat_timeout`` s after the last ``status()``: the worker then cancels the
  job), ``:alive`` the worker's heartbeat (expires ``WORKER_TTL`` s after the worker stopped
  refreshing it: the job is then reported FAILED with its last preview kept).

The RQ job itself carries only the id (RQ's JSON serializer: nothing is unpickled), and every
key expires ``JOB_TTL`` s after the job's last change, so Redis never fills up with jobs whose
pages went away.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from nst.config import keep_seconds
from nst.jobs.backend import (
    UNKNOWN_JOB,
    Blobs,
    JobProgress,
    JobState,
    JobStatus,
    QueueUnavailableError,
    UnknownJobError,
    decode_png,
    job_kind,
    kind_of,
)
from nst.records import Result

__all__ = [
    "JOB_TTL",
    "QUEUE_NAME",
    "WORKER_LOST",
    "WORKER_LOST_BEFORE_START",
    "WORKER_TTL",
    "RedisQueue",
    "connect",
    "worker_lost_clip",
]

logger = logging.getLogger(__name__)

QUEUE_NAME = "nst"
PREFIX = "nst:job:"
JOB_TTL = 24 * 3600  # every key of a job expires this long after its last change
WORKER_TTL = 10  # seconds without a worker heartbeat before a running job counts as lost
DEFAULT_HEARTBEAT_TIMEOUT = 15.0


def finished_ttl() -> int:
    """Seconds a finished job's keys live: as long as the person's results are kept
    (``NST_KEEP_HOURS``), since a run that ended with no page following it (a closed tab) is
    collected into them on the person's next visit."""
    return max(3600, round(keep_seconds()))


JOB_TIMEOUT = 6 * 3600  # RQ's hard limit for one run (a hung job); cancellation is cooperative
WORKER_LOST = (
    "The worker running this job stopped (its process or machine went down); "
    "the picture so far is kept."
)
WORKER_LOST_BEFORE_START = (
    "The worker that took this job stopped before it could start it; please start it again."
)


def worker_lost_clip(frames: int) -> str:
    """The sentence for a clip whose worker died after ``frames`` (at least one) finished."""
    kept = "its finished frame is" if frames == 1 else f"its {frames} finished frames are"
    return (
        "The worker painting this clip stopped (its process or machine went down); "
        f"{kept} kept as a shorter clip."
    )


T = TypeVar("T")


def key(job_id: str, part: str = "") -> str:
    """The Redis key of a job's record (``part`` '') or of one of its parts."""
    return f"{PREFIX}{job_id}:{part}" if part else f"{PREFIX}{job_id}"


def owner_digest(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()


def connect(url: str) -> redis.Redis:
    """A client for ``url`` with short timeouts, so an unreachable Redis is reported in about
    a second instead of hanging a page. Does not connect yet."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


def describe(url: str) -> str:
    """``host:port`` of a Redis URL, without its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def unavailable(url: str, error: BaseException) -> QueueUnavailableError:
    """The one sentence for a Redis that cannot be used."""
    where = describe(url)
    if isinstance(error, redis.exceptions.AuthenticationError):
        return QueueUnavailableError(
            f"The job queue at {where} refused the password in NST_QUEUE; runs cannot start "
            "until it is corrected (results in your gallery are kept)."
        )
    return QueueUnavailableError(
        f"The job queue at {where} cannot be reached, so runs cannot start or report right "
        "now; results in your gallery are kept, please try again in a minute."
    )


class RedisQueue:
    """The job interface (``nst.jobs.backend``) on Redis and RQ.

    Args:
        url: the Redis URL (``NST_QUEUE``).
        heartbeat_timeout: seconds without a ``status()`` call after which a worker cancels
            the job (its page went away).
        queue_name: the RQ queue the workers listen on.
        worker_ttl: seconds a job may go without a worker heartbeat (running) or sit taken
            from the queue but unclaimed (its worker died in between) before it counts as lost.
    """

    remote = True

    def __init__(
        self,
        url: str,
        heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
        *,
        queue_name: str = QUEUE_NAME,
        worker_ttl: float = WORKER_TTL,
    ) -> None:
        if not heartbeat_timeout > 0:
            raise ValueError(f"heartbeat_timeout must be positive, got {heartbeat_timeout!r}.")
        self.url = url
        self.heartbeat_timeout = heartbeat_timeout
        self.worker_ttl = worker_ttl
        self.connection = connect(url)
        self.rq_queue = Queue(queue_name, connection=self.connection, serializer=JSONSerializer)
        self.closed = False

    # ----- the interface -----

    def submit(self, request: Any, *, owner: str = "") -> str:
        """Store the request, put its job at the end of the RQ queue and return its id."""
        kind = kind_of(request)
        meta, blobs = kind.encode_request(request)
        job_id = uuid.uuid4().hex
        now = time.time()
        config = getattr(request, "config", None)
        extra = {"config": json.dumps(config.to_dict())} if hasattr(config, "to_dict") else {}

        def store() -> None:
            pipe = self.connection.pipeline()
            pipe.hset(
                key(job_id),
                mapping={
                    "owner": owner_digest(owner),
                    "kind": kind.name,
                    "state": JobState.QUEUED.value,
                    "submitted_at": repr(now),
                    **extra,
                },
            )
            pipe.hset(key(job_id, "request"), mapping={"meta": json.dumps(meta), **blobs})
            pipe.set(key(job_id, "watched"), b"1", ex=_seconds(self.heartbeat_timeout))
            for part in ("", "request"):
                pipe.expire(key(job_id, part), JOB_TTL)
            pipe.execute()
            self.rq_queue.enqueue_call(
                "nst.worker.run_job",
                args=(job_id,),
                job_id=job_id,
                timeout=JOB_TIMEOUT,
                result_ttl=0,
                failure_ttl=finished_ttl(),
                ttl=JOB_TTL,
            )

        self._call(store)
        return job_id

    def status(self, job_id: str, *, owner: str = "") -> JobStatus:
        """A snapshot of the job; also the page's heartbeat for it."""
        return self._call(lambda: self._status(job_id, owner))

    def cancel(self, job_id: str, *, owner: str = "") -> None:
        """A queued job never starts; a running one ends within about a second and a step."""
        self._call(lambda: self._cancel(job_id, owner))

    def result(self, job_id: str, *, owner: str = "") -> Result | None:
        """The run's result once finished (a lost worker's job: its last preview, or a clip's
        kept frames as a shorter clip), else None."""
        return self._call(lambda: self._result(job_id, owner))

    def forget(self, job_id: str, *, owner: str = "") -> None:
        """Drop the job's data; an unfinished job is cancelled and its worker drops the rest."""
        self._call(lambda: self._forget(job_id, owner))

    def shutdown(self, timeout: float | None = None) -> None:
        """Close the connections (jobs keep running on the workers)."""
        self.closed = True
        self.connection.close()

    def worker_count(self) -> int:
        """How many ``nst.worker`` processes listen on this queue."""
        from rq import Worker

        return self._call(lambda: Worker.count(connection=self.connection, queue=self.rq_queue))

    # ----- internals -----

    def _call(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            raise unavailable(self.url, error) from None

    def _record(self, job_id: str, owner: str) -> dict[str, str]:
        fields = {
            name.decode(): value.decode()
            for name, value in self.connection.hgetall(key(job_id)).items()
        }
        if not fields or not hmac.compare_digest(fields.get("owner", ""), owner_digest(owner)):
            raise UnknownJobError(UNKNOWN_JOB)
        return fields

    def _status(self, job_id: str, owner: str) -> JobStatus:
        fields = self._record(job_id, owner)
        state = JobState(fields["state"])
        pipe = self.connection.pipeline()
        pipe.set(key(job_id, "watched"), b"1", ex=_seconds(self.heartbeat_timeout))
        pipe.lrange(key(job_id, "history"), 0, -1)
        pipe.get(key(job_id, "preview"))
        pipe.exists(key(job_id, "alive"))
        pipe.lpos(self.rq_queue.key, job_id)
        _, rows, preview, alive, index = pipe.execute()
        if state is JobState.RUNNING and not alive:
            fields = self._mark_lost(job_id, JobState.RUNNING, WORKER_LOST) or fields
            state = JobState(fields["state"])
        elif state is JobState.QUEUED and index is None:
            fields = self._unclaimed(job_id, fields)
            state = JobState(fields["state"])
        position = 0
        if state is JobState.QUEUED and index is not None:
            position = int(index) + 1
        progress = fields.get("progress")
        return JobStatus(
            job_id=job_id,
            state=state,
            position=position,
            progress=JobProgress.from_dict(json.loads(progress)) if progress else None,
            preview=preview,
            preview_step=int(fields.get("preview_step", 0)),
            history=[json.loads(row) for row in rows],
            error=fields.get("error") or None,
            kind=fields.get("kind", "image"),
            submitted_at=_time(fields.get("submitted_at")),
            started_at=_time(fields.get("started_at")),
            finished_at=_time(fields.get("finished_at")),
        )

    def _unclaimed(self, job_id: str, fields: dict[str, str]) -> dict[str, str]:
        """QUEUED but no longer in RQ's list: a worker has taken the job and claims it within
        moments, or died in between. The first status call that sees this notes the time; one
        ``worker_ttl`` later, the job is lost."""
        noticed = fields.get("unlisted_at")
        if noticed is None:
            self.connection.hsetnx(key(job_id), "unlisted_at", repr(time.time()))
            return fields
        if time.time() - float(noticed) < self.worker_ttl:
            return fields
        return self._mark_lost(job_id, JobState.QUEUED, WORKER_LOST_BEFORE_START) or fields

    def _mark_lost(self, job_id: str, expected: JobState, error: str) -> dict[str, str] | None:
        """The job's worker died: mark the job FAILED with ``error``, once, if it is still in
        the ``expected`` state with no worker heartbeat."""
        with self.connection.pipeline() as pipe:
            try:
                pipe.watch(key(job_id), key(job_id, "alive"))
                state = pipe.hget(key(job_id), "state")
                if state != expected.value.encode() or pipe.exists(key(job_id, "alive")):
                    return None
                keep_request = kept_frames(pipe, job_id)
                pipe.multi()
                fail(pipe, job_id, error, keep_request=keep_request)
                pipe.execute()
            except redis.exceptions.WatchError:
                return None  # the worker (or another page) changed it meanwhile
        logger.warning("Job %s: %s", job_id, error)
        return {
            name.decode(): value.decode()
            for name, value in self.connection.hgetall(key(job_id)).items()
        }

    def _cancel(self, job_id: str, owner: str) -> None:
        try:
            fields = self._record(job_id, owner)
        except UnknownJobError:
            return
        if JobState(fields["state"]).finished:
            return
        pipe = self.connection.pipeline()
        pipe.set(key(job_id, "cancel"), b"1", ex=JOB_TTL)
        pipe.lrem(self.rq_queue.key, 0, job_id)
        _, removed = pipe.execute()
        if removed:  # it was still waiting: no worker will ever see it
            self._finish_unstarted(job_id, JobState.CANCELLED)

    def _finish_unstarted(self, job_id: str, state: JobState, error: str = "") -> None:
        pipe = self.connection.pipeline()
        pipe.hset(
            key(job_id),
            mapping={"state": state.value, "error": error, "finished_at": repr(time.time())},
        )
        pipe.delete(key(job_id, "request"), Job.key_for(job_id))
        _expire_all(pipe, job_id, finished_ttl())
        pipe.execute()

    def _result(self, job_id: str, owner: str) -> Result | None:
        fields = self._record(job_id, owner)
        state = JobState(fields["state"])
        if not state.finished:
            return None
        stored = self.connection.hgetall(key(job_id, "result"))
        kind = job_kind(fields.get("kind", "image"))
        if stored:
            blobs: Blobs = {name.decode(): value for name, value in stored.items()}
            meta = json.loads(blobs.pop("meta"))
            return kind.decode_result(meta, blobs)
        if kind.name == "video":
            return self._kept_clip(job_id, fields)
        preview = self.connection.get(key(job_id, "preview"))
        config = fields.get("config")
        if preview is None or config is None:
            return None
        # The worker died: the last preview it published is the picture so far.
        from nst.config import StyleConfig

        progress = fields.get("progress")
        steps = JobProgress.from_dict(json.loads(progress)).step if progress else 0
        history = [json.loads(row) for row in self.connection.lrange(key(job_id, "history"), 0, -1)]
        return Result(
            image=decode_png(preview),
            history=history,
            timings={},
            config=StyleConfig.from_dict(json.loads(config)),
            stopped=True,
            error=fields.get("error") or None,
            steps_done=steps,
        )

    def _kept_clip(self, job_id: str, fields: dict[str, str]) -> Result | None:
        """A clip whose worker died: the frames it kept, as a shorter clip with the clip's
        sound (None when no frame had finished). Built once, then stored as the result."""
        frames = self.connection.lrange(key(job_id, "frames"), 0, -1)
        stored = self.connection.hgetall(key(job_id, "request"))
        if not frames or not stored:
            return None
        from nst.jobs.video import kept_clip

        blobs: Blobs = {name.decode(): value for name, value in stored.items()}
        error = fields.get("error") or ""
        if error == WORKER_LOST:
            error = worker_lost_clip(len(frames))
        result = kept_clip(json.loads(blobs.pop("meta")), blobs, frames, error)
        meta, result_blobs = job_kind("video").encode_result(result)
        pipe = self.connection.pipeline()
        pipe.hset(key(job_id, "result"), mapping={"meta": json.dumps(meta), **result_blobs})
        pipe.expire(key(job_id, "result"), finished_ttl())
        pipe.delete(key(job_id, "frames"), key(job_id, "request"))
        pipe.execute()
        return result

    def _forget(self, job_id: str, owner: str) -> None:
        try:
            fields = self._record(job_id, owner)
        except UnknownJobError:
            return
        if not JobState(fields["state"]).finished:
            self.connection.hset(key(job_id), "forget", "1")
            self._cancel(job_id, owner)
            fields = self._record(job_id, owner)
        if JobState(fields["state"]).finished:
            self.connection.delete(*all_keys(job_id))
        # else: the worker deletes the keys when the run has ended


def fail(pipe: Any, job_id: str, error: str, *, keep_request: bool = False) -> None:
    """Queue on ``pipe`` the commands that end a job as FAILED with ``error`` when its worker
    is gone; its last preview stays as the picture so far. ``keep_request`` keeps the request
    (a clip's, whose kept frames become a shorter clip with its sound on ``result()``)."""
    pipe.hset(
        key(job_id),
        mapping={
            "state": JobState.FAILED.value,
            "error": error,
            "finished_at": repr(time.time()),
        },
    )
    _expire_all(pipe, job_id, finished_ttl())
    pipe.delete(key(job_id, "alive"))
    if not keep_request:
        pipe.delete(key(job_id, "request"))


def kept_frames(connection: redis.Redis, job_id: str) -> bool:
    """Whether the job's worker kept finished clip frames (``:frames``)."""
    return bool(connection.exists(key(job_id, "frames")))


PARTS = ("", "request", "history", "preview", "result", "cancel", "watched", "alive", "frames")


def all_keys(job_id: str) -> list[str]:
    return [key(job_id, part) for part in PARTS]


def _expire_all(pipe: Any, job_id: str, seconds: int) -> None:
    for name in all_keys(job_id):
        if not name.endswith((":watched", ":alive")):
            pipe.expire(name, seconds)


def _seconds(value: float) -> int:
    return max(1, round(value))


def _time(value: str | None) -> float | None:
    return float(value) if value else None
