"""Give memory back to the operating system after a large request.

A 15 MB transaction grows a worker by ~250 MB of Python objects; once they are freed,
CPython keeps most of it in glibc's heap (fragmented arenas), so a worker that took one
large Bundle stayed at ~380 MB. After a request with a large body the worker collects
garbage and asks glibc to return free pages (``malloc_trim``), in a thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from collections.abc import Callable

LARGE_BODY = 1024 * 1024  # bodies from this size on are followed by a release


def _trimmer() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


MALLOC_TRIM = _trimmer()


def release() -> None:
    """Collect garbage, then return the heap's free pages to the operating system."""
    gc.collect()
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


async def release_after(body_size: int) -> None:
    """``release`` in a thread when the request that just ended had a large body."""
    if body_size >= LARGE_BODY:
        await asyncio.to_thread(release)
