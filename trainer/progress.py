"""What a training run shows while it works: named phases with their time, then per epoch a bar.

    10:52:11 starting TensorFlow: 2.9s (MirroredStrategy, 2 replica(s))
    10:52:11 reading metadata: 0.0s (bench 1.0.0: 20 classes; 121 test, 2340 train, 139 validation)
    10:52:11 dataset statistics: 0.0s (--normalization=dataset: the dataset's channel_stats: 2340 train images)
    10:52:13 building the model: 1.2s (resnet18, 11.20M parameters)
    10:52:14 input pipeline: 1.0s
    10:52:23 first step (tracing): 9.2s
    10:52:27 epoch 1/1 step 10/36 loss 3.0708 top1 0.1219 lr 0.000556 42 img/s eta 0:17
    10:52:41 epoch 1/1: loss 2.2631 top1 0.3459 | val loss 7.9053 top1 0.2518 (29.8s, 77 img/s)

On a terminal (stderr a tty) the epoch is a tqdm bar (steps, img/s, loss, top-1, ETA) instead of
the step lines; elsewhere (a log file, a pipe) one plain line every `log_every` steps, with the
epoch's ETA. A resumed run says where it goes on: "resumed at epoch 7 step 120".
"""

from __future__ import annotations

import contextlib
import sys
import time

from absl import logging


def _clock(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Phase:
    """One named phase being timed; `note` adds what it found (printed in brackets)."""

    def __init__(self, name: str):
        self.name, self.note = name, ""
        self.start = time.monotonic()
        self.seconds = 0.0


class Progress:
    """The trainer's progress lines; `interactive` (default: stderr is a terminal) picks the tqdm bar."""

    def __init__(self, log_every: int = 20, interactive: bool | None = None):
        self.log_every = log_every
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.phases: list[Phase] = []

    @contextlib.contextmanager
    def phase(self, name: str):
        """Times the block and logs `name: 1.2s (note)` when it ends (not when it raises)."""
        p = Phase(name)
        yield p
        p.seconds = time.monotonic() - p.start
        self.phases.append(p)
        logging.info("%s: %.1fs%s", name, p.seconds, f" ({p.note})" if p.note else "")

    def resumed(self, epoch: int, step: int) -> None:
        """`epoch` 1-based, `step` the steps of it already trained."""
        logging.info("resumed at epoch %d step %d", epoch, step)

    def epoch(self, epoch: int, epochs: int, steps: int, done: int) -> EpochProgress:
        return EpochProgress(self, epoch, epochs, steps, done)


class EpochProgress:
    """One epoch's bar or step lines; `update` after every step, `close` at the epoch's end."""

    def __init__(self, progress: Progress, epoch: int, epochs: int, steps: int, done: int):
        self.progress, self.steps, self.done = progress, steps, done
        self.title = f"epoch {epoch}/{epochs}"
        self.t0 = time.monotonic()
        self.first = done
        self.window_t, self.window_n = self.t0, 0.0
        self.bar = None
        if progress.interactive:
            from tqdm import tqdm

            self.bar = tqdm(
                total=steps,
                initial=done,
                desc=self.title,
                unit="step",
                leave=False,
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def update(self, images: float, loss: float, top1: float, lr: float, global_step: int) -> float | None:
        """After one step of `images` examples (running `loss` and `top1` of the epoch so far), the
        run's `global_step`-th; every `log_every` global steps returns the images/s since the last
        such step (for TensorBoard) and, off a terminal, logs a line. Else None."""
        self.done += 1
        self.window_n += images
        if self.done == self.first + 1:  # the ETA leaves out the first step (it may have traced the step)
            self.t0 = time.monotonic()
        log_every = self.progress.log_every
        if self.bar is not None:
            rate = self.window_n / max(time.monotonic() - self.window_t, 1e-9)
            self.bar.set_postfix_str(f"{rate:.0f} img/s loss {loss:.4f} top1 {top1:.4f}", refresh=False)
            self.bar.update(1)
        if not log_every or global_step % log_every:
            return None
        now = time.monotonic()
        rate = self.window_n / max(now - self.window_t, 1e-9)
        self.window_t, self.window_n = now, 0.0
        if self.bar is None:
            per_step = (now - self.t0) / max(self.done - self.first - 1, 1)
            logging.info(
                "%s step %d/%d loss %.4f top1 %.4f lr %.3g %.0f img/s eta %s",
                self.title,
                self.done,
                self.steps,
                loss,
                top1,
                lr,
                rate,
                _clock(per_step * (self.steps - self.done)),
            )
        return rate

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
