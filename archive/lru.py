"""A small thread-safe LRU mapping for the archive's in-memory caches."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class Lru(Generic[K, V]):
    """At most ``capacity`` entries; the least recently used one goes first. Thread-safe.

    Unlike :func:`functools.lru_cache` it can be looked into without computing anything
    (:meth:`get` with a default), which the non-blocking tile path needs.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: D) -> V | D:
        """The value for ``key`` (now the most recent), else ``default``."""
        with self._lock:
            try:
                value = self._items[key]
            except KeyError:
                return default
            self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        """Insert or replace ``key``, evicting the least recently used past the capacity."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
