"""The training loop: shuffle, batch, forward, loss, backward, step; report progress.

    for each epoch:
        for each batch (x, y), shuffled:
            logits = model.forward(x, training=True)
            loss, dlogits = softmax_cross_entropy(logits, y)
            model.backward(dlogits)     # fills every layer's grads
            optimizer.step()            # moves every parameter against its gradient
"""

import math
import os
import shutil
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
    """One self-overwriting status line on a terminal; a line every few seconds otherwise.

    On a terminal the line is cut to the terminal's width (read at each update, so resizing
    the window is followed): a line that wraps can no longer be overwritten, and every update
    would scroll. Text is made of parts separated by two spaces; the last parts are dropped
    first when it does not fit.
    """

    def __init__(self, stream=None, interval=None, width=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.width = width
        self.last = 0.0

    def update(self, text, force=False):
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            self._write(text, end="" if self.tty else "\n")

    def done(self, text):
        self._write(text, end="\n")

    def columns(self):
        if self.width is not None:
            return self.width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size().columns

    def _write(self, text, end):
        if self.tty:
            # "\r" returns to the start of the line so each update overwrites the last;
            # padding to one column short of the width wipes the tail of a longer previous
            # line without reaching the last column (which would wrap on some terminals).
            width = max(self.columns() - 1, 1)
            line = "\r" + fit_line(text, width).ljust(width)
        else:
            line = text
        print(line, end=end, file=self.stream, flush=True)


def fit_line(text, width):
    """``text`` cut to ``width`` characters by dropping its last two-space-separated parts,
    then, if still too long, its last characters."""
    parts = text.split("  ")
    while len(parts) > 1 and len("  ".join(parts)) > width:
        parts.pop()
    return "  ".join(parts)[:width]


class TimeLeft:
    """Estimate of the time a run still needs, given only once it means something.

    The first steps of a process include Numba compiling the kernels (seconds, against
    milliseconds for a step), so a speed measured from the start predicts minutes for a run
    of seconds. The speed is measured from the first report on (after the first step, which
    compiles) and, wall-clock based, includes the evaluation after each epoch; no estimate
    is given before ``min_seconds`` have passed and ``min_fraction`` of the run is done.
    """

    def __init__(self, total, min_seconds=3.0, min_fraction=0.02, clock=time.monotonic):
        self.total = total
        self.min_seconds = min_seconds
        self.min_fraction = min_fraction
        self.clock = clock
        self.start = None

    def update(self, done):
        """Seconds left when ``done`` of ``total`` units are done, or None (not known yet)."""
        now = self.clock()
        if self.start is None:
            self.start = (now, done)
            return None
        seconds, units = now - self.start[0], done - self.start[1]
        if seconds < self.min_seconds or units < self.min_fraction * self.total or units <= 0:
            return None
        return (self.total - done) * seconds / units


class Interrupted(KeyboardInterrupt):
    """Training stopped at the user's request: Ctrl-C (SIGINT) or SIGTERM, told by ``signum``.

    A ``KeyboardInterrupt``, so code that cleans up after Ctrl-C does the same for SIGTERM."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


# SIGTERM is what `kill`, systemd and job schedulers send: it gets the same orderly stop as
# Ctrl-C, so the run can still write its checkpoint.
_STOP_SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s)


class _StepBoundaryInterrupt:
    """Turn Ctrl-C (or SIGTERM) into a request honoured between two steps.

    Stopping in the middle of ``optimizer.step()`` would leave some parameters updated and
    others not; a checkpoint written then could not be resumed exactly. The first signal sets
    a flag the loop checks after each step; a second one interrupts at once. Any more are
    ignored until training has stopped, so an impatient third Ctrl-C cannot break the
    clean-up (writing the checkpoint, waiting for the worker threads).

    Only the main thread receives signals. A ``fit`` running in another thread (an
    ensemble's networks trained side by side) is given the main thread's instance as
    ``shared``, and stops when that one is asked to.
    """

    def __init__(self, shared=None):
        self.shared = shared

    @property
    def requested(self):
        return self._requested or (self.shared is not None and self.shared.requested)

    @property
    def signum(self):
        return self._signum or (self.shared.signum if self.shared is not None else None)

    def __enter__(self):
        self._requested = False
        self._signum = None
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in _STOP_SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self._requested:
            for sig in self.previous:
                signal.signal(sig, signal.SIG_IGN)
            raise Interrupted(self._signum)
        self._requested = True
        self._signum = signum

    def request(self):
        """Ask every fit sharing this instance to stop after its current step."""
        self._requested = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        return False


def side_by_side(jobs):
    """Run ``job(stop)`` for each job in its own thread, while this (the main) thread takes
    Ctrl-C and SIGTERM for them all; returns their results in order.

    Each job passes ``stop`` to its ``fit``, so a Ctrl-C stops every one after its current
    step. If one job fails, the others are asked to stop the same way. Either way every
    thread has finished before this returns or raises (the first failure, else
    ``Interrupted``), so the caller can write a checkpoint of them all."""
    results, failures = [None] * len(jobs), [None] * len(jobs)
    with _StepBoundaryInterrupt() as stop:
        def run(k):
            try:
                results[k] = jobs[k](stop)
            except BaseException as exc:       # noqa: BLE001 (handed to the main thread)
                failures[k] = exc
                stop.request()

        threads = [threading.Thread(target=run, args=(k,), name=f"tinynet-fit-{k}")
                   for k in range(len(jobs))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)                # returns to take signals now and then
        except KeyboardInterrupt:              # a second Ctrl-C: the jobs stop at their step
            for t in threads:
                t.join()
        errors = [f for f in failures if f is not None]
        for f in errors:
            if not isinstance(f, KeyboardInterrupt):
                raise f
        if errors or stop.requested:
            raise Interrupted(stop.signum or signal.SIGINT)
    return results


class SharedTimeLeft:
    """One ``TimeLeft`` fed by several fits at once: each reports through ``lane(k)`` the
    images it has trained, and the estimate counts them all (plus ``before``)."""

    def __init__(self, time_left, before=0):
        self.time_left, self.before = time_left, before
        self.done = {}
        self.lock = threading.Lock()

    def lane(self, k):
        """What fit k is given as its ``TimeLeft``."""
        return _Lane(self, k)

    def update(self, k, done):
        with self.lock:
            self.done[k] = done
            return self.time_left.update(self.before + sum(self.done.values()))


class SharedLine:
    """The progress of fits running side by side on one ``report`` (a ``Progress``): the
    status line follows the first of them still running, under ``title``; every fit's epoch
    lines are printed in full, each under its own name."""

    def __init__(self, report, title, names):
        self.report, self.title, self.names = report, title, names
        self.running = set(range(len(names)))
        self.lock = threading.Lock()

    def lane(self, k):
        """What fit k is given as its progress report (``finished()`` when it is done)."""
        return _Lane(self, k)

    def update(self, k, text, force=False):
        with self.lock:
            if self.running and k == min(self.running):
                self.report.update(f"{self.title}  {text}", force)

    def done(self, k, text):
        with self.lock:
            self.report.done(f"{self.names[k]}: {text}")

    def finished(self, k):
        with self.lock:
            self.running.discard(k)


class _Lane:
    """One fit's view of a shared object: its calls, with the fit's number put first."""

    def __init__(self, shared, k):
        self.shared, self.k = shared, k

    def update(self, *args, **kwargs):
        return self.shared.update(self.k, *args, **kwargs)

    def done(self, text):
        self.shared.done(self.k, text)

    def finished(self):
        self.shared.finished(self.k)


def _format_time(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def describe_duration(seconds):
    """'6 s', '4 min 10 s', '10 min', '1 h 5 min': a duration as a person says it."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 10:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def fit(model, optimizer, x, y, epochs, batch_size=32, rng=None, schedule=None,
        augment=None, validation=None, progress=True, history=None, state=None,
        on_step=None, threads=None, blas_threads=None, time_left=None, stop=None):
    """Train ``model`` on float inputs ``x`` (N, 1, 28, 28) and labels ``y`` (N,).

    ``schedule(step) -> lr`` sets the learning rate before each step. ``augment(xb, rng)``
    transforms each training batch. ``validation=(x_val, y_val)`` is evaluated after each
    epoch. Returns the history dict (lists per epoch: loss, accuracy, val_loss, val_accuracy,
    lr, seconds). ``state`` (from an interrupted run) continues mid-epoch; ``on_step(state)``
    is called after every step with the resumable position.

    ``threads``: how many threads the ops may use (None: every available core, or
    ``TINYNET_THREADS``; 1 is fastest for small dense networks, whose products are too small
    to share). ``blas_threads`` is its old name, still accepted.

    ``time_left``: a ``(TimeLeft, images_before)`` pair when this call is part of a longer
    run (an ensemble's networks): the progress line then shows the time left for the whole
    run, ``images_before`` being the images of the run trained before this call (networks
    trained side by side share a ``SharedTimeLeft`` lane instead). None: the time left of
    this call.

    A NaN or infinite loss stops training with ``TrainingError``; the parameters are left at
    the last values that gave a finite loss. Ctrl-C or SIGTERM stops it after the current step
    with ``Interrupted`` (a ``KeyboardInterrupt``); a second one stops it at once. ``stop``:
    an object whose ``requested`` turning true stops it the same way (a call in a thread
    other than the main one, which receives the signals, is given the main thread's).
    """
    run = _Run(model, optimizer, x, y, batch_size, rng, schedule, augment, progress, history,
               state, on_step, time_left or (TimeLeft(len(x) * epochs), 0))
    with ops.threads(threads if threads is not None else blas_threads), \
            _StepBoundaryInterrupt(stop) as interrupt:
        try:
            while run.state["epoch"] < epochs:
                run.epoch(epochs, interrupt)
                run.end_epoch(epochs, validation, interrupt)
        except KeyboardInterrupt as exc:
            if isinstance(exc, Interrupted):
                raise
            raise Interrupted(interrupt.signum or signal.SIGINT) from None
    return run.history


class _Run:
    """One call of ``fit``: the data and settings, the history, and the resumable position
    ``state`` (epoch, step, the epoch's shuffled order and running sums), and the estimate of
    the time left with the images trained before this call (see ``fit``)."""

    def __init__(self, model, optimizer, x, y, batch_size, rng, schedule, augment, progress,
                 history, state, on_step, time_left):
        self.model, self.optimizer, self.x, self.y = model, optimizer, x, y
        self.batch_size, self.schedule, self.augment = batch_size, schedule, augment
        self.rng = rng if rng is not None else np.random.default_rng()
        self.report = Progress() if progress is True else progress
        self.history = history if history is not None else {}
        for key in HISTORY_KEYS:
            self.history.setdefault(key, [])
        self.state = dict(state or {"epoch": 0, "step": 0})
        self.on_step = on_step
        self.time_left, self.images_before = time_left
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
        left = self.time_left.update(self.images_before + state["epoch"] * n + state["seen"])
        self.report.update(
            f"epoch {state['epoch'] + 1}/{epochs}  {state['seen']:>6}/{n}  "
            f"loss {state['sum_loss'] / state['seen']:.4f}  "
            f"acc {state['correct'] / state['seen']:.4f}"
            + (f"  {_format_time(left)} left" if left is not None else "")
            + f"  {rate:,.0f} img/s")

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
