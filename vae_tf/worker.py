"""Train one run in a process of its own, speaking JSON lines: `python -m vae_tf.worker`.

A server that trains in its own process keeps every compiled step it ever built (XLA caches its
executables for the life of the process), so each training would leave memory behind. In a worker
process all of it goes back when the training ends, and a training that fails or runs out of
memory takes nothing else down.

The worker imports TensorFlow and the library first and says {"event": "ready"}, so that a server
can start one ahead of need (ui/workers.py) and a click trains without waiting for the imports; once
it has its request the process is named vae-lab-train (ps, top).
stdin, first line: {"config": {...}, "run_dir": "...", "resume": false, "data": "..."} (data: the file to read
for config's data set, when the server keeps it elsewhere; optional); any later line "stop" asks
the training to stop after its current compiled call (the Trainer then saves what it has). stdin
closed before a request: the server has gone, and the worker exits.
stdout, one JSON object a line: {"event": "ready"}, {"event": "start", "total_steps", "steps_per_epoch"}, then
{"event": "step", ...StepReport} and {"event": "epoch", ...EpochReport}, then
{"event": "end", "outcome": "complete" | "stopped" | "diverged" | "failed", "message", "baseline"}, where
baseline is the test log-likelihood of the pixel-independent model fitted on the training images
(vae_tf.baselines; null unless the training ran), which a run that learned must beat.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from dataclasses import asdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _say(out, **event):
    try:
        out.write(json.dumps(event, allow_nan=True) + "\n")
        out.flush()
    except OSError:  # the server has gone (its end of the pipe closed): stdin's end stops the training, which saves
        pass


def _name_process(name: bytes):
    """Name the process (Linux: /proc/PID/comm, as ps and top show it), so that a training worker can be told
    from a spare one waiting for its request."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: the name is only a convenience
        pass


def _listen(stop: threading.Event):
    for line in sys.stdin:
        if line.strip() == "stop":
            stop.set()
    stop.set()  # stdin closed: the server has gone


def _lower_priority():
    """VAE_LAB_WORKER_NICE (set by the server that starts the worker): lower this process's CPU priority by that
    much, before TensorFlow starts its threads (they inherit it; on Linux a niceness is a thread's)."""
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not a number, or no os.nice: as it is
        os.nice(max(0, int(os.environ.get("VAE_LAB_WORKER_NICE", "0"))))


def main() -> int:
    _lower_priority()
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write into the event stream
    from .baselines import independent_pixels
    from .config import Config
    from .data import load_dataset
    from .train import Trainer, TrainingDiverged

    _say(out, event="ready")
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # a spare whose server has gone
    request = json.loads(line)
    _name_process(b"vae-lab-train")
    stop = threading.Event()
    threading.Thread(target=_listen, args=(stop,), daemon=True).start()
    try:
        config = Config.from_dict(request["config"])
        dataset = load_dataset(request.get("data") or config.dataset)  # an upload's file; its name stays in config
        trainer = Trainer(config, dataset, request["run_dir"], resume=bool(request.get("resume")))
        _say(out, event="start", total_steps=trainer.total_steps, steps_per_epoch=trainer.steps_per_epoch)
        result = trainer.fit(on_step=lambda r: _say(out, event="step", **asdict(r)),
                             on_epoch=lambda r: _say(out, event="epoch", **asdict(r)), stop=stop)
        _say(out, event="end", outcome="stopped" if result.stopped else "complete", message="",
             baseline=independent_pixels(dataset, config.likelihood))
    except TrainingDiverged as e:
        _say(out, event="end", outcome="diverged", message=str(e), baseline=None)
    except Exception as e:  # reported to the app as the reason; the worker exits cleanly
        _say(out, event="end", outcome="failed", message=str(e), baseline=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
