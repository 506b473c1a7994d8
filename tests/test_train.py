"""Training: progress reports, reproducibility, stop and resume, divergence, warm-up."""
import itertools
import math
import shutil
import threading
from dataclasses import asdict

import numpy as np
import pytest
import tensorflow as tf

from vae_tf import runs
from vae_tf.config import Config
from vae_tf.train import EpochReport, StepReport, Trainer, TrainingDiverged, epoch_order, train

# 512 training images / 32 = 16 steps an epoch, 48 in all: well under a second on a CPU.
CFG = Config(dataset="tiny.npz", latent_dim=2, hidden=(32,), batch_size=32, epochs=3, learning_rate=1e-2, seed=1)
STEPS_PER_EPOCH, TOTAL = 16, 48


def weights_of(run_or_model):
    model = getattr(run_or_model, "model", run_or_model)
    return model.named_weights()


def assert_same_weights(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=atol, err_msg=k)


def timeless(history):
    """History without the wall-clock fields, which differ between two identical runs."""
    return {"steps": history["steps"],
            "epochs": [{k: v for k, v in e.items() if k not in ("seconds", "images_per_sec")}
                       for e in history["epochs"]]}


@pytest.fixture(scope="module")
def full(tmp_path_factory, tiny_dataset):
    """One uninterrupted run, with every report the callbacks received."""
    steps, epochs = [], []
    untrained = Trainer(CFG, tiny_dataset).evaluate_test()
    result = train(CFG, tiny_dataset, tmp_path_factory.mktemp("full") / "run", on_step=steps.append,
                   on_epoch=epochs.append)
    return result, steps, epochs, untrained


@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_test_elbo_improves(full):
    result, _, epochs, untrained = full
    elbos = [e.test_elbo for e in epochs]
    assert len(elbos) == 3 and all(math.isfinite(v) for v in elbos)
    assert elbos[-1] > elbos[0] > untrained[0] + 1.0  # nats/image
    assert elbos[-1] < 0  # a bound on log p(x) of 64 binary pixels
    assert result.history["epochs"][-1]["test_elbo"] == elbos[-1]


def test_step_reports_are_sane(full):
    result, steps, _, _ = full
    assert all(isinstance(r, StepReport) for r in steps)
    assert [r.step for r in steps] == list(range(1, TOTAL + 1))
    assert all(r.total_steps == TOTAL for r in steps)
    assert [r.images_seen for r in steps] == [32 * i for i in range(1, TOTAL + 1)]
    assert [r.epoch for r in steps] == pytest.approx([i / STEPS_PER_EPOCH for i in range(1, TOTAL + 1)])
    assert all(r.eta_seconds >= 0 and r.images_per_sec > 0 and r.seconds > 0 for r in steps)
    assert steps[-1].eta_seconds == 0
    assert all(b.seconds >= a.seconds for a, b in itertools.pairwise(steps))
    assert all(r.elbo == pytest.approx(r.recon - r.kl) and r.kl >= 0 and r.loss == pytest.approx(-r.elbo, rel=1e-4)
               for r in steps)
    assert (result.steps_done, result.epochs_done, result.stopped) == (TOTAL, 3.0, False)


def test_epoch_reports_are_sane_and_saved(full):
    result, steps, epochs, _ = full
    assert all(isinstance(r, EpochReport) for r in epochs) and [r.epoch for r in epochs] == [1, 2, 3]
    assert [asdict(r) for r in epochs] == result.history["epochs"]
    for r in epochs:
        assert r.kl_weight == 1.0 and r.seconds > 0 and r.images_per_sec > 0
        assert r.train_elbo == pytest.approx(r.train_recon - r.train_kl)
        assert r.test_elbo == pytest.approx(r.test_recon - r.test_kl) and r.test_kl > 0
    # The epoch's train ELBO is the mean of its steps' ELBOs.
    assert epochs[0].train_elbo == pytest.approx(np.mean([s.elbo for s in steps[:STEPS_PER_EPOCH]]), rel=1e-6)
    assert [s[0] for s in result.history["steps"]] == list(range(1, TOTAL + 1))
    run = runs.load_run(result.run_dir)
    assert run.meta["status"] == "complete" and run.meta["steps_done"] == TOTAL and run.meta["epochs_done"] == 3
    assert run.config == CFG and run.meta["num_train"] == 512 and run.meta["image_shape"] == [8, 8]
    assert_same_weights(weights_of(run), weights_of(result))


def test_same_seed_same_run_different_seed_different(full, tiny_dataset):
    result = full[0]
    again = train(CFG, tiny_dataset)
    assert again.run_dir is None
    assert_same_weights(weights_of(again), weights_of(result))
    assert timeless(again.history) == timeless(result.history)
    other = train(CFG.replace(seed=2), tiny_dataset)
    assert not np.allclose(weights_of(other)["decoder/dec_out/kernel"], weights_of(result)["decoder/dec_out/kernel"])
    assert timeless(other.history) != timeless(result.history)


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(1, 0, 100)
    assert sorted(a.tolist()) == list(range(100))
    np.testing.assert_array_equal(a, epoch_order(1, 0, 100))
    assert not np.array_equal(a, epoch_order(1, 1, 100)) and not np.array_equal(a, epoch_order(2, 0, 100))


def stop_at(step):
    """A stop button pressed from inside the on_step callback after `step` steps."""
    event = threading.Event()
    seen = []

    def on_step(r):
        seen.append(r.step)
        if r.step == step:
            event.set()

    return event, on_step, seen


def test_stop_then_resume_matches_uninterrupted_run(full, tiny_dataset, tmp_path):
    """Stopped mid-epoch 1, at the end of epoch 1, mid-epoch 2, each time resumed: the same weights as no stop.
    One step per compiled call, so a stop lands right after the step that asked for it."""
    run_dir = tmp_path / "run"
    done = 0
    for i, stop_after in enumerate([5, STEPS_PER_EPOCH, 21]):
        event, on_step, seen = stop_at(stop_after)
        trainer = Trainer(CFG, tiny_dataset, run_dir, resume=i > 0, steps_per_call=1)
        assert trainer.steps_done == done
        stopped = trainer.fit(on_step=on_step, stop=event)
        assert seen == list(range(done + 1, stop_after + 1))  # no step redone, none skipped
        assert stopped.stopped and stopped.steps_done == stop_after
        assert stopped.epochs_done == pytest.approx(stop_after / STEPS_PER_EPOCH)
        saved = runs.load_run(run_dir)
        assert saved.meta["status"] == "stopped" and saved.meta["steps_done"] == stop_after
        assert len(saved.history["epochs"]) == stop_after // STEPS_PER_EPOCH
        assert saved.history["steps"][-1][0] == stop_after
        assert_same_weights(weights_of(saved), weights_of(stopped))
        done = stop_after

    trainer = Trainer(CFG, tiny_dataset, run_dir, resume=True)
    seen = []
    resumed = trainer.fit(on_step=lambda r: seen.append(r.step))
    assert seen == list(range(done + 1, TOTAL + 1))
    assert resumed.steps_done == TOTAL and not resumed.stopped
    assert_same_weights(weights_of(resumed), weights_of(full[0]), atol=1e-5)
    final = runs.load_run(run_dir)
    assert final.meta["status"] == "complete" and [e["epoch"] for e in final.history["epochs"]] == [1, 2, 3]
    assert [s[0] for s in final.history["steps"]] == list(range(1, TOTAL + 1))
    assert final.history["epochs"][-1]["test_elbo"] == pytest.approx(full[0].history["epochs"][-1]["test_elbo"],
                                                                     abs=1e-3)


def test_stop_lands_at_the_end_of_the_current_call(full, tiny_dataset, tmp_path):
    """With several steps per compiled call, a stop asked for at step 3 ends after that call's last
    step (10, as the epoch has 16 steps); the saved weights are those of step 10, and a resumed run
    still ends on the uninterrupted run's weights."""
    event, on_step, seen = stop_at(3)
    stopped = Trainer(CFG, tiny_dataset, tmp_path / "run", steps_per_call=10).fit(on_step=on_step, stop=event)
    assert stopped.steps_done == 10 and seen == list(range(1, 11))
    assert runs.load_run(tmp_path / "run").meta["steps_done"] == 10
    resumed = Trainer(CFG, tiny_dataset, tmp_path / "run", resume=True, steps_per_call=10).fit()
    assert resumed.steps_done == TOTAL
    assert_same_weights(weights_of(resumed), weights_of(full[0]), atol=1e-5)


def test_fast_path_matches_one_step_eager_path(full, tiny_dataset):
    """XLA with several steps per call does the same work as one un-jitted step per call: same batches,
    same samples, same precision, so the same weights up to float round-off."""
    slow = Trainer(CFG, tiny_dataset, steps_per_call=1, jit_compile=False).fit()
    fast = Trainer(CFG, tiny_dataset, steps_per_call=10, jit_compile=True).fit()
    assert slow.steps_done == fast.steps_done == TOTAL
    assert_same_weights(weights_of(fast), weights_of(slow), atol=2e-4)
    assert_same_weights(weights_of(fast), weights_of(full[0]), atol=2e-4)
    np.testing.assert_allclose([s[1] for s in fast.history["steps"]], [s[1] for s in slow.history["steps"]],
                               rtol=1e-4, atol=1e-3)


def test_stop_with_a_callable_before_any_step(tiny_dataset, tmp_path):
    result = Trainer(CFG, tiny_dataset, tmp_path / "run").fit(stop=lambda: True)
    assert result.stopped and result.steps_done == 0 and result.history["epochs"] == []
    assert not (tmp_path / "run").exists()  # nothing done, nothing written


def test_interrupt_saves_the_steps_done(tiny_dataset, tmp_path):
    """Ctrl-C (or Streamlit ending the script) inside a callback: the finished steps are saved, then it re-raises."""
    def on_step(r):
        if r.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(CFG, tiny_dataset, tmp_path / "run", steps_per_call=1).fit(on_step=on_step)
    run = runs.load_run(tmp_path / "run")
    assert run.meta["status"] == "stopped" and run.meta["steps_done"] == 3 and run.history["steps"][-1][0] == 3
    # Several steps per call: the interrupt comes while step 3 is reported, but the weights are
    # already 10 steps on, and the checkpoint says so.
    with pytest.raises(KeyboardInterrupt):
        Trainer(CFG, tiny_dataset, tmp_path / "run10", steps_per_call=10).fit(on_step=on_step)
    run = runs.load_run(tmp_path / "run10")
    assert run.meta["steps_done"] == 10 and run.history["steps"][-1][0] == 10


def test_resume_refuses_a_different_config_and_an_empty_dir(full, tiny_dataset, tmp_path):
    with pytest.raises(runs.CheckpointError, match="differs from the requested config"):
        Trainer(CFG.replace(learning_rate=1e-3), tiny_dataset, full[0].run_dir, resume=True)
    with pytest.raises(runs.CheckpointError, match="nothing to resume"):
        Trainer(CFG, tiny_dataset, tmp_path, resume=True)


def test_resume_with_more_epochs_continues(full, tiny_dataset, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(full[0].run_dir, run_dir)
    more = Trainer(CFG.replace(epochs=4), tiny_dataset, run_dir, resume=True).fit()
    assert more.steps_done == TOTAL + STEPS_PER_EPOCH and [e["epoch"] for e in more.history["epochs"]] == [1, 2, 3, 4]
    assert runs.load_run(run_dir).config.epochs == 4


@pytest.mark.slow  # several seconds: the quick run leaves it out
@pytest.mark.parametrize("network, layer, attr, message", [
    # NaN logits: the loss itself is NaN at the very step.
    ("decoder", "dec_out", "bias",
     r"loss became nan at step 17 \(epoch 2\).*smaller learning_rate.*last good checkpoint \(1 epochs\)"),
    # NaN in a ReLU layer: the compiled step's fused MatMul+ReLU maps NaN to 0 and the loss stays finite,
    # so only the check before saving can catch it.
    ("encoder", "enc_0", "kernel",
     r"weights became NaN or infinite \(encoder/enc_0/kernel\) by step 32.*last checkpoint is kept"),
], ids=["nan_loss", "nan_weights_finite_loss"])
def test_divergence_raises_and_keeps_last_checkpoint(tiny_dataset, tmp_path, network, layer, attr, message):
    run_dir = tmp_path / "run"
    # Without XLA, TensorFlow's fused MatMul+ReLU turns a NaN weight into 0 and the loss stays finite.
    trainer = Trainer(CFG, tiny_dataset, run_dir, steps_per_call=1, jit_compile=False)
    good = {}

    def on_epoch(r):
        good["weights"] = weights_of(trainer.model)
        good["files"] = {p.name: p.read_bytes() for p in run_dir.iterdir()}

    real_step = trainer._step_fn

    def poisoned_step(idx, step0, kl_weight):  # the first call of epoch 2 meets a NaN weight
        if int(step0) == STEPS_PER_EPOCH:
            v = getattr(getattr(trainer.model, network).get_layer(layer), attr)
            v.assign(np.full(v.shape, np.nan, np.float32))
        return real_step(idx, step0, kl_weight)

    trainer._step_fn = poisoned_step
    with pytest.raises(TrainingDiverged, match=message):
        trainer.fit(on_epoch=on_epoch)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == good["files"]  # untouched, byte for byte
    run = runs.load_run(run_dir)
    assert run.meta["steps_done"] == STEPS_PER_EPOCH and len(run.history["epochs"]) == 1
    assert_same_weights(weights_of(run), good["weights"])
    assert all(np.all(np.isfinite(w)) for w in weights_of(run).values())


def test_batch_larger_than_data_is_a_clear_error(tiny_dataset):
    with pytest.raises(ValueError, match=r"batch_size \(1024\) is larger than the number of training images \(512\)"):
        Trainer(CFG.replace(batch_size=1024), tiny_dataset)
    with pytest.raises(ValueError, match=r"batch_size \(64\) is larger than the number of training images \(50\)"):
        Trainer(CFG.replace(batch_size=64, max_train_images=50), tiny_dataset)


def test_train_refuses_an_existing_run(full, tiny_dataset, tmp_path):
    with pytest.raises(runs.CheckpointError, match="already holds a run"):
        train(CFG, tiny_dataset, full[0].run_dir)
    (tmp_path / "something").write_text("x")
    with pytest.raises(runs.CheckpointError, match="already holds a run"):
        train(CFG, tiny_dataset, tmp_path)


@pytest.mark.slow  # several seconds: the quick run leaves it out
def test_kl_warmup_weight_rises_linearly(tiny_dataset):
    cfg = CFG.replace(epochs=5, kl_warmup_epochs=4, beta=2.0, max_train_images=64)
    result = train(cfg, tiny_dataset)
    weights = [e["kl_weight"] for e in result.history["epochs"]]
    assert weights == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert np.diff(weights[:4]) == pytest.approx([0.5] * 3)
    assert result.steps_done == 5 * (64 // 32)  # max_train_images limits the steps too


def test_iwae_and_learned_sigma_train(tiny_dataset):
    iwae = train(CFG.replace(objective="iwae", mc_samples=4, epochs=2, max_train_images=128), tiny_dataset)
    e = iwae.history["epochs"]
    assert len(e) == 2 and all(math.isfinite(r["test_elbo"]) for r in e)
    learned = train(CFG.replace(likelihood="gaussian", sigma="learned", epochs=1, max_train_images=128), tiny_dataset)
    sigma = float(learned.model.sigma)
    assert math.isfinite(sigma) and sigma != pytest.approx(1.0, abs=1e-3)  # σ moved from its start


def test_step_seeds_are_a_function_of_seed_and_step():
    from vae_tf.step import step_seeds

    base = tf.constant([1, 7919], tf.int32)
    a, b = step_seeds(base, 5, 2).numpy(), step_seeds(base, 5, 2).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 2) and a.dtype == np.int32 and not np.array_equal(a[0], a[1])
    assert not np.array_equal(a, step_seeds(base, 6, 2).numpy())
