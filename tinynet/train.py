"""The training loop: shuffle, batch, forward, loss, backward, step; report progress.

    for each epoch:
        for each batch (x, y), shuffled:
            logits = model.forward(x, training=True)
            loss, dlogits = softmax_cross_entropy(logits, y)
            model.backward(dlogits)     # fills every layer's grads
            optimizer.step()            # moves every parameter against its gradient
"""

import math
import signal
import sys
import threading
import time

import numpy as np

from . import ops
from .errors import TrainingError
from .losses import softmax_cross_entropy

GOOD_WEIGHTS_EVERY = 50


def evaluate(model, x, y, batch_size=1000):
    """(mean loss, accuracy) of ``model`` on float inputs ``x`` (N, ...) and labels ``y``."""
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = model.forward(x[start:start + batch_size], training=False)
        yb = y[start:start + batch_size]
        loss, _ = softmax_cross_entropy(logits, yb)
        total_loss += loss * len(yb)
        correct += int((logits.argmax(axis=1) == yb).sum())
    return total_loss / max(len(x), 1), correct / max(len(x), 1)


class Progress:
    """One self-overwriting status line on a terminal; a line every few seconds otherwise."""

    def __init__(self, stream=None, interval=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.last = 0.0

    def update(self, text, force=False):
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            self._write(text, end="" if self.tty else "\n")

    def done(self, text):
        self._write(text, end="\n")

    def _write(self, text, end):
        # On a terminal, "\r" returns to the start of the line so each update overwrites
        # the last; padding wipes the tail of a longer previous line.
        line = "\r" + text.ljust(100) if self.tty else text
        print(line, end=end, file=self.stream, flush=True)


class _StepBoundaryInterrupt:
    """Turn Ctrl-C into a request honoured between two steps.

    Stopping in the middle of ``optimizer.step()`` would leave some parameters updated and
    others not; a checkpoint written then could not be resumed exactly. The first Ctrl-C sets
    a flag the loop checks after each step; a second one interrupts at once.
    """

    def __enter__(self):
        self.requested = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _format_time(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def fit(model, optimizer, x, y, epochs, batch_size=32, rng=None, schedule=None,
        augment=None, validation=None, progress=True, history=None, state=None,
        on_step=None, threads=None, blas_threads=None):
    """Train ``model`` on float inputs ``x`` (N, 1, 28, 28) and labels ``y`` (N,).

    ``schedule(step) -> lr`` sets the learning rate before each step. ``augment(xb, rng)``
    transforms each training batch. ``validation=(x_val, y_val)`` is evaluated after each
    epoch. Returns the history dict (lists per epoch: loss, accuracy, val_loss, val_accuracy,
    lr, seconds). ``state`` (from an interrupted run) continues mid-epoch; ``on_step(state)``
    is called after every step with the resumable position.

    ``threads``: how many threads the ops may use (None: every available core, or
    ``TINYNET_THREADS``; 1 is fastest for small dense networks, whose products are too small
    to share). ``blas_threads`` is its old name, still accepted.

    A NaN or infinite loss stops training with ``TrainingError``; the parameters are left at
    the last values that gave a finite loss.
    """
    run = _Run(model, optimizer, x, y, batch_size, rng, schedule, augment, progress, history,
               state, on_step)
    with ops.threads(threads if threads is not None else blas_threads), \
            _StepBoundaryInterrupt() as interrupt:
        while run.state["epoch"] < epochs:
            run.epoch(epochs, interrupt)
            run.end_epoch(epochs, validation, interrupt)
    return run.history


class _Run:
    """One call of ``fit``: the data and settings, the history, and the resumable position
    ``state`` (epoch, step, the epoch's shuffled order and running sums)."""

    def __init__(self, model, optimizer, x, y, batch_size, rng, schedule, augment, progress,
                 history, state, on_step):
        self.model, self.optimizer, self.x, self.y = model, optimizer, x, y
        self.batch_size, self.schedule, self.augment = batch_size, schedule, augment
        self.rng = rng if rng is not None else np.random.default_rng()
        self.report = Progress() if progress is True else progress
        self.history = history if history is not None else {}
        for key in HISTORY_KEYS:
            self.history.setdefault(key, [])
        self.state = dict(state or {"epoch": 0, "step": 0})
        self.on_step = on_step
        self.params = [p for p, _ in model.parameters()]
        self.last_good = {"step": optimizer.steps, "params": [p.copy() for p in self.params]}

    def epoch(self, epochs, interrupt):
        """The steps of one epoch, from ``state["step"]`` (0 unless resuming) to its end."""
        state = self.state
        if state["step"] == 0 or "order" not in state:
            state["order"] = self.rng.permutation(len(self.x))
            state["sum_loss"], state["correct"], state["seen"] = 0.0, 0, 0
        self.start_time, self.start_seen = time.monotonic(), state["seen"]
        for b in range(state["step"], math.ceil(len(self.x) / self.batch_size)):
            index = state["order"][b * self.batch_size:(b + 1) * self.batch_size]
            loss, correct = self.step(self.x[index], self.y[index], b)
            state["sum_loss"] += loss * len(index)
            state["correct"] += correct
            state["seen"] += len(index)
            state["step"] = b + 1
            if self.on_step is not None:
                self.on_step(state)
            if interrupt.requested:
                if self.report:
                    self.report.done(f"interrupted at epoch {state['epoch'] + 1}, step {b + 1}")
                raise KeyboardInterrupt
            self.show_progress(epochs)

    def step(self, xb, yb, b):
        """One training step on the batch (xb, yb): returns its loss and correct count."""
        if self.augment is not None:
            xb = self.augment(xb, self.rng)
        if self.schedule is not None:
            self.optimizer.lr = self.schedule(self.optimizer.steps)
        logits = self.model.forward(xb, training=True)
        loss, dlogits = softmax_cross_entropy(logits, yb)
        self.check_finite(loss, b)
        self.model.backward(dlogits)
        self.optimizer.step()
        return loss, int((logits.argmax(axis=1) == yb).sum())

    def check_finite(self, loss, b):
        """Stop on a NaN or infinite loss, with the weights of the last finite one."""
        optimizer, last_good = self.optimizer, self.last_good
        if not math.isfinite(loss):
            for p, good in zip(self.params, last_good["params"]):
                p[...] = good
            raise TrainingError(
                f"loss became {loss} at epoch {self.state['epoch'] + 1}, step {b + 1}; training "
                f"stopped and the weights were restored to those of step {last_good['step']} "
                "(try a lower learning rate)")
        if optimizer.steps % GOOD_WEIGHTS_EVERY == 0:
            # These weights just gave a finite loss: remember them in case training
            # diverges later. Copying every step would cost more than it is worth.
            self.last_good = {"step": optimizer.steps, "params": [p.copy() for p in self.params]}

    def show_progress(self, epochs):
        if not self.report:
            return
        state, n = self.state, len(self.x)
        elapsed = time.monotonic() - self.start_time
        rate = (state["seen"] - self.start_seen) / max(elapsed, 1e-9)
        left = (n - state["seen"] + (epochs - state["epoch"] - 1) * n) / max(rate, 1e-9)
        self.report.update(
            f"epoch {state['epoch'] + 1}/{epochs} {state['seen']:>6}/{n} "
            f"loss {state['sum_loss'] / state['seen']:.4f} "
            f"acc {state['correct'] / state['seen']:.4f} "
            f"{rate:,.0f} img/s  {_format_time(left)} left")

    def end_epoch(self, epochs, validation, interrupt):
        """Record the epoch in the history, evaluate on ``validation``, report, move on."""
        state, history = self.state, self.history
        epoch, seconds = state["epoch"], time.monotonic() - self.start_time
        history["loss"].append(state["sum_loss"] / max(state["seen"], 1))
        history["accuracy"].append(state["correct"] / max(state["seen"], 1))
        history["lr"].append(self.optimizer.lr)
        history["seconds"].append(seconds)
        line = (f"epoch {epoch + 1}/{epochs} loss {history['loss'][-1]:.4f} "
                f"acc {history['accuracy'][-1]:.4f} ({seconds:.1f} s)")
        if validation is not None:
            val_loss, val_acc = evaluate(self.model, *validation)
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(val_acc)
            line += f"  val loss {val_loss:.4f} val acc {val_acc:.4f}"
        if self.report:
            self.report.done(line)
        self.state = {"epoch": epoch + 1, "step": 0}
        if self.on_step is not None:
            self.on_step(self.state)
        if interrupt.requested:  # Ctrl-C during the evaluation: stop before the next epoch
            if self.report:
                self.report.done(f"interrupted after epoch {epoch + 1}")
            raise KeyboardInterrupt
