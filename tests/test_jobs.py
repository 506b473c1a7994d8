"""ui.jobs' gate: heavy jobs compute a few at a time, the rest wait their turn in arrival order and know
their place; a job stopped while it waits never computes. Plain threads, no Streamlit."""
import threading
import time

import pytest

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
    jobs, inside, release, ran = Jobs(max_running=1), threading.Event(), threading.Event(), []
    a = jobs.start("a", lambda job: inside.set() or release.wait(10))
    assert inside.wait(5)  # a holds the one place before b asks for it
    b = jobs.start("b", lambda job: ran.append("b"))
    time.sleep(0.1)
    b.cancel()
    assert b.finished.wait(5) and "waited its turn" in b.error_text and not ran
    release.set()
    assert a.finished.wait(10) and a.error is None
    c = jobs.start("c", lambda job: "after")  # the gate is free again
    assert c.finished.wait(5) and c.result == "after"


@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_a_job_whose_every_asking_tab_has_closed_is_cancelled_and_the_servers_own_are_not():
    open_tabs, asking = {"s1", "s2"}, ["s1"]
    jobs = Jobs(asker=lambda: asking[0], is_active=lambda sid: sid in open_tabs, abandon_seconds=0.5)
    release = threading.Event()

    def wait(job):
        while not job.stop.is_set() and not release.is_set():
            time.sleep(0.05)
        return "stopped" if job.stop.is_set() else "done"

    a = jobs.start("a", wait)
    asking[0] = "s2"
    assert jobs.get("a") is a and a.sessions == {"s1", "s2"}  # a second tab that finds it shares it
    asking[0] = None  # off a script run: the server's own job
    server_own = jobs.start("own", wait, label="prewarm")
    asking[0] = "s1"
    jobs.get("own")  # a visitor who looks at it does not make it theirs
    assert server_own.sessions is None
    open_tabs.discard("s1")
    time.sleep(2.0)
    assert a.running  # s2 is still open
    open_tabs.discard("s2")
    assert a.finished.wait(5) and a.result == "stopped"
    assert server_own.running
    release.set()
    assert server_own.finished.wait(5) and server_own.result == "done"
