"""ui.jobs' gate: heavy jobs compute a few at a time, the rest wait their turn in arrival order and know
their place; a job stopped while it waits never computes. Plain threads, no Streamlit."""
import threading
import time

from ui.jobs import Jobs


def test_jobs_beyond_the_gate_wait_their_turn_in_order_and_say_their_place():
    jobs, release, order = Jobs(max_running=1), threading.Event(), []

    def work(name):
        def run(job):
            order.append(name)
            release.wait(10)
            return name
        return run

    a = jobs.start("a", work("a"))
    while not order:  # a is computing
        pass
    b, c = jobs.start("b", work("b")), jobs.start("c", work("c"))
    light = jobs.start("light", lambda job: "at once", heavy=False)  # waits on others only: never queued
    assert light.finished.wait(5) and light.result == "at once"
    deadline = time.monotonic() + 5
    while (b.place, c.place) != (1, 2) and time.monotonic() < deadline:  # their threads reach the gate
        time.sleep(0.01)
    assert (a.place, b.place, c.place) == (0, 1, 2)
    release.set()
    assert c.finished.wait(10) and order == ["a", "b", "c"]
    assert [j.result for j in (a, b, c)] == ["a", "b", "c"] and c.place == 0


def test_a_job_stopped_while_it_waits_never_computes():
    jobs, release, ran = Jobs(max_running=1), threading.Event(), []
    a = jobs.start("a", lambda job: release.wait(10))
    b = jobs.start("b", lambda job: ran.append("b"))
    time.sleep(0.1)
    b.cancel()
    assert b.finished.wait(5) and "waited its turn" in b.error_text and not ran
    release.set()
    assert a.finished.wait(10) and a.error is None
    c = jobs.start("c", lambda job: "after")  # the gate is free again
    assert c.finished.wait(5) and c.result == "after"
