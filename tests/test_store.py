"""The result store: both implementations through the same tests, Redis on a real server.

Redis runs as ``redis-server`` on a free loopback port with a password (tests/queue_cluster.py);
time is an injected clock, so expiry needs no waiting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import studio.store
from nst.config import StyleConfig
from nst.jobs import QueueUnavailableError
from nst.video_config import VideoConfig
from studio.session import StudioResult
from studio.store import (
    ClipRecord,
    ClipRun,
    MemoryStore,
    PendingRun,
    RedisStore,
    ResultStore,
    decode_record,
    decode_run,
    encode_record,
    encode_run,
    get_store,
    keep_hours,
    new_owner_key,
    owner_id,
    valid_owner_key,
)
from tests.queue_cluster import REDIS_SERVER, RedisServer, free_port

START = 1_800_000_000.0


class Clock:
    """A settable ``time.time``."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("install redis-server (apt-get install -y redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("store-redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


Factory = Callable[..., Any]


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[Factory]:
    """``make_store(**options)``: a fresh store of the parametrized kind; Redis stores made by
    one test share one emptied database, as web servers sharing ``NST_QUEUE`` would."""
    made: list[RedisStore] = []
    if request.param == "memory":
        yield lambda **options: MemoryStore(**options)
        return
    server = request.getfixturevalue("redis_server")

    def factory(**options: Any) -> RedisStore:
        store = RedisStore(server.url, **options)
        made.append(store)
        return store

    factory(keep_hours=1).connection.flushdb()
    try:
        yield factory
    finally:
        for store in made:
            store.close()


def picture(seed: int, height: int = 24, width: int = 32, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def result(seed: int = 0, *, created: float = 0.0) -> StudioResult:
    return StudioResult(
        result_id=0,
        image=picture(seed),
        content=picture(seed + 100),
        config=StyleConfig(size=64, steps=3, style_layers=("block1_conv1",), seed=seed),
        content_name=f"photo-{seed}.jpg",
        content_key=f"upload:{seed}",
        style_names=("starry night", "the scream"),
        created=created,
        seconds=12.5,
        steps_done=3,
        stopped=seed % 2 == 1,
        error=None,
        history=[{"loss": 1.5, "style": 0.25}, {"loss": math.nan, "style": math.inf}],
        note="L-BFGS converged.",
        continued_from=None,
        adjustments={"hue": 10.0},
        instant=picture(seed + 200),
        mask=picture(seed + 300, channels=0),
        mask_source="painted",
    )


def pending(job_id: str = "job-1", *, started: float = START) -> PendingRun:
    return PendingRun(
        job_id=job_id,
        config=StyleConfig(size=64, steps=3),
        content=picture(7),
        content_name="photo.jpg",
        content_key="upload:7",
        style_names=("starry night",),
        continued_from=2,
        mask=picture(8, channels=0),
        mask_source="mask.png",
        started=started,
    )


def same_record(got: StudioResult, want: StudioResult) -> None:
    for name in ("image", "content", "instant", "mask"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
        assert getattr(got, name).dtype == np.uint8
    assert got.config == want.config
    assert got.history[0] == want.history[0]
    assert math.isnan(got.history[1]["loss"]) and got.history[1]["style"] == math.inf
    for name in (
        "result_id",
        "content_name",
        "content_key",
        "style_names",
        "created",
        "seconds",
        "steps_done",
        "stopped",
        "error",
        "note",
        "continued_from",
        "adjustments",
        "mask_source",
    ):
        assert getattr(got, name) == getattr(want, name), name


def test_owner_keys() -> None:
    key = new_owner_key()
    assert len(key) == 43 and valid_owner_key(key)
    assert new_owner_key() != key
    assert owner_id(key) == hashlib.sha256(key.encode()).hexdigest()
    for bad in ("", key[:-1], key + "A", "+" + key[1:], "/" * 43, None, 43):
        assert not valid_owner_key(bad)


def test_codecs_round_trip_exactly() -> None:
    record = result(3, created=START)
    record.result_id = 5
    meta, blobs = encode_record(record)
    assert all(value.startswith(b"\x89PNG") for value in blobs.values())
    same_record(decode_record(meta, blobs), record)
    run = pending()
    run_meta, run_blobs = encode_run(run)
    back = decode_run(run_meta, run_blobs)
    assert np.array_equal(back.content, run.content) and np.array_equal(back.mask, run.mask)
    assert back.config == run.config and back.style_names == run.style_names
    assert (back.job_id, back.continued_from, back.started) == ("job-1", 2, START)
    with pytest.raises(ValueError, match="Stored pictures must be uint8 arrays"):
        encode_record(dataclasses.replace(record, image=record.image / 255.0))


def test_results_round_trip(make_store: Factory) -> None:
    clock = Clock()
    store = make_store(clock=clock)
    owner = new_owner_key()
    kept = store.add(owner, result(1))
    assert (kept.result_id, kept.created) == (1, START)
    # Another store on the same backend (for Redis: another web server, nothing cached).
    reader = store if isinstance(store, MemoryStore) else make_store(clock=clock)
    [back] = reader.results(owner)
    same_record(back, kept)
    same_record(reader.get(owner, 1), kept)
    assert reader.get(owner, 2) is None


def test_ids_increase_per_owner_and_results_are_oldest_first(make_store: Factory) -> None:
    clock = Clock()
    store = make_store(clock=clock)
    first, second = new_owner_key(), new_owner_key()
    for seed in range(3):
        clock.now += 1
        store.add(first, result(seed))
    assert store.add(second, result(9)).result_id == 1
    assert [item.result_id for item in store.results(first)] == [1, 2, 3]
    assert [item.content_name for item in store.results(first)] == [
        "photo-0.jpg",
        "photo-1.jpg",
        "photo-2.jpg",
    ]
    store.delete(first, 2)
    assert [item.result_id for item in store.results(first)] == [1, 3]
    assert store.add(first, result(4)).result_id == 4  # an id is never given twice


def test_another_owner_sees_and_touches_nothing(make_store: Factory) -> None:
    store = make_store()
    owner, stranger = new_owner_key(), new_owner_key()
    store.add(owner, result(1))
    store.set_run(owner, pending("job-1"))
    assert store.results(stranger) == []
    assert store.get(stranger, 1) is None
    assert store.run(stranger) is None
    assert store.take_run(stranger, "job-1") is None
    store.delete(stranger, 1)
    store.note_instant(stranger, "job-1", b"not yours")
    assert store.take_notices(stranger) == []
    assert [item.result_id for item in store.results(owner)] == [1]
    assert store.run(owner).instant_png is None
    for bad in ("", owner[:-1], "guess"):
        with pytest.raises(ValueError, match=r"^An owner key must be the 43 URL-safe"):
            store.results(bad)


def test_cap_drops_the_oldest_with_a_notice(make_store: Factory) -> None:
    clock = Clock()
    store = make_store(cap=3, clock=clock)
    owner = new_owner_key()
    for seed in range(5):
        clock.now += 1
        store.add(owner, result(seed))
    assert [item.result_id for item in store.results(owner)] == [3, 4, 5]
    assert store.take_notices(owner) == [
        "2 older results were removed to save memory: the gallery keeps at most the 3 newest, "
        "fewer when the studio is busy. Download the ones you want to keep."
    ]
    assert store.take_notices(owner) == []


def test_expired_results_are_removed_with_a_notice(make_store: Factory) -> None:
    clock = Clock()
    store = make_store(keep_hours=1, clock=clock)
    owner = new_owner_key()
    store.add(owner, result(1))
    clock.now += 1800
    store.add(owner, result(2))
    clock.now += 1801  # the first is an hour and a second old, the second half an hour
    assert [item.result_id for item in store.results(owner)] == [2]
    assert store.get(owner, 1) is None
    clock.now += 1800
    assert store.results(owner) == []
    assert store.take_notices(owner) == [
        "2 results expired: the studio keeps results for 1 hour. "
        "Download the ones you want to keep."
    ]


def test_added_notices_are_told_once(make_store: Factory) -> None:
    store = make_store(cap=1)
    owner = new_owner_key()
    store.add(owner, result(1))
    store.add(owner, result(2))
    store.add_notice(owner, "The run was stopped before its first step.")
    notices = store.take_notices(owner)
    assert notices[0].startswith("1 older result was removed to save memory")
    assert notices[1:] == ["The run was stopped before its first step."]
    assert store.take_notices(owner) == []


def test_update_keeps_the_adjustments(make_store: Factory) -> None:
    store = make_store()
    owner = new_owner_key()
    kept = store.add(owner, result(1))
    kept.adjustments = {"hue": -30.0, "saturation": 1.5}
    store.update(owner, kept)
    reader = store if isinstance(store, MemoryStore) else make_store()
    assert reader.get(owner, 1).adjustments == {"hue": -30.0, "saturation": 1.5}
    if isinstance(store, RedisStore):  # the first server sees the other's change too
        kept.adjustments = {"hue": 5.0}
        reader.update(owner, kept)
        assert store.get(owner, 1).adjustments == {"hue": 5.0}
    store.delete(owner, 1)
    store.update(owner, kept)  # a deleted record stays deleted
    assert reader.results(owner) == []


def test_set_run_returns_the_run_it_replaces(make_store: Factory) -> None:
    store = make_store()
    owner = new_owner_key()
    assert store.run(owner) is None
    assert store.set_run(owner, pending("job-1")) is None
    replaced = store.set_run(owner, pending("job-2"))
    assert replaced.job_id == "job-1"
    assert np.array_equal(replaced.content, picture(7))
    assert store.run(owner).job_id == "job-2"
    store.note_instant(owner, "job-1", b"old")  # no longer the owner's run: ignored
    assert store.run(owner).instant_png is None
    store.note_instant(owner, "job-2", b"\x89PNG instant")
    assert store.run(owner).instant_png == b"\x89PNG instant"
    assert store.take_run(owner, "job-1") is None
    taken = store.take_run(owner, "job-2")
    assert taken.job_id == "job-2" and taken.instant_png == b"\x89PNG instant"
    assert store.run(owner) is None and store.take_run(owner, "job-2") is None


@pytest.mark.parametrize("method", ["take_run", "claim_run"])
def test_take_or_claim_run_gives_the_run_to_exactly_one_caller(
    make_store: Factory, method: str
) -> None:
    stores = [make_store(), make_store()]  # Redis: two web servers; memory: two threads
    if isinstance(stores[0], MemoryStore):
        stores[1] = stores[0]
    owner = new_owner_key()
    for attempt in range(20):
        job_id = f"job-{attempt}"
        stores[0].set_run(owner, pending(job_id))
        start = threading.Barrier(4)
        taken: list[PendingRun | None] = []

        def settle(
            store: ResultStore, job_id: str = job_id, start: Any = start, taken: Any = taken
        ) -> None:
            start.wait()
            taken.append(getattr(store, method)(owner, job_id))

        threads = [threading.Thread(target=settle, args=(stores[i % 2],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [run.job_id for run in taken if run is not None] == [job_id]
        left = stores[1].run(owner)  # a claimed run stays the owner's until it is taken
        assert (left is None) if method == "take_run" else (left.job_id == job_id)


def test_a_claimed_run_stays_visible_until_taken_and_goes_to_one_claimer(
    make_store: Factory,
) -> None:
    clock = Clock()
    stores = [make_store(clock=clock), make_store(clock=clock)]  # Redis: two web servers
    if isinstance(stores[0], MemoryStore):
        stores[1] = stores[0]  # memory: two tabs of one server
    owner = new_owner_key()
    stores[0].set_run(owner, clip_run("clip-1"))
    assert stores[1].claim_run(owner, "clip-0", "clip") is None  # not the owner's run
    assert stores[1].claim_run(owner, "clip-1") is None  # the picture shelf has no run
    assert stores[0].claim_run(owner, "clip-1", "clip", lease=30) == clip_run("clip-1")
    # While it is settled, every page still sees the run (never neither run nor record),
    # and nobody else may settle it.
    assert stores[1].run(owner, "clip") == clip_run("clip-1")
    assert stores[1].claim_run(owner, "clip-1", "clip", lease=30) is None
    clock.now += 29
    assert stores[1].claim_run(owner, "clip-1", "clip", lease=30) is None
    # A settler that died (its server stopped) leaves the run to the next one after the lease.
    clock.now += 2
    assert stores[1].claim_run(owner, "clip-1", "clip", lease=30) == clip_run("clip-1")
    stores[1].add(owner, clip(1))
    assert stores[0].take_run(owner, "clip-1", "clip") == clip_run("clip-1")
    assert stores[0].run(owner, "clip") is None
    assert stores[0].claim_run(owner, "clip-1", "clip") is None
    # A new run starts unclaimed, whatever its predecessor's state.
    stores[0].set_run(owner, clip_run("clip-2"))
    assert stores[0].claim_run(owner, "clip-2", "clip") == clip_run("clip-2")
    stores[0].set_run(owner, clip_run("clip-3"))
    assert stores[1].claim_run(owner, "clip-3", "clip") == clip_run("clip-3")
    assert [item.result_id for item in stores[1].results(owner, "clip")] == [1]


def test_memory_budget_drops_the_oldest_of_all_owners() -> None:
    one = result(0).nbytes  # 32 px: the display copies are the images themselves
    store = MemoryStore(budget=3 * one)
    first, second = new_owner_key(), new_owner_key()
    store.add(first, result(1))
    store.add(first, result(2))
    store.add(second, result(3))
    assert store.take_notices(first) == [] and store.held_bytes() == 3 * one
    store.add(second, result(4))
    assert [item.result_id for item in store.results(first)] == [2]
    assert [item.result_id for item in store.results(second)] == [1, 2]
    assert store.held_bytes() <= 3 * one
    assert store.take_notices(first)[0].startswith("1 older result was removed to save memory")
    assert store.take_notices(second) == []
    # A result bigger than the whole budget is still kept, alone.
    big = result(5)
    big.image = picture(5, 200, 200)
    big.content = picture(6, 200, 200)
    store.add(first, big)
    assert [item.result_id for item in store.results(first)] == [3]
    assert store.results(second) == []


def test_memory_runs_outlive_a_short_keep_time() -> None:
    clock = Clock()
    store = MemoryStore(keep_hours=0.01, clock=clock)
    owner = new_owner_key()
    store.set_run(owner, pending("job-1", started=clock.now))
    clock.now += 6 * 3600  # a long run, long past the keep time
    assert store.run(owner).job_id == "job-1"
    clock.now += 18 * 3600
    assert store.run(owner) is None


def test_redis_keys_expire_and_never_hold_the_key(redis_server: RedisServer) -> None:
    clock = Clock()
    store = RedisStore(redis_server.url, keep_hours=2, clock=clock)
    try:
        owner = new_owner_key()
        store.add(owner, result(1, created=START - 3600))  # made an hour ago
        store.set_run(owner, pending())
        names = [name.decode() for name in store.connection.keys(f"nst:owner:{owner_id(owner)}:*")]
        assert sorted(name.rsplit(":", 1)[-1] for name in names) == [
            "1",
            "next_id",
            "results",
            "run",
        ]
        everything = [(name, store.connection.dump(name)) for name in store.connection.keys("*")]
        assert not any(owner.encode() in name + value for name, value in everything)
        ttl = store.connection.pttl(f"nst:owner:{owner_id(owner)}:result:1")
        assert 3590_000 <= ttl <= 3600_000  # two hours from its creation, not from now
        assert store.connection.ttl(f"nst:owner:{owner_id(owner)}:results") == 4 * 3600
        assert store.connection.ttl(f"nst:owner:{owner_id(owner)}:run") == 24 * 3600
    finally:
        store.close()


def test_redis_eviction_is_told_as_removed_to_save_memory(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, keep_hours=1)
    try:
        owner = new_owner_key()
        store.add(owner, result(1))
        store.add(owner, result(2))
        # What maxmemory eviction does: the record's key vanishes before its time.
        store.connection.delete(f"nst:owner:{owner_id(owner)}:result:1")
        assert [item.result_id for item in store.results(owner)] == [2]
        assert store.take_notices(owner)[0].startswith("1 older result was removed to save memory")
    finally:
        store.close()


def test_redis_that_cannot_be_used_says_so_in_one_sentence(redis_server: RedisServer) -> None:
    port = free_port()
    down = RedisStore(f"redis://127.0.0.1:{port}/0", keep_hours=1)
    with pytest.raises(QueueUnavailableError) as error:
        down.results(new_owner_key())
    assert str(error.value) == (
        f"The result store at 127.0.0.1:{port} cannot be reached, so your gallery cannot be "
        "read or saved right now; please try again in a minute."
    )
    wrong = RedisStore(f"redis://:wrong@127.0.0.1:{redis_server.port}/0", keep_hours=1)
    with pytest.raises(QueueUnavailableError, match="refused the password in NST_QUEUE"):
        wrong.add(new_owner_key(), result(1))
    down.close()
    wrong.close()


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "9000"])
def test_malformed_keep_hours_is_one_sentence(monkeypatch, value: str) -> None:
    monkeypatch.setenv("NST_KEEP_HOURS", value)
    with pytest.raises(ValueError) as error:
        keep_hours()
    assert str(error.value) == (
        f"NST_KEEP_HOURS must be a number of hours from 0.01 to 8760 (default 24), got {value!r}."
    )
    with pytest.raises(ValueError, match=r"^NST_KEEP_HOURS must be"):
        MemoryStore()


def test_keep_hours_default_and_value(monkeypatch) -> None:
    monkeypatch.delenv("NST_KEEP_HOURS", raising=False)
    assert keep_hours() == 24.0
    monkeypatch.setenv("NST_KEEP_HOURS", " 0.5 ")
    assert keep_hours() == 0.5 and studio.store.keep_seconds() == 1800.0
    assert MemoryStore().keep_hours == 0.5


def test_malformed_gallery_megabytes_is_one_sentence(monkeypatch) -> None:
    monkeypatch.setenv("NST_GALLERY_MB", "lots")
    with pytest.raises(ValueError) as error:
        studio.store.gallery_bytes_from_env()
    assert str(error.value) == "NST_GALLERY_MB must be a positive number of megabytes, got 'lots'."
    monkeypatch.setenv("NST_GALLERY_MB", "2")
    assert studio.store.gallery_bytes_from_env() == 2 * 2**20


def test_get_store_follows_nst_queue(monkeypatch, redis_server: RedisServer) -> None:
    monkeypatch.setattr(studio.store, "_store", None)
    monkeypatch.setattr(studio.store, "_store_url", None)
    monkeypatch.delenv("NST_QUEUE", raising=False)
    memory = get_store()
    assert isinstance(memory, MemoryStore) and get_store() is memory
    monkeypatch.setenv("NST_QUEUE", redis_server.url)
    remote = get_store()
    assert isinstance(remote, RedisStore) and get_store() is remote
    assert remote.url == redis_server.url
    stores: list[ResultStore] = []
    threads = [threading.Thread(target=lambda: stores.append(get_store())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(store is remote for store in stores)
    monkeypatch.delenv("NST_QUEUE")
    assert isinstance(get_store(), MemoryStore) and get_store() is not memory
    remote.close()


def test_store_module_imports_without_streamlit() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    code = "import sys, studio.store; print('streamlit' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# ----- clips: one more kind of record on the same stores -----


def clip(seed: int = 0, *, size: int = 1000, created: float = 0.0) -> ClipRecord:
    """A clip whose files hold ``size`` bytes together (the poster 100 of them)."""
    rng = np.random.default_rng(seed)
    return ClipRecord(
        result_id=0,
        name=f"walk-{seed}.mp4",
        mp4=rng.bytes(size - 300),
        webp=rng.bytes(100),
        gif=rng.bytes(100),
        poster=rng.bytes(100),
        frames=12,
        frames_planned=24,
        fps=12.0,
        seconds=3.5,
        stopped=True,
        error=None,
        notice="Resampled to 12 fps.",
        config=StyleConfig(size=64, method="instant"),
        video=VideoConfig(max_frames=24),
        style_names=("mosaic",),
        created=created,
    )


def clip_run(job_id: str = "clip-job") -> ClipRun:
    return ClipRun(
        job_id=job_id,
        name="walk.mp4",
        frames=24,
        config=StyleConfig(size=64, method="instant"),
        video=VideoConfig(max_frames=24),
        style_names=("mosaic",),
        started=START,
    )


def test_clips_round_trip_beside_pictures_with_their_own_ids(make_store: Factory) -> None:
    clock = Clock()
    store = make_store(clock=clock)
    owner = new_owner_key()
    store.add(owner, result(1))
    made = clip(1)
    kept = store.add(owner, made)
    assert (kept.result_id, kept.created, kept.nbytes) == (1, START, 1000)
    reader = store if isinstance(store, MemoryStore) else make_store(clock=clock)
    [back] = reader.results(owner, "clip")
    assert back == kept and back.length == 1.0 and back.label == "Clip #1 · walk-1.mp4"
    assert [item.result_id for item in reader.results(owner)] == [1]  # the picture, alone
    assert reader.get(owner, 1, "clip") == kept and reader.get(owner, 2, "clip") is None
    store.delete(owner, 1, "clip")
    assert reader.results(owner, "clip") == [] and len(reader.results(owner)) == 1
    with pytest.raises(ValueError, match=r"^Unknown kind of record 'film'"):
        store.results(owner, "film")


def test_a_clip_run_is_apart_from_the_picture_run(make_store: Factory) -> None:
    store = make_store()
    owner, stranger = new_owner_key(), new_owner_key()
    store.set_run(owner, pending("job-1"))
    assert store.set_run(owner, clip_run("clip-1")) is None  # a picture run is not replaced
    assert store.run(owner).job_id == "job-1"
    assert store.run(owner, "clip") == clip_run("clip-1")
    assert store.run(stranger, "clip") is None
    assert store.take_run(stranger, "clip-1", "clip") is None
    assert store.take_run(owner, "job-1", "clip") is None  # the picture's id is not the clip's
    assert store.set_run(owner, clip_run("clip-2")) == clip_run("clip-1")
    assert store.take_run(owner, "clip-2", "clip") == clip_run("clip-2")
    assert store.run(owner, "clip") is None and store.run(owner).job_id == "job-1"


def test_the_clip_budget_drops_the_oldest_clips_of_everyone(make_store: Factory) -> None:
    clock = Clock()
    store = make_store(clip_budget=2500, clock=clock)
    first, second = new_owner_key(), new_owner_key()
    for owner, seed in ((first, 1), (second, 2)):
        clock.now += 1
        store.add(owner, clip(seed))
    store.add(first, result(3))  # pictures have their own budget
    clock.now += 1
    store.add(second, clip(4))  # 3000 bytes in all: the oldest clip, the first owner's, goes
    assert store.results(first, "clip") == []
    assert [item.result_id for item in store.results(second, "clip")] == [1, 2]
    assert len(store.results(first)) == 1
    assert store.take_notices(first) == [
        "1 older clip was removed to save memory: the gallery keeps at most the 12 newest "
        "clips, fewer when the studio is busy. Download the ones you want to keep."
    ]
    assert store.take_notices(second) == []
    # A clip larger than the whole budget is still kept (it was refused before it started,
    # unless the estimate was short): alone.
    clock.now += 1
    store.add(first, clip(5, size=4000))
    assert [item.name for item in store.results(first, "clip")] == ["walk-5.mp4"]
    assert store.results(second, "clip") == []


def test_clips_expire_with_their_own_notice(make_store: Factory) -> None:
    clock = Clock()
    store = make_store(keep_hours=1, clock=clock)
    owner = new_owner_key()
    store.add(owner, clip(1))
    store.add(owner, result(1))
    clock.now += 3601
    assert store.results(owner, "clip") == [] and store.results(owner) == []
    assert store.take_notices(owner) == [
        "1 result expired: the studio keeps results for 1 hour. Download the ones you want "
        "to keep.",
        "1 clip expired: the studio keeps clips for 1 hour. Download the ones you want to keep.",
    ]


def test_redis_clips_expire_in_redis_and_leave_the_budget(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, keep_hours=2, clip_budget=2500)
    try:
        store.connection.flushdb()
        owner, other = new_owner_key(), new_owner_key()
        store.add(owner, clip(1, created=time.time() - 3600))
        ttl = store.connection.pttl(f"nst:owner:{owner_id(owner)}:clip_result:1")
        assert 3590_000 <= ttl <= 3600_000
        everything = [(name, store.connection.dump(name)) for name in store.connection.keys("*")]
        assert not any(owner.encode() in name + value for name, value in everything)
        # What Redis's expiry does: the clip's key is gone; the budget no longer counts it.
        store.connection.delete(f"nst:owner:{owner_id(owner)}:clip_result:1")
        store.add(other, clip(2))
        store.add(other, clip(3))
        assert [item.result_id for item in store.results(other, "clip")] == [1, 2]
        assert store.connection.zcard("nst:clips:all") == 2
    finally:
        store.close()
