"""One custom training loop for every strategy: `tf.function` + `strategy.run`.

The loss is averaged over the global batch (`tf.nn.compute_average_loss`), the strategy
all-reduces the gradients, and metrics come back as per-replica sums reduced with
`strategy.reduce`, so the same code runs on one device, on N GPUs or logical CPUs, and on
several workers (Keras 3 `model.fit` cannot do the last: keras-team/keras#20585).

What is trained (model, BatchNorm policy, loss, metric sums, normalisation) is the task's
(trainer/task.py); the `Trainer` owns how: steps, checkpoints, learning rate, NaN roll-back,
preemption, summaries and progress (trainer/progress.py).
"""

from __future__ import annotations

import dataclasses
import math
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from storage import fs, jsonl
from trainer import data as data_lib
from trainer import optim, shutdown
from trainer.config import TrainConfig
from trainer.progress import Progress
from trainer.strategy import is_chief
from trainer.task import ClassificationTask


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, ...); the message names the step and the way out."""


class _RolledBack(Exception):
    """A NaN loss was met and the model rolled back to its last checkpoint."""


@dataclasses.dataclass
class EpochMetrics:
    loss: float
    top1: float
    top5: float
    examples: int


class Trainer:
    """Trains and evaluates a task under a strategy: optimizer, steps, checkpoints, learning rate,
    NaN roll-back, preemption, TensorBoard summaries and progress.

    Args:
        config: the run's typed config (optim and runtime sections drive the loop).
        run_dir: where checkpoints, logs and metrics.jsonl go (the chief's; local or gs://).
        strategy: the distribution strategy the model is built and stepped under.
        task: what is trained (trainer/task.py): it builds the model, defines loss and metrics.
        console: where progress goes (trainer/progress.py); default: a Progress of --log_every.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str,
        strategy: tf.distribute.Strategy,
        task: ClassificationTask,
        console: Progress | None = None,
    ):
        self.config, self.run_dir, self.strategy, self.task = config, run_dir, strategy, task
        self.info = task.info
        self.console = console or Progress(config.runtime.log_every)
        self.chief = is_chief(strategy)
        self.replicas = strategy.num_replicas_in_sync
        self.replicas_per_worker = len(strategy.extended.worker_devices)
        if config.optim.batch_size % self.replicas:
            raise ValueError(
                f"--batch_size={config.optim.batch_size} is not divisible by the {self.replicas} replicas: "
                f"use a multiple of {self.replicas}"
            )
        self.image_size = task.image_size
        self.num_classes = task.num_classes
        self.train_examples = self.info.split_sizes[config.data.train_split]
        self.steps_per_epoch = self.train_examples // config.optim.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the {config.data.train_split} split has {self.train_examples} examples, fewer than one "
                f"batch of {config.optim.batch_size}: lower --batch_size"
            )
        if config.runtime.precision != "float32":
            keras.mixed_precision.set_global_policy(config.runtime.precision)
        keras.utils.set_random_seed(config.runtime.seed)
        with strategy.scope():
            self.model = task.build_model()
            optimizer = optim.make_optimizer(config.optim)
            if config.runtime.precision == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            # Lowered at each NaN roll-back; checkpointed so a resumed run keeps the lower rate.
            self.lr_scale = tf.Variable(1.0, dtype=tf.float64, trainable=False, name="lr_scale")
            # Reduce-on-plateau's (best val loss, epochs without improvement, LR scale).
            self.plateau_state = tf.Variable(
                [math.inf, 0.0, 1.0], dtype=tf.float64, trainable=False, name="plateau_state"
            )
        self.checkpoint = tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            step=self.step,
            lr_scale=self.lr_scale,
            plateau_state=self.plateau_state,
        )
        self.nan_recoveries = 0
        ckpt_dir = fs.join(run_dir, "checkpoints")
        if not self.chief:  # other workers write to throwaway dirs, as TF recommends
            ckpt_dir = tempfile.mkdtemp(prefix="worker-ckpt-")
        self.manager = tf.train.CheckpointManager(self.checkpoint, ckpt_dir, max_to_keep=config.runtime.max_to_keep)
        self.lr_schedule = optim.LearningRate(config.optim, self.steps_per_epoch)
        self._stop_requested = False
        self._preemption = None
        self._stream = None  # the training iterator, kept until the process ends (see fit)
        self._traced = False  # the first train step of this process (tracing) is a phase of its own
        self._eval_datasets: dict[str, tf.data.Dataset] = {}
        self._train_step = self._make_train_step()
        self._eval_step = self._make_eval_step()
        self.writer = tf.summary.create_file_writer(fs.join(run_dir, "logs")) if self.chief else None

    # -- steps ----------------------------------------------------------------------------
    def _make_train_step(self):
        model, optimizer, strategy, task = self.model, self.optimizer, self.strategy, self.task
        global_batch = self.config.optim.batch_size
        mixed16 = self.config.runtime.precision == "mixed_float16"

        def replica_step(images, labels):
            images = task.normalize(images)  # on the replica's device
            with tf.GradientTape() as tape:
                outputs = model(images, training=True)
                per_example, logits = task.loss(outputs, labels)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n([tf.cast(x, tf.float32) for x in model.losses]))
                scaled = optimizer.scale_loss(loss) if mixed16 else loss
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return task.sums(logits, labels, per_example)

        # Takes a distributed batch, not the iterator: each epoch has a new iterator, and an
        # iterator argument would make tf.function trace the whole step again every epoch.
        @tf.function(jit_compile=self.config.runtime.jit or None, reduce_retracing=True)
        def train_step(batch):
            per_replica = strategy.run(replica_step, args=batch)
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None) for x in per_replica]

        return train_step

    def _make_eval_step(self):
        """Evaluation of one padded batch: (logits, labels, per-example loss, valid) as numpy.

        One device or one machine's replicas (`mirrored`): the batch is split across the
        replicas with `strategy.run`, like training. Several workers: each evaluates the whole
        split on its own copy of the (identical) weights, outside the strategy, so no worker
        waits in a collective for a peer that ran out of batches.
        """
        model, strategy, task = self.model, self.strategy, self.task

        def forward(images, labels):
            outputs = model(task.normalize(images), training=False)
            per_example, logits = task.loss(outputs, labels)
            return tf.cast(logits, tf.float32), tf.cast(labels, tf.int64), per_example

        if self.replicas_per_worker < self.replicas:  # multi-worker
            local = tf.function(forward, reduce_retracing=True)

            def eval_step(batch):
                images, labels, valid = batch
                return [x.numpy() for x in (*local(images, labels), valid)]

            return eval_step

        @tf.function(reduce_retracing=True)
        def replicated(images, labels):
            return strategy.run(forward, args=(images, labels))

        def eval_step(batch):
            images, labels, valid = batch
            per_replica = (*replicated(images, labels), valid)
            return [np.concatenate([t.numpy() for t in strategy.experimental_local_results(x)]) for x in per_replica]

        return eval_step

    # -- data -----------------------------------------------------------------------------
    def _train_stream(self, start_step: int):
        """One distributed, endless training stream for the whole run (one iterator, no
        per-epoch rebuild), positioned after the `start_step` steps already trained."""
        c = self.config

        def input_fn(ctx: tf.distribute.InputContext):
            per_replica = ctx.get_per_replica_batch_size(c.optim.batch_size)
            batches_per_step = self.replicas // ctx.num_input_pipelines
            return data_lib.make_train_dataset(
                self.info,
                c.data.train_split,
                batch_size=per_replica,
                image_size=self.image_size,
                seed=c.runtime.seed,
                start_batch=start_step * batches_per_step,
                flip=c.data.augment_flip,
                crop_pad=c.data.augment_crop_pad,
                shuffle_buffer=c.data.shuffle_buffer,
                mixup_alpha=c.data.mixup_alpha,
                cutmix_alpha=c.data.cutmix_alpha,
                deterministic=c.runtime.deterministic,
                cache=c.data.cache,
                input_context=ctx,
            )

        return iter(self.strategy.distribute_datasets_from_function(input_fn))

    # -- public ---------------------------------------------------------------------------
    def restore(self) -> int:
        """Restores the latest checkpoint if any; returns the global step to continue from."""
        # Every worker reads the chief's checkpoints (other workers only ever write throwaway
        # copies), so a multi-worker run_dir must be on a filesystem all workers share.
        path = tf.train.latest_checkpoint(fs.join(self.run_dir, "checkpoints"))
        if path:
            self.checkpoint.restore(path)
            logging.info("resumed from %s at step %d", path, int(self.step.numpy()))
            best, wait, scale = (float(v) for v in self.plateau_state.numpy())
            self.lr_schedule.plateau.load({"best": best, "wait": int(wait), "scale": scale})
        return int(self.step.numpy())

    def request_stop(self, *_):
        self._stop_requested = True

    def evaluate(self, split: str) -> tuple[EpochMetrics, np.ndarray, np.ndarray]:
        """Loss/top-1/top-5 on a split, plus all logits and labels (for reports)."""
        c = self.config
        if split not in self._eval_datasets:  # kept: with --cache, later passes read memory
            self._eval_datasets[split] = data_lib.make_eval_dataset(
                self.info, split, batch_size=c.optim.batch_size, image_size=self.image_size, cache=c.data.cache
            )
        ds = self._eval_datasets[split]
        if self.replicas_per_worker == self.replicas:  # split each batch across the local replicas
            ds = self.strategy.experimental_distribute_dataset(ds)
        logits_all, labels_all, losses = [], [], []
        batches = iter(ds)
        while (batch := self._next_batch(batches, split)) is not None:
            logits, labels, per_example, valid = self._eval_step(batch)
            logits_all.append(logits[valid])
            labels_all.append(labels[valid])
            losses.append(per_example[valid])
        logits = np.concatenate(logits_all) if logits_all else np.zeros((0, self.num_classes))
        labels = np.concatenate(labels_all) if labels_all else np.zeros((0,), np.int64)
        n = max(len(labels), 1)
        top5 = np.argsort(-logits, axis=1)[:, :5]
        metrics = EpochMetrics(
            float(np.concatenate(losses).sum() / n) if losses else float("nan"),
            float((logits.argmax(1) == labels).sum() / n),
            float((top5 == labels[:, None]).any(1).sum() / n),
            len(labels),
        )
        return metrics, logits, labels

    def fit(self, on_epoch_end=None) -> list[dict]:
        """Trains from the restored step to the last epoch; returns the epoch history."""
        c = self.config
        history = jsonl.read_all(fs.join(self.run_dir, "metrics.jsonl"))
        start_step = int(self.step.numpy())
        total_steps = c.optim.epochs * self.steps_per_epoch
        if start_step >= total_steps:
            logging.info("already trained %d steps (%d epochs)", start_step, c.optim.epochs)
            return history
        previous = signal.signal(signal.SIGTERM, self.request_stop)
        self._preemption = self._preemption_handler()  # multi-worker: replaces that SIGTERM handler
        try:
            # After SIGTERM the process ends within the grace period, even if a step never returns.
            with shutdown.StopWatchdog(c.runtime.stop_grace_seconds, lambda: self.manager.latest_checkpoint):
                return self._train_epochs(start_step, history, on_epoch_end)
        finally:
            self._preemption = None  # its watcher threads stop when it is dropped
            signal.signal(signal.SIGTERM, previous)

    def _train_epochs(self, start_step: int, history: list[dict], on_epoch_end) -> list[dict]:
        c = self.config
        # Never destroyed before the process ends (trainer.train exits with shutdown.fast_exit):
        # destroying it joins tf.data's autotuning thread, which was seen to take up to a minute.
        with self.console.phase("input pipeline"):
            iterator = self._stream = self._train_stream(start_step)
            if self.writer and start_step == 0:
                self._log_sample_images()
        epoch = start_step // self.steps_per_epoch
        if start_step:
            self.console.resumed(epoch + 1, start_step - epoch * self.steps_per_epoch)
        while epoch < c.optim.epochs:
            done_in_epoch = int(self.step.numpy()) - epoch * self.steps_per_epoch
            try:
                record = self._train_epoch(iterator, epoch, done_in_epoch)
            except _RolledBack:  # the data stream goes on; the weights and step went back
                epoch = int(self.step.numpy()) // self.steps_per_epoch
                continue
            if record is None:  # stopped by SIGTERM: checkpoint saved
                raise KeyboardInterrupt("SIGTERM")
            history = [h for h in history if h["epoch"] != record["epoch"]] + [record]
            if self.chief:  # written whole each epoch: an object store has no appends
                jsonl.write(fs.join(self.run_dir, "metrics.jsonl"), sorted(history, key=lambda h: h["epoch"]))
            if on_epoch_end:
                on_epoch_end(record)
            if self._stop_point(int(self.step.numpy())):  # the epoch's last step: after its record
                raise KeyboardInterrupt("SIGTERM")
            epoch += 1
        return history

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer (the process may end without destructors)."""
        if self.writer:
            self.writer.close()

    def _stop_point(self, step: int) -> bool:
        """Where a SIGTERM takes effect, after `step`; True when this process must stop now.

        Several workers: every worker saves a checkpoint at the same step and exits (through the
        PreemptionCheckpointHandler, which must be called at the same points on every worker).
        One process: it saves and stops. An epoch's last step stops after the epoch's validation
        and metrics line, so a resumed run never misses an epoch's record.
        """
        if self._preemption is not None:
            self._preemption.save_checkpoint_if_preempted(checkpoint_number=step)  # exits if preempted
            return False
        if self._stop_requested:
            path = self.manager.save(checkpoint_number=step)
            if not tf.io.gfile.exists(path + ".index"):  # the process is about to end without destructors
                raise TrainingError(f"SIGTERM: the checkpoint at step {step} was not written ({path}.index missing)")
            logging.warning("SIGTERM: checkpoint saved at step %d; exiting", step)
            return True
        return False

    def _preemption_handler(self):
        """A PreemptionCheckpointHandler when several workers train together, else None.

        SIGTERM on any one worker makes every worker save a checkpoint after the same step (they
        agree through the cluster's coordination service) and stop; a worker saving alone would
        leave the others blocked in their next all-reduce.
        """
        resolver = getattr(self.strategy, "cluster_resolver", None)
        spec = resolver.cluster_spec() if resolver is not None else None
        if spec is None or sum(spec.num_tasks(job) for job in spec.jobs) < 2:
            return None

        def preempted():
            logging.warning("SIGTERM: checkpoint saved at step %d; exiting", int(self.step.numpy()))
            raise KeyboardInterrupt("SIGTERM")

        config = tf.distribute.experimental.TerminationConfig(exit_fn=preempted)
        return tf.distribute.experimental.PreemptionCheckpointHandler(resolver, self.manager, termination_config=config)

    def _train_epoch(self, iterator, epoch: int, done_in_epoch: int) -> dict | None:
        """Trains the rest of an epoch; its record, or None when stopped by SIGTERM (checkpoint saved)."""
        sums = np.zeros(4)
        t0 = time.time()
        bar = self.console.epoch(epoch + 1, self.config.optim.epochs, self.steps_per_epoch, done_in_epoch)
        try:
            for i in range(done_in_epoch, self.steps_per_epoch):
                lr, step_sums = self._step(iterator, epoch)
                sums += step_sums
                step = int(self.step.numpy())
                self._after_step(bar, step, sums, step_sums[3], lr)
                if i < self.steps_per_epoch - 1 and self._stop_point(step):
                    return None
        finally:
            bar.close()
        return self._end_epoch(epoch, sums, lr, time.time() - t0)

    def _step(self, iterator, epoch: int) -> tuple[float, np.ndarray]:
        """One training step at the scheduled learning rate: (lr, [loss sum, top-1, top-5, examples]).
        A non-finite loss rolls back (_RolledBack) or stops (TrainingError) before the step counts."""
        step = int(self.step.numpy())
        lr = self._lr(step)
        optim.set_lr(
            self.optimizer.inner_optimizer if hasattr(self.optimizer, "inner_optimizer") else self.optimizer, lr
        )
        batch = self._next_batch(iterator, self.config.data.train_split)
        if self._traced:
            out = self._train_step(batch)
        else:  # tracing the step function (and the strategy's all-reduces) is most of the first step
            with self.console.phase("first step (tracing)"):
                out = self._train_step(batch)
                out = [float(x) for x in out]
            self._traced = True
        loss_sum, top1, top5, n = (float(x) for x in out)
        if not math.isfinite(loss_sum):
            self._handle_nan(loss_sum, step + 1, epoch)
            raise _RolledBack()
        self.step.assign_add(1)
        return lr, np.array([loss_sum, top1, top5, n])

    def _after_step(self, bar, step: int, sums: np.ndarray, images: float, lr: float) -> None:
        """Progress, TensorBoard scalars every --log_every steps, and --checkpoint_every checkpoints."""
        c = self.config
        rate = bar.update(images, sums[0] / sums[3], sums[1] / sums[3], lr, step)
        if rate is not None and self.writer:
            with self.writer.as_default(step=step):
                tf.summary.scalar("train/loss", sums[0] / sums[3])
                tf.summary.scalar("train/top1", sums[1] / sums[3])
                tf.summary.scalar("learning_rate", lr)
                tf.summary.scalar("images_per_second", rate)
        if c.runtime.checkpoint_every and step % c.runtime.checkpoint_every == 0:
            self.manager.save(checkpoint_number=step)

    def _end_epoch(self, epoch: int, sums: np.ndarray, lr: float, seconds: float) -> dict:
        """Validation, the plateau schedule, the epoch's checkpoint, summary line and scalars: its record."""
        c = self.config
        record = {
            "epoch": epoch + 1,
            "step": int(self.step.numpy()),
            "lr": float(lr),
            "loss": sums[0] / max(sums[3], 1),
            "top1": sums[1] / max(sums[3], 1),
            "top5": sums[2] / max(sums[3], 1),
            "seconds": round(seconds, 2),
            "images_per_second": round(sums[3] / max(seconds, 1e-9), 1),
        }
        if c.data.validation_split in self.info.split_sizes:
            val, _, _ = self.evaluate(c.data.validation_split)
            record.update(val_loss=val.loss, val_top1=val.top1, val_top5=val.top5)
            self.lr_schedule.end_epoch(val.loss)
            state = self.lr_schedule.plateau.state()
            self.plateau_state.assign([state["best"], state["wait"], state["scale"]])
        self.manager.save(checkpoint_number=int(self.step.numpy()))  # after the plateau update it holds
        logging.info(
            "epoch %d/%d: loss %.4f top1 %.4f%s (%.1fs, %.0f img/s)",
            epoch + 1,
            c.optim.epochs,
            record["loss"],
            record["top1"],
            f" | val loss {record['val_loss']:.4f} top1 {record['val_top1']:.4f}" if "val_loss" in record else "",
            seconds,
            record["images_per_second"],
        )
        if self.writer:
            with self.writer.as_default(step=int(self.step.numpy())):
                for k in ("loss", "top1", "top5", "val_loss", "val_top1", "val_top5"):
                    if k in record:
                        tf.summary.scalar(f"epoch/{k}", record[k])
        return record

    def _log_sample_images(self, count: int = 8) -> None:
        """A few training inputs (as the model gets them, before normalisation) for TensorBoard."""
        c = self.config
        ds = data_lib.make_train_dataset(
            self.info,
            c.data.train_split,
            batch_size=count,
            image_size=self.image_size,
            seed=c.runtime.seed,
            flip=c.data.augment_flip,
            crop_pad=c.data.augment_crop_pad,
        )
        images, labels = self._next_batch(iter(ds), c.data.train_split)
        with self.writer.as_default(step=0):
            tf.summary.image(
                "train/inputs",
                tf.cast(images, tf.uint8),
                max_outputs=count,
                description="labels: " + ", ".join(self.info.class_names[int(i)] for i in labels),
            )

    def _lr(self, step: int) -> float:
        return self.lr_schedule(step) * float(self.lr_scale.numpy())

    def _next_batch(self, iterator, split: str):
        """The next batch of a stream of `split` (None at its end); a record that cannot be read
        or decoded stops training with its file and record named (exit 3), never a raw TF error.
        Only the read is guarded: an error of the step itself is no data problem."""
        try:
            return next(iterator)
        except StopIteration:
            return None
        except data_lib.READ_ERRORS as e:
            error = data_lib.corrupt_data_error(self.info, split, self.image_size, e)
            raise TrainingError(str(error)) from e

    def _handle_nan(self, loss: float, step: int, epoch: int) -> None:
        """Stops with a clear error, or rolls back to the last checkpoint with a lower LR.

        Nothing is saved after a non-finite loss, so the last checkpoint on disk is good.
        """
        c = self.config
        last = self.manager.latest_checkpoint
        if not c.runtime.recover_from_nan or last is None or self.nan_recoveries >= c.runtime.max_nan_recoveries:
            why = (
                "no checkpoint to roll back to"
                if c.runtime.recover_from_nan and last is None
                else f"{self.nan_recoveries} roll-backs already"
                if c.runtime.recover_from_nan
                else ""
            )
            raise TrainingError(
                f"loss is {loss} at step {step} (epoch {epoch + 1}); the last good checkpoint is "
                f"{last or 'none (none written yet)'}{'; ' + why if why else ''}. Lower "
                "--learning_rate, add --clip_norm, or pass --recover_from_nan"
            )
        self.checkpoint.restore(last)
        self.lr_scale.assign(self.lr_scale * c.runtime.nan_lr_factor)
        self.nan_recoveries += 1
        logging.warning(
            "loss %s at step %d: rolled back to %s (step %d), learning rate x%g",
            loss,
            step,
            last,
            int(self.step.numpy()),
            float(self.lr_scale.numpy()),
        )
