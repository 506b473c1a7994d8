"""ui.lru: a cache bounded by the bytes it holds, least recently used out first."""
import threading

import numpy as np
import pytest

from ui.lru import ByteLRU, deep_bytes, nbytes


def test_the_least_recently_used_go_until_the_rest_fit_the_bytes():
    made = []
    cache = ByteLRU(max_bytes=3000)

    def make(name, n):
        def run():
            made.append(name)
            return np.zeros(n, np.uint8)
        return run

    a = cache.get("a", make("a", 1000))
    cache.get("b", make("b", 1000))
    assert cache.get("a", make("a", 1000)) is a and made == ["a", "b"]  # held: not made again; a is now newest
    cache.get("c", make("c", 1500))  # 3500 bytes: the least recently used, b, goes
    assert "b" not in cache and "a" in cache and "c" in cache and cache.bytes == 2500
    big = cache.get("big", make("big", 10_000))  # alone over the bound: kept, the rest dropped
    assert big.nbytes == 10_000 and "big" in cache and "a" not in cache and cache.bytes == 10_000


def test_sizes_count_every_array_inside_and_a_failed_make_holds_nothing():
    from vae_tf.data import Dataset

    ds = Dataset("x", np.zeros((10, 4, 4), np.uint8), np.zeros(10, np.int64), np.zeros((5, 4, 4), np.uint8), None, ())
    assert nbytes(ds) == 160 + 80 + 80 and nbytes((np.zeros(3), [np.zeros(2, np.float32)])) == 32
    cache = ByteLRU(100)

    def boom():
        raise ValueError("cannot load")
    try:
        cache.get("k", boom)
    except ValueError:
        pass
    assert "k" not in cache and cache.bytes == 0


def test_threads_asking_at_once_get_one_value_made_once():
    made, start = [], threading.Event()

    def make():
        made.append(1)
        start.wait(1.0)  # the others ask while this one is still making it
        return np.ones(100)
    cache, out = ByteLRU(10**6), []
    threads = [threading.Thread(target=lambda: out.append(cache.get("k", make))) for _ in range(8)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join()
    assert len(out) == 8 and len(made) == 1 and cache.bytes == 800 and all(o is out[0] for o in out)


def test_a_key_being_made_does_not_hold_up_another():
    slow_started, release = threading.Event(), threading.Event()

    def slow():
        slow_started.set()
        release.wait(5.0)
        return np.ones(1)
    cache = ByteLRU(10**6)
    t = threading.Thread(target=lambda: cache.get("slow", slow))
    t.start()
    slow_started.wait(5.0)
    assert cache.get("fast", lambda: np.zeros(1)).tolist() == [0.0] and "slow" not in cache
    release.set()
    t.join()
    assert "slow" in cache


def test_loaded_runs_are_counted_by_their_weights_history_and_compiled_functions():
    """ui.cache's run cache: bounded by bytes (a big run weighs what eight small ones do), its size per run the
    float32 weights of weights.npz, four times history.json's bytes and COMPILED_MB."""
    from ui import cache
    from vae_tf import runs

    path = runs.run_dir("fashion-vae5")
    run = runs.load_run(path)
    with np.load(path / runs.WEIGHTS_FILE) as w:
        weights = sum(w[k].size for k in w.files if k != runs.STEPS_KEY)
    expected = 4 * weights + 4 * (path / runs.HISTORY_FILE).stat().st_size + cache.COMPILED_MB * 2**20
    assert cache.run_bytes(run) == expected

    held = ByteLRU(2.5 * expected, size_of=cache.run_bytes)
    for name in ("fashion-vae5", "fashion-iwae5", "fashion-linear-gaussian"):
        held.get(name, lambda name=name: runs.load_run(runs.run_dir(name)))
    assert "fashion-vae5" not in held and "fashion-iwae5" in held and "fashion-linear-gaussian" in held


def test_answers_are_kept_once_per_argument_shared_read_only_and_bounded_by_bytes(monkeypatch):
    """ui.answers.answer, st.cache_data's role: arguments named with an underscore are not part of the key; arrays
    come back shared and read-only; copy=True gives each caller its own; the cache drops the least recently
    used answers once their bytes pass the bound."""
    from ui import answers

    calls = []

    @answers.answer()
    def grid(name: str, n: int, _model=None):
        calls.append((name, n))
        return np.zeros((n, 1024), np.float64), {"n": n}

    @answers.answer(copy=True)
    def history(name: str):
        return {"epochs": [{"elbo": -100.0}]}

    monkeypatch.setattr(answers, "answer_cache", lambda held=ByteLRU(3 * 2**20, size_of=lambda v: deep_bytes(v)
                                                                     + answers.ANSWER_OVERHEAD): held)
    a = grid("run-a", 128, _model=object())
    assert grid("run-a", 128, _model=object()) is a and calls == [("run-a", 128)]  # the model is not in the key
    with pytest.raises(ValueError, match="read-only"):
        a[0][0, 0] = 1.0
    h = history("run-a")
    h["epochs"].append("changed by a page")
    assert history("run-a") == {"epochs": [{"elbo": -100.0}]}
    for n in (256, 128 + 1, 256 + 1):  # 2 MB, 1 MB and 2 MB more: the first ones go
        grid("run-b", n)
    grid("run-a", 128)
    assert calls[-1] == ("run-a", 128) and len(calls) == 5


def test_deep_bytes_counts_json_numbers_and_arrays():
    from ui.lru import PY_OBJECT_BYTES, deep_bytes

    assert deep_bytes(np.zeros(10)) == 80
    assert deep_bytes([1.0, 2.0]) == 2 * (PY_OBJECT_BYTES // 4 + PY_OBJECT_BYTES)
    assert deep_bytes({"ab": 1.0}) == PY_OBJECT_BYTES + 2 + PY_OBJECT_BYTES
