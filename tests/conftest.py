"""Shared fixtures: small data sets that make tiny models train in a second."""
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The AppTests' pages compute every answer in their own script run, as before ui.pending (what a test checks is
# computed in its run), except where a test sets another wait; the browser tests' servers and the benchmarks'
# start with the app's own default (tests/test_browser.py, benchmarks/app.py).
os.environ.setdefault("VAE_LAB_ANSWER_WAIT_S", "inf")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vae_tf.data import Dataset, load_fashion_mnist  # noqa: E402


def make_tiny_dataset(n_train=512, n_test=128, side=8, seed=0) -> Dataset:
    """Four classes of 8×8 uint8 images (a bright quadrant each, plus noise): learnable in a few steps."""
    rng = np.random.default_rng(seed)

    def images(n):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 60, (n, side, side))
        h = side // 2
        for c in range(4):
            r, k = divmod(c, 2)
            x[y == c, r * h:(r + 1) * h, k * h:(k + 1) * h] += 190
        return x.clip(0, 255).astype(np.uint8), y.astype(np.int64)

    x_train, y_train = images(n_train)
    x_test, y_test = images(n_test)
    return Dataset("tiny", x_train, y_train, x_test, y_test, ("TL", "TR", "BL", "BR"))


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    return make_tiny_dataset()


@pytest.fixture(scope="session")
def fashion() -> Dataset:
    return load_fashion_mnist()


@pytest.fixture(scope="session")
def npz(tmp_path_factory, tiny_dataset):
    """The tiny data set written as a user's .npz file, for the CLI and the distributed runs."""
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    ds = tiny_dataset
    np.savez(path, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    return path


# -- the app's tests: a checkpoints root of shipped runs, and the app opened on a page -----------------------
REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
SHIPPED = ("fashion-default", "fashion-2d", "fashion-linear-gaussian", "fashion-vae5", "fashion-iwae5")
APP_TEST_FILES = {"test_app.py", "test_bad_input.py", "test_pages_explore.py"}
# Library tests of several seconds each (annealing, optimising q*, convolutions, two-process clusters, PPCA runs):
SLOW_FILES = {"test_ais.py", "test_gap.py", "test_conv.py", "test_distribute.py", "test_ppca.py"}
SLOW_TESTS = {"test_stop_then_resume_matches_uninterrupted_run",
              "test_a_kill_inside_the_epoch_end_write_leaves_the_last_whole_epoch", "test_python_dash_m_train",
              "test_bench_runs_the_benchmark_outside_the_library", "test_stop_lands_at_the_end_of_the_current_call",
              "test_iwae_and_learned_sigma_train", "test_fast_path_matches_one_step_eager_path",
              "test_same_seed_same_run_different_seed_different", "test_interrupt_saves_the_steps_done"}


def pytest_collection_modifyitems(items):
    """`-m "not app and not browser"`: the library's tests alone; `and not slow` too: the quick loop."""
    for item in items:
        if item.path.name in APP_TEST_FILES or "_page" in item.path.name:  # test_<name>_page.py: a page's AppTests
            item.add_marker(pytest.mark.app)
        if item.path.name in SLOW_FILES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def make_lab(tmp_path_factory, names=SHIPPED) -> Path:
    """A checkpoints root holding copies of the named shipped runs (the repository's checkpoints/ is never written)."""
    root = tmp_path_factory.mktemp("checkpoints")
    for name in names:
        src = REPO / "checkpoints" / name
        assert (src / "meta.json").is_file(), f"shipped run {name} is missing (checkpoints/make_shipped_runs.sh)"
        shutil.copytree(src, root / name)
    return root


def open_app(run: str | None = None, page: str | None = None, session: dict | None = None,
             params: dict | None = None, check: bool = False):
    """The app after its first run, with the session state and URL parameters given, the active run picked
    and then switched to `page` (AppTest cannot open a page of st.navigation before the first run)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in (session or {}).items():
        at.session_state[k] = v
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.run()
    if run:
        at.selectbox(key="run.active").set_value(run).run()
    if page:
        at.switch_page(page).run()
    if check:
        assert not at.exception, [e.message for e in at.exception]
    return at


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def finish_training(at, timeout: float = 300):
    """Wait for every training the app started in the background (ui.training), then run the app again,
    which reports how it went."""
    from ui import cache

    for job in cache.trainings().values():
        assert job.finished.wait(timeout), f"training {job.name} did not finish in {timeout} s"
    return at.run()


RSS_PRELUDE = """
import numpy as np
from ui import memory
from vae_tf.config import Config
from vae_tf.model import VAE

def rss_mb():
    memory.give_back()
    return int(next(v for v in open("/proc/self/status") if v.startswith("VmRSS")).split()[1]) / 1024
"""


def run_memory_script(body: str, timeout: float = 300) -> str:
    """`body` in a Python process of its own (what one process keeps is the question), run from the repository
    with numpy, VAE, Config and rss_mb() (resident MB once the heap is trimmed) defined; its stdout. Fails the
    test, with the end of its stderr, where the script fails."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", RSS_PRELUDE + body], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout
