"""The cache on both backends (process memory and a real Redis): values and their TTL, JSON round trips,
and the stampede guard of get_or_set, within one process and across several."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio
from pydantic import ValidationError

from pentad.core import cache as cache_module
from pentad.core.cache import Cache, CacheUnavailable, MemoryCache, RedisCache, build_cache
from pentad.core.config import CacheSettings
from tests.core.conftest import RedisScratch
from tests.factories import free_port

WAIT_BOUND_SECONDS = 10.0
"""Every wait in this module gives up after this long, so a broken guard fails rather than hangs."""

MakeCache = Callable[..., Cache]


class CountingLoader:
    """A loader that counts its runs and takes a moment, so concurrent callers overlap it."""

    def __init__(self, value: Any = None, *, pause: float = 0.05, failures: int = 0) -> None:
        self.value = value
        self.pause = pause
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        await asyncio.sleep(self.pause)
        if self.calls <= self.failures:
            raise RuntimeError(f"load {self.calls} failed")
        return self.value


@pytest.fixture
async def redis_prefix(test_redis: RedisScratch) -> AsyncIterator[str]:
    """A key prefix no other test or run uses; its keys are deleted afterwards."""
    prefix = f"pentad-test:cache:{uuid.uuid4().hex}:"
    yield prefix
    async with redis.asyncio.Redis.from_url(test_redis.url) as client:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)


@dataclass(frozen=True)
class CacheBackend:
    redis_url: str | None
    """None for the memory backend."""
    key_prefix: str


@pytest.fixture(params=["memory", "redis"])
def cache_backend(request: pytest.FixtureRequest) -> CacheBackend:
    if request.param == "memory":
        return CacheBackend(None, "")
    scratch: RedisScratch = request.getfixturevalue("test_redis")
    return CacheBackend(scratch.url, request.getfixturevalue("redis_prefix"))


@pytest.fixture
async def make_cache(cache_backend: CacheBackend) -> AsyncIterator[MakeCache]:
    """Builds caches of one backend; on Redis every cache it builds shares one key space, like the
    processes of one deployment."""
    made: list[Cache] = []

    def make(*, default_ttl: float = 60.0) -> Cache:
        built: Cache
        if cache_backend.redis_url is None:
            built = MemoryCache(default_ttl=default_ttl, max_entries=1000)
        else:
            built = RedisCache(
                cache_backend.redis_url,
                default_ttl=default_ttl,
                lock_timeout=5.0,
                key_prefix=cache_backend.key_prefix,
            )
        made.append(built)
        return built

    yield make
    for built in made:
        await built.close()


async def test_values_round_trip_as_json(make_cache: MakeCache) -> None:
    cache = make_cache()
    value = {"name": "Zoë", "scores": [1, 2.5, None], "nested": {"ok": True}}
    await cache.set("profile", value)
    assert await cache.get("profile") == value
    await cache.set("pair", (1, 2))
    assert await cache.get("pair") == [1, 2]
    assert await cache.get("absent") is None


async def test_a_value_that_is_not_json_is_refused(make_cache: MakeCache) -> None:
    with pytest.raises(TypeError):
        await make_cache().set("bad", object())


async def test_set_replaces_and_delete_removes(make_cache: MakeCache) -> None:
    cache = make_cache()
    await cache.set("k", 1)
    await cache.set("k", 2)
    assert await cache.get("k") == 2
    await cache.delete("k")
    assert await cache.get("k") is None
    await cache.delete("k")


async def test_an_entry_expires_after_its_ttl(make_cache: MakeCache) -> None:
    cache = make_cache()
    await cache.set("brief", "here", ttl=0.05)
    await cache.set("lasting", "here", ttl=60)
    assert await cache.get("brief") == "here"
    await asyncio.sleep(0.2)
    assert await cache.get("brief") is None
    assert await cache.get("lasting") == "here"


async def test_a_ttl_must_be_positive(make_cache: MakeCache) -> None:
    with pytest.raises(ValueError, match="positive"):
        await make_cache().set("k", 1, ttl=0)


async def test_get_or_set_loads_on_a_miss_only(make_cache: MakeCache) -> None:
    cache = make_cache()
    loader = CountingLoader({"rows": [1, 2]}, pause=0)
    assert await cache.get_or_set("report", 60, loader) == {"rows": [1, 2]}
    assert await cache.get_or_set("report", 60, loader) == {"rows": [1, 2]}
    assert loader.calls == 1
    assert await cache.get("report") == {"rows": [1, 2]}


async def test_get_or_set_caches_a_null_value(make_cache: MakeCache) -> None:
    cache = make_cache()
    loader = CountingLoader(None, pause=0)
    assert await cache.get_or_set("nothing", None, loader) is None
    assert await cache.get_or_set("nothing", None, loader) is None
    assert loader.calls == 1


async def test_concurrent_callers_share_one_load(make_cache: MakeCache) -> None:
    cache = make_cache()
    loader = CountingLoader("fresh")
    async with asyncio.timeout(WAIT_BOUND_SECONDS):
        results = await asyncio.gather(*(cache.get_or_set("hot", 60, loader) for _ in range(50)))
    assert results == ["fresh"] * 50
    assert loader.calls == 1


async def test_different_keys_load_independently(make_cache: MakeCache) -> None:
    cache = make_cache()
    loaders = [CountingLoader(n) for n in range(5)]
    async with asyncio.timeout(WAIT_BOUND_SECONDS):
        results = await asyncio.gather(*(cache.get_or_set(f"key-{n}", 60, loaders[n]) for n in range(5)))
    assert results == list(range(5))
    assert [loader.calls for loader in loaders] == [1] * 5


async def test_a_failed_load_caches_nothing_and_the_next_caller_loads(make_cache: MakeCache) -> None:
    cache = make_cache()
    loader = CountingLoader("second time lucky", failures=1)
    async with asyncio.timeout(WAIT_BOUND_SECONDS):
        results = await asyncio.gather(
            *(cache.get_or_set("flaky", 60, loader) for _ in range(5)), return_exceptions=True
        )
    assert [str(result) for result in results if isinstance(result, RuntimeError)] == ["load 1 failed"]
    assert [result for result in results if not isinstance(result, Exception)] == ["second time lucky"] * 4
    assert loader.calls == 2


async def test_the_stampede_guard_spans_processes_on_redis(
    test_redis: RedisScratch, redis_prefix: str
) -> None:
    """Several caches on one Redis stand for several workers: the loader still runs once."""
    caches = [
        RedisCache(test_redis.url, default_ttl=60, lock_timeout=5, key_prefix=redis_prefix) for _ in range(4)
    ]
    loader = CountingLoader("shared", pause=0.2)
    try:
        async with asyncio.timeout(WAIT_BOUND_SECONDS):
            results = await asyncio.gather(
                *(caches[n % len(caches)].get_or_set("hot", 60, loader) for n in range(40))
            )
    finally:
        for cache in caches:
            await cache.close()
    assert results == ["shared"] * 40
    assert loader.calls == 1


async def test_a_waiter_takes_the_value_another_process_stored(
    test_redis: RedisScratch, redis_prefix: str
) -> None:
    waiter = RedisCache(test_redis.url, default_ttl=60, lock_timeout=5, key_prefix=redis_prefix)
    other = RedisCache(test_redis.url, default_ttl=60, lock_timeout=5, key_prefix=redis_prefix)
    loader = CountingLoader("from the waiter")
    try:
        async with redis.asyncio.Redis.from_url(test_redis.url) as client:
            await client.set(f"{redis_prefix}l:report", "another-process", px=5000)
        async with asyncio.timeout(WAIT_BOUND_SECONDS):
            waiting = asyncio.create_task(waiter.get_or_set("report", 60, loader))
            await asyncio.sleep(0.1)
            await other.set("report", "from the holder")
            assert await waiting == "from the holder"
    finally:
        await waiter.close()
        await other.close()
    assert loader.calls == 0


async def test_a_lost_lock_holder_delays_its_key_but_never_blocks_it(
    test_redis: RedisScratch, redis_prefix: str
) -> None:
    cache = RedisCache(test_redis.url, default_ttl=60, lock_timeout=0.3, key_prefix=redis_prefix)
    loader = CountingLoader("loaded anyway", pause=0)
    try:
        async with redis.asyncio.Redis.from_url(test_redis.url) as client:
            # A holder that died holding a lock with a far longer life than this cache allows.
            await client.set(f"{redis_prefix}l:orphan", "dead-process", px=60_000)
        async with asyncio.timeout(WAIT_BOUND_SECONDS):
            assert await cache.get_or_set("orphan", 60, loader) == "loaded anyway"
    finally:
        await cache.close()
    assert loader.calls == 1


async def test_the_lock_is_released_after_a_load(test_redis: RedisScratch, redis_prefix: str) -> None:
    cache = RedisCache(test_redis.url, default_ttl=60, lock_timeout=5, key_prefix=redis_prefix)
    try:
        await cache.get_or_set("done", 60, CountingLoader(1, pause=0))
        with pytest.raises(RuntimeError):
            await cache.get_or_set("failed", 60, CountingLoader(1, pause=0, failures=1))
        async with redis.asyncio.Redis.from_url(test_redis.url) as client:
            assert [key async for key in client.scan_iter(match=f"{redis_prefix}l:*")] == []
    finally:
        await cache.close()


async def test_an_unreachable_redis_passes_through_but_refuses_to_forget() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", default_ttl=60, lock_timeout=1)
    loader = CountingLoader("computed", pause=0)
    try:
        async with asyncio.timeout(WAIT_BOUND_SECONDS):
            await cache.set("k", 1)
            assert await cache.get("k") is None
            assert await cache.get_or_set("k", 60, loader) == "computed"
            with pytest.raises(CacheUnavailable) as caught:
                await cache.delete("k")
    finally:
        await cache.close()
    assert (caught.value.status, caught.value.code) == (503, "cache_unavailable")
    assert loader.calls == 1


async def test_the_memory_cache_keeps_the_most_recently_written() -> None:
    cache = MemoryCache(default_ttl=60, max_entries=3)
    for key in ("a", "b", "c"):
        await cache.set(key, key)
    await cache.set("a", "a again")
    await cache.set("d", "d")
    assert [await cache.get(key) for key in ("a", "b", "c", "d")] == ["a again", None, "c", "d"]


async def test_the_memory_cache_expires_by_its_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1000.0
    monkeypatch.setattr(cache_module, "monotonic", lambda: now)
    cache = MemoryCache(default_ttl=30, max_entries=10)
    await cache.set("k", "v")
    now += 29.9
    assert await cache.get("k") == "v"
    now += 0.2
    assert await cache.get("k") is None


def test_the_url_picks_the_backend() -> None:
    assert isinstance(build_cache(CacheSettings()), MemoryCache)
    redis_settings = CacheSettings(url="redis://127.0.0.1:6379/3", default_ttl=7)
    redis_cache = build_cache(redis_settings)
    assert isinstance(redis_cache, RedisCache)
    assert redis_cache.default_ttl == 7
    with pytest.raises(ValidationError, match=r"memory:// or a redis://"):
        CacheSettings(url="memcached://127.0.0.1")


# ------------------------------------------------------------------- counters


async def test_incr_counts_from_zero_and_reads_back_as_an_integer(make_cache: MakeCache) -> None:
    cache = make_cache()
    assert await cache.incr("clicks") == 1
    assert await cache.incr("clicks", by=4) == 5
    assert await cache.incr("clicks", by=-2) == 3
    assert await cache.get("clicks") == 3
    await cache.set("preset", 10)
    assert await cache.incr("preset") == 11


async def test_concurrent_increments_are_never_lost_across_processes(
    make_cache: MakeCache, cache_backend: CacheBackend
) -> None:
    # On Redis, two caches sharing one key space are two processes of a deployment.
    caches = [make_cache(), make_cache()] if cache_backend.redis_url else [make_cache()]
    results = await asyncio.gather(*(caches[n % len(caches)].incr("hits") for n in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await caches[0].get("hits") == 200


async def test_a_counter_lives_its_ttl_from_creation_and_is_not_extended(make_cache: MakeCache) -> None:
    cache = make_cache()
    await cache.incr("window", ttl=0.5)
    assert await cache.incr("window", ttl=60) == 2
    await asyncio.sleep(0.7)
    assert await cache.get("window") is None
    assert await cache.incr("window", ttl=60) == 1


async def test_incr_refuses_a_value_that_is_not_a_counter_and_changes_nothing(make_cache: MakeCache) -> None:
    cache = make_cache()
    await cache.set("name", "Zoë")
    await cache.set("ratio", 2.5)
    for key in ("name", "ratio"):
        with pytest.raises(ValueError, match="other than a counter"):
            await cache.incr(key)
    assert await cache.get_many(["name", "ratio"]) == ["Zoë", 2.5]
    with pytest.raises(TypeError):
        await cache.incr("clicks", by=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        await cache.incr("clicks", ttl=0)
    assert await cache.get("clicks") is None


async def test_get_many_reads_keys_in_order(make_cache: MakeCache) -> None:
    cache = make_cache()
    await cache.set("a", {"x": 1})
    await cache.incr("b", by=7)
    assert await cache.get_many(["b", "missing", "a"]) == [7, None, {"x": 1}]
    assert await cache.get_many([]) == []


async def test_a_counter_on_an_unreachable_redis_is_refused_not_faked() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", default_ttl=60, lock_timeout=1)
    try:
        async with asyncio.timeout(WAIT_BOUND_SECONDS):
            assert await cache.get_many(["a", "b"]) == [None, None]
            for _ in range(2):  # the second while passing through, without another timeout
                with pytest.raises(CacheUnavailable):
                    await cache.incr("clicks")
    finally:
        await cache.close()
