"""Callbacks the Distiller attaches by itself."""

import math

from kdtf._keras import keras

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss"]


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss becomes NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN/Inf loss and raises a readable error.

    Unlike ``keras.callbacks.TerminateOnNaN``, which stops silently, this raises
    :class:`NonFiniteLossError` naming the stage, epoch and batch, with the usual fixes.
    Checkpoints written by earlier callbacks are left untouched.

    Args:
        stage: a name for what is being trained, used in the message.
    """

    def __init__(self, stage="training"):
        super().__init__()
        self.stage = stage
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"{self.stage}: loss became {loss} at epoch {self._epoch + 1}, batch "
                f"{batch + 1}; training stopped. Usual fixes: lower the learning rate, "
                "lower the temperature, clip gradients (e.g. optimizer clipnorm=1.0), "
                "and check the inputs for NaN/Inf."
            )
