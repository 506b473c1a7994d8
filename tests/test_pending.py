"""ui.pending: an answer a page's body asks for is computed off its script run when it takes longer than the wait;
one computation per key; the page shows a box and is drawn whole once the answer is there."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import make_lab, open_app, texts

from ui import pending


@pytest.fixture
def fresh(monkeypatch):
    """Its own answer threads and table, and a short wait."""
    monkeypatch.setenv("VAE_LAB_ANSWER_WAIT_S", "0.05")
    pool = ThreadPoolExecutor(2)
    monkeypatch.setattr(pending, "_pool", pool)
    monkeypatch.setattr(pending, "_tasks", {})
    yield
    pool.shutdown(wait=True, cancel_futures=True)


def slow(gate: threading.Event, calls: list, value=42):
    def compute():
        calls.append(threading.current_thread().name)
        assert gate.wait(10)
        return value
    return compute


def test_outside_a_pages_body_an_answer_is_computed_in_the_caller(fresh):
    calls = []
    gate = threading.Event()
    gate.set()
    assert pending.get("k", slow(gate, calls), "Computing") == 42
    assert calls == [threading.current_thread().name]


def test_a_slow_answer_raises_pending_then_is_there_and_is_computed_once(fresh):
    calls, gate = [], threading.Event()
    with pending.deferring():
        with pytest.raises(pending.Pending) as first:
            pending.get("k", slow(gate, calls), "Importance sampling…")
        with pytest.raises(pending.Pending) as second:  # another visitor asks the same: the same computation
            pending.get("k", slow(gate, calls), "Importance sampling…")
    assert second.value.task is first.value.task
    text = pending.text(first.value.task)
    assert text.startswith("Importance sampling… (") and "s so far" in text
    gate.set()
    assert first.value.task.future.result(5) == 42
    assert len(calls) == 1 and calls[0] != threading.current_thread().name
    assert pending._tasks == {}  # done: the cache above it holds the answer, the table forgets it


def test_a_quick_answer_is_returned_within_the_wait(fresh, monkeypatch):
    monkeypatch.setenv("VAE_LAB_ANSWER_WAIT_S", "5")
    with pending.deferring():
        assert pending.get("k", lambda: "quick", "Computing") == "quick"


def test_a_failing_answer_raises_its_error_in_the_page(fresh):
    def broken():
        raise ValueError("no such image")
    with pending.deferring(), pytest.raises(ValueError, match="no such image"):
        pending.get("k", broken, "Computing")


def test_answers_past_the_threads_wait_their_turn_and_say_so_and_past_the_queue_are_computed_inline(
        fresh, monkeypatch):
    monkeypatch.setattr(pending, "MAX_QUEUED", 2)
    gate, calls, tasks = threading.Event(), [], []
    with pending.deferring():
        for key in ("a", "b", "c", "d"):  # two threads: a and b are computed, c and d wait in that order
            with pytest.raises(pending.Pending) as p:
                pending.get(key, slow(gate, calls), f"Answer {key}")
            tasks.append(p.value.task)
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [pending.ahead_of(t) for t in tasks] == [None, None, 0, 1]
        assert "s so far" in pending.text(tasks[0])
        assert "waiting its turn for the server's cores: next" in pending.text(tasks[2])
        assert "waiting its turn for the server's cores: 1 other answer first" in pending.text(tasks[3])
        inline = []
        assert pending.get("e", lambda: inline.append(1) or "inline", "Answer e") == "inline"  # the queue is full
        assert inline == [1]
    gate.set()
    assert [t.future.result(5) for t in tasks] == [42] * 4


def test_a_label_from_a_run_name_is_shown_literally(fresh):
    task = pending.Task(pending.Future(), "Loading run **bold** [x](http://evil)")
    assert "\\*\\*bold\\*\\*" in pending.text(task) and "\\[x\\]" in pending.text(task)


@pytest.mark.app
def test_a_page_whose_answer_is_slow_shows_the_box_then_its_numbers(tmp_path_factory, monkeypatch):
    """Theory on an image no other test computes: the first run shows the box (and no exception) under the
    page's title; once the answers are there the page is drawn whole, the linked image's, without the box."""
    root = make_lab(tmp_path_factory, ("fashion-default", "fashion-linear-gaussian"))
    monkeypatch.setenv("VAE_LAB_CHECKPOINTS", str(root))
    monkeypatch.setenv("VAE_LAB_ANSWER_WAIT_S", "0")
    at = open_app(page="pages/theory.py", session={"run.active": "fashion-default"},
                  params={"page.theory.image": "11"}, check=True)
    boxes = [i for i in at.info if "The rest of this page appears when it is ready" in str(i.value)]
    assert boxes, texts(at.info)
    assert at.title[0].value.startswith("Theory")  # drawn before the first answer it waits for (the run's loading)
    for _ in range(20):  # each run hands the next answer it needs to the threads
        deadline = time.monotonic() + 120
        while pending._tasks and time.monotonic() < deadline:
            time.sleep(0.1)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        if not any("appears when it is ready" in str(i.value) for i in at.info):
            break
    headers = texts(at.header)
    assert "5 · Where write-ups go wrong" in headers and "test image **#11**" in texts(at.markdown)
