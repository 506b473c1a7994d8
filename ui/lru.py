"""A least-recently-used cache bounded by the bytes of what it holds, not by a count of entries: an uploaded
data set may weigh twice the bundled one, and its float32 test set four times its images. Thread-safe; one per
server (ui.cache)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np


def nbytes(value) -> int:
    """The bytes of the numpy arrays in a value: an array, a tuple or list of them, or a dataclass's fields."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in fields(value))
    return 0


PY_OBJECT_BYTES = 32  # a Python number, or a container's slot and its share of the container


def deep_bytes(value) -> int:
    """nbytes, with the Python objects counted too: a dict or list of numbers read from JSON (a run's history)
    weighs PY_OBJECT_BYTES a number, a string its length."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(PY_OBJECT_BYTES + deep_bytes(k) + deep_bytes(v) for k, v in value.items())
    if isinstance(value, (tuple, list, set, frozenset)):
        return sum(PY_OBJECT_BYTES // 4 + deep_bytes(v) for v in value)
    if isinstance(value, (str, bytes)):
        return len(value)
    if is_dataclass(value) and not isinstance(value, type):
        return sum(deep_bytes(getattr(value, f.name)) for f in fields(value))
    return PY_OBJECT_BYTES


class ByteLRU:
    def __init__(self, max_bytes: int, size_of: Callable[[Any], int] = nbytes):
        self.max_bytes, self._size_of = int(max_bytes), size_of
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}
        self.bytes = 0

    def get(self, key: Hashable, make: Callable[[], Any]):
        """The value for key, made if it is not held: by one caller at a time per key (others asking for it
        wait for that one: two threads building the same Keras model at once is neither cheap nor safe), while
        other keys are served. The least recently used values are then dropped until the rest fit max_bytes
        (the newest always stays, even alone over the bound). A make that raises holds nothing."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if key in self._items:  # made by the caller this one waited for
                    self._items.move_to_end(key)
                    return self._items[key][0]
            try:
                value = make()
                size = self._size_of(value)
                with self._lock:
                    self._items[key] = (value, size)
                    self.bytes += size
                    while self.bytes > self.max_bytes and len(self._items) > 1:
                        _, (_, dropped) = self._items.popitem(last=False)
                        self.bytes -= dropped
            finally:
                with self._lock:
                    self._making.pop(key, None)
        return value

    def keys(self) -> list:
        """What is held now, least recently used first."""
        with self._lock:
            return list(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items
