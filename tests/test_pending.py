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


def until(condition, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_slow_answer_is_computed_once_by_an_answer_thread_while_its_askers_wait(fresh):
    calls, gate, got = [], threading.Event(), []

    def ask():
        with pending.deferring():
            got.append(pending.get("k", slow(gate, calls), "Importance sampling…"))
    first = threading.Thread(target=ask)
    first.start()
    assert until(lambda: calls and "k" in pending._tasks)
    task = pending._tasks["k"]
    assert pending._task("k", slow(gate, calls), "Importance sampling…") is task  # a second asker: the same task
    second = threading.Thread(target=ask)
    second.start()
    text = pending.text(task)
    assert text.startswith("Importance sampling… (") and "s so far" in text
    gate.set()
    for t in (first, second):
        t.join(10)
    assert got == [42, 42]
    assert calls == [calls[0]] and calls[0] not in (first.name, second.name)  # once, by an answer thread
    assert until(lambda: not pending._tasks)  # done: the cache above it holds the answer, the table forgets it


def test_a_quick_answer_is_returned_within_the_wait(fresh, monkeypatch):
    monkeypatch.setenv("VAE_LAB_ANSWER_WAIT_S", "5")
    with pending.deferring():
        assert pending.get("k", lambda: "quick", "Computing") == "quick"


def test_a_failing_answer_raises_its_error_in_the_page(fresh):
    def broken():
        time.sleep(0.2)  # past the wait: raised from the waiting loop
        raise ValueError("no such image")
    with pending.deferring(), pytest.raises(ValueError, match="no such image"):
        pending.get("k", broken, "Computing")


def test_answers_past_the_threads_wait_their_turn_and_say_so_and_past_the_queue_are_computed_inline(
        fresh, monkeypatch):
    monkeypatch.setattr(pending, "MAX_QUEUED", 2)
    gate, calls = threading.Event(), []
    tasks = [pending._task(key, slow(gate, calls), f"Answer {key}") for key in "abcd"]  # a, b computed; c, d wait
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [pending.ahead_of(t) for t in tasks] == [None, None, 0, 1]
    assert "s so far" in pending.text(tasks[0])
    assert "waiting its turn for the server's cores: next" in pending.text(tasks[2])
    assert "waiting its turn for the server's cores: 1 other answer first" in pending.text(tasks[3])
    inline = []
    with pending.deferring():
        assert pending.get("e", lambda: inline.append(1) or "inline", "Answer e") == "inline"  # the queue is full
    assert inline == [1]
    gate.set()
    assert [t.future.result(5) for t in tasks] == [42] * 4


def test_a_label_from_a_run_name_is_shown_literally(fresh):
    task = pending.Task(pending.Future(), "Loading run **bold** [x](http://evil)")
    assert "\\*\\*bold\\*\\*" in pending.text(task) and "\\[x\\]" in pending.text(task)


@pytest.mark.app
def test_a_page_whose_answer_is_slow_is_drawn_whole_from_the_answer_threads(tmp_path_factory, monkeypatch):
    """Theory on an image no other test computes, its derivation made slow (past the wait, so the box is drawn
    while it is computed): the script run ends with the page whole, the linked image's, the box gone, and the
    derivation computed by an answer thread, not by the script run."""
    from vae_tf import theory

    root = make_lab(tmp_path_factory, ("fashion-default", "fashion-linear-gaussian"))
    monkeypatch.setenv("VAE_LAB_CHECKPOINTS", str(root))
    monkeypatch.setenv("VAE_LAB_ANSWER_WAIT_S", "0")
    derivation, threads = theory.derivation, []

    def slow_derivation(*args, **kwargs):
        threads.append(threading.current_thread().name)
        time.sleep(1.5)  # three redraws of the box
        return derivation(*args, **kwargs)
    monkeypatch.setattr(theory, "derivation", slow_derivation)
    at = open_app(page="pages/theory.py", session={"run.active": "fashion-default"},
                  params={"page.theory.image": "11"}, check=True)
    assert "5 · Where write-ups go wrong" in texts(at.header) and "test image **#11**" in texts(at.markdown)
    assert not [i for i in at.info if "appears when it is ready" in str(i.value)]  # the box has gone
    # by an answer thread (the server's prewarm computes image 0's in its own), never by the page's script run
    assert any(t.startswith("vae-lab-answer") for t in threads), threads
    assert all(t.startswith(("vae-lab-answer", "vae-lab-job-prewarm")) for t in threads), threads
