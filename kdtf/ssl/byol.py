"""BYOL: Bootstrap Your Own Latent (Grill et al., NeurIPS 2020, arXiv:2006.07733).

An online network (encoder f, projector g, predictor q) learns to predict, from one view
of an image, the target network's projection of another view. The target network
(encoder and projector) is not trained by gradients: after every step its weights
become an exponential moving average of the online ones,

    xi <- tau * xi + (1 - tau) * theta,
    tau_k = 1 - (1 - tau_base) * (cos(pi * k / K) + 1) / 2,

rising from ``tau_base`` (0.996) at step 0 to 1 at the last step K. The loss of one view
pair is the normalised regression ``2 - 2 cos(q(g(f(v))), g'(f'(v')))``, symmetrised over
both view orders (each term in [0, 4], their sum in [0, 8]).

The encoder is any Sequential/Functional model, so it can afterwards be distilled,
pruned, quantized and exported like any other kdtf model.
"""

import math

from kdtf._keras import keras, require_keras_model, tf
from kdtf.callbacks import StopOnNonFiniteLoss

__all__ = ["BYOL", "byol_loss", "tau_schedule", "mlp"]


def byol_loss(prediction, target):
    """Per-example ``2 - 2 cos(prediction, target)``: 0 for parallel vectors, 4 for
    opposite ones (Grill et al., 2020, eq. 2)."""
    p = tf.math.l2_normalize(tf.cast(prediction, tf.float32), axis=-1)
    z = tf.math.l2_normalize(tf.cast(target, tf.float32), axis=-1)
    return 2.0 - 2.0 * tf.reduce_sum(p * z, axis=-1)


def tau_schedule(step, total_steps, base_tau=0.996):
    """``1 - (1 - base_tau) * (cos(pi * step / total_steps) + 1) / 2`` (tensor or float)."""
    if isinstance(step, (int, float)) and isinstance(total_steps, (int, float)):
        return 1.0 - (1.0 - base_tau) * (math.cos(math.pi * min(step / total_steps, 1.0)) + 1.0) / 2.0
    progress = tf.minimum(tf.cast(step, tf.float32) / tf.cast(total_steps, tf.float32), 1.0)
    return 1.0 - (1.0 - base_tau) * (tf.cos(math.pi * progress) + 1.0) / 2.0


def mlp(input_dim, hidden_dim, output_dim, name, batch_norm=True, output_norm=False):
    """Dense -> BatchNorm -> ReLU -> Dense: BYOL's projector and predictor.
    ``output_norm`` adds a BatchNormalization after the last Dense (SimSiam's projector)."""
    layers = [keras.Input((input_dim,)), keras.layers.Dense(hidden_dim, use_bias=not batch_norm, name=f"{name}_hidden")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization(name=f"{name}_bn"))
    layers += [keras.layers.ReLU(name=f"{name}_relu"), keras.layers.Dense(output_dim, name=f"{name}_out")]
    if output_norm:
        layers.append(keras.layers.BatchNormalization(name=f"{name}_out_bn"))
    return keras.Sequential(layers, name=name)


def _check_tau(base_tau):
    if isinstance(base_tau, bool) or not isinstance(base_tau, (int, float)) or not 0 <= base_tau <= 1:
        raise ValueError(f"Expected base_tau in [0, 1]. Received: base_tau={base_tau!r}")
    return float(base_tau)


class BYOL(keras.Model):
    """BYOL self-supervised training of ``encoder`` (a ``keras.Model`` you ``fit``).

    Feed ``fit`` a dataset of view pairs ``(view_1, view_2)``
    (:func:`kdtf.data.augment.byol_views`). Logs ``loss`` (symmetrised, in [0, 8]) and
    ``tau``.

    Args:
        encoder: Sequential/Functional model from images to a representation vector.
        projection_dim, hidden_dim: sizes of the projector and predictor MLPs.
        base_tau: EMA rate at step 0 (0.996 in the paper).
        total_steps: K of the tau schedule; by default ``epochs * steps_per_epoch`` of
            the first ``fit`` call.
        batch_norm: BatchNormalization in the MLPs (the paper's choice).
        center_projection: batch-normalise the projector's output (as SimSiam's
            projector does; not in the BYOL paper). A small encoder ending in ReLU and
            average pooling maps every image to nearly the same direction, so without
            it the loss is near 0 from the first step and short runs collapse (measured
            here on MNIST: k-NN accuracy fell from 72 % at random init to 27 %).
    """

    def __init__(self, encoder, *, projection_dim=64, hidden_dim=256, base_tau=0.996, total_steps=None, batch_norm=True,
                 center_projection=True, name="byol", **kwargs):
        super().__init__(name=name, **kwargs)
        self.encoder = require_keras_model(encoder, "encoder")
        if len(encoder.outputs) != 1 or len(encoder.output_shape) != 2:
            raise ValueError(
                f"`encoder` ({encoder.name}) must output one vector per image, shape (batch, dim). "
                f"Received output shape {encoder.output_shape}; end it with pooling or Flatten."
            )
        self.base_tau = _check_tau(base_tau)
        dim = int(encoder.output_shape[-1])
        self.projector = mlp(dim, hidden_dim, projection_dim, "projector", batch_norm, output_norm=center_projection)
        self.predictor = mlp(projection_dim, hidden_dim, projection_dim, "predictor", batch_norm)
        self.target_encoder = keras.models.clone_model(encoder)
        self.target_encoder._name = f"target_{encoder.name}"
        self.target_encoder.set_weights(encoder.get_weights())
        self.target_projector = keras.models.clone_model(self.projector)
        self.target_projector._name = "target_projector"
        self.target_projector.set_weights(self.projector.get_weights())
        # The target networks stay `trainable`: in tf_keras a non-trainable
        # BatchNormalization runs in inference mode, and the target must normalise with
        # batch statistics like the online network. Only `online_variables` get gradients.
        self.total_steps = tf.Variable(int(total_steps or 0), trainable=False, dtype=tf.int64, name="total_steps")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.tau_tracker = keras.metrics.Mean(name="tau")

    @property
    def online_variables(self):
        """What gradients update: the encoder, projector and predictor weights."""
        return self.encoder.trainable_variables + self.projector.trainable_variables + self.predictor.trainable_variables

    def _ema_pairs(self):
        target = self.target_encoder.trainable_weights + self.target_projector.trainable_weights
        online = self.encoder.trainable_weights + self.projector.trainable_weights
        return list(zip(target, online))

    @property
    def metrics(self):
        return [self.loss_tracker, self.tau_tracker]

    def call(self, inputs, training=None):
        return self.encoder(inputs, training=training)

    def tau(self):
        """The current EMA rate, from the optimizer's step count."""
        step = tf.maximum(self.optimizer.iterations - 1, 0)
        return tau_schedule(step, tf.maximum(self.total_steps, 1), self.base_tau)

    def _symmetric_loss(self, view_1, view_2, training):
        p_1 = self.predictor(self.projector(self.encoder(view_1, training=training), training=training), training=training)
        p_2 = self.predictor(self.projector(self.encoder(view_2, training=training), training=training), training=training)
        z_1 = tf.stop_gradient(self.target_projector(self.target_encoder(view_1, training=training), training=training))
        z_2 = tf.stop_gradient(self.target_projector(self.target_encoder(view_2, training=training), training=training))
        return tf.reduce_mean(byol_loss(p_1, z_2) + byol_loss(p_2, z_1))

    def update_target(self):
        """``target <- tau * target + (1 - tau) * online`` for every parameter, in
        cross-replica context under a strategy. The target's BatchNormalization moving
        statistics are not averaged: the target normalises with batch statistics, and
        its moving statistics follow its own batches."""
        pairs = self._ema_pairs()

        def update(distribution):
            tau = self.tau()
            for target, online in pairs:
                distribution.extended.update(
                    target, lambda t, o, tau=tau: t.assign(tau * t + (1.0 - tau) * tf.cast(o, t.dtype)), args=(online,)
                )

        tf.distribute.get_replica_context().merge_call(update)

    @staticmethod
    def _views(data):
        if isinstance(data, (tuple, list)) and len(data) == 1:  # train_on_batch((v1, v2))
            data = data[0]
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError("BYOL trains on pairs of views: feed (view_1, view_2) batches, e.g. kdtf.data.augment.byol_views(x, batch_size).")
        return data[0], data[1]

    def train_step(self, data):
        view_1, view_2 = self._views(data)
        with tf.GradientTape() as tape:
            loss = self._symmetric_loss(view_1, view_2, True)
            # kernel penalties of the online network (kdtf.optim.add_kernel_regularization)
            penalties = self.encoder.losses + self.projector.losses + self.predictor.losses
            objective = loss + tf.cast(tf.add_n(penalties), tf.float32) if penalties else loss
            scaled = objective / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        self.optimizer.minimize(scaled, self.online_variables, tape=tape)
        self.update_target()
        self.loss_tracker.update_state(loss)
        self.tau_tracker.update_state(self.tau())
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        view_1, view_2 = self._views(data)
        self.loss_tracker.update_state(self._symmetric_loss(view_1, view_2, False))
        return {m.name: m.result() for m in self.metrics}

    def fit(self, x=None, *args, epochs=1, steps_per_epoch=None, **kwargs):
        """``keras.Model.fit``; sets ``total_steps`` (K of the tau schedule) to
        ``epochs * steps_per_epoch`` (or the dataset's length) when it is 0."""
        if int(self.total_steps.numpy()) == 0:
            steps = steps_per_epoch
            if steps is None and isinstance(x, tf.data.Dataset):
                cardinality = int(x.cardinality().numpy())
                steps = cardinality if cardinality > 0 else None
            if steps is None:
                raise ValueError(
                    "BYOL needs the number of training steps for its tau schedule: pass "
                    "steps_per_epoch to fit() or total_steps to BYOL()."
                )
            self.total_steps.assign(int(epochs) * int(steps))
        callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks.append(StopOnNonFiniteLoss(stage=f"BYOL ({self.encoder.name})"))
        return super().fit(x, *args, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, **kwargs)
