"""The label-scarce setting shared by labels_sweep.py and methods.py.

mnist5k with ``labels`` training labels kept (stratified) and the rest unlabeled; the
labelled images are repeated so supervised models get the same optimizer steps per
epoch as a Distiller that sees every training image.
"""

import numpy as np


class LabelScarce:
    """Data, datasets and the supervised baselines for one seed.

    Args:
        seed: split, label choice, shuffling and (through ``supervised``) initial weights.
        labels: training labels to keep; ``None`` keeps them all.
        batch_size: batch size of both datasets.
        image_size: resize the images to this many pixels a side (default: 28).
    """

    def __init__(self, seed, labels=None, batch_size=64, image_size=None):
        from kdtf.data import keep_labels, load

        self.seed = seed
        self.data = load("mnist5k", seed=seed, image_size=image_size)
        if labels is not None:
            self.data.y_train = keep_labels(self.data.y_train, labels, seed=seed)
        self.batch_size = batch_size
        self.steps = int(np.ceil(len(self.data.x_train) / batch_size))
        self.refresh_datasets()

    def refresh_datasets(self):
        """Build ``labelled_ds`` and ``train_ds`` anew from the seed: a run that calls this
        before each training sees the same data order whatever trained before it (a
        shuffled dataset reshuffles on every pass, so sharing one carries the order over)."""
        from kdtf.data import labelled_dataset

        self.labelled_ds, _ = labelled_dataset(self.data.x_train, self.data.y_train, self.batch_size, self.steps, seed=self.seed)
        self.train_ds = self.data.dataset("train", self.batch_size, shuffle=True, seed=self.seed)

    def accuracy(self, model):
        """Top-1 accuracy on the test split."""
        logits = model.predict(self.data.x_test, batch_size=256, verbose=0)
        return float(np.mean(logits.argmax(-1) == self.data.y_test))

    def build(self, model, seed_offset, input_shape=None):
        """A zoo model initialised from ``seed + seed_offset`` (for the data's input shape
        unless ``input_shape`` is given)."""
        from kdtf import keras
        from kdtf.models import build

        keras.utils.set_random_seed(self.seed + seed_offset)
        return build(model, input_shape or self.data.input_shape, self.data.num_classes)

    def _behind_resize(self, model, seed_offset, size):
        from kdtf import keras

        inner = self.build(model, seed_offset, (size, size, self.data.input_shape[-1]))
        inputs = keras.Input(self.data.input_shape)
        resized = keras.layers.Resizing(size, size, interpolation="area", name="to_native_size")(inputs)
        return keras.Model(inputs, inner(resized), name=f"{model}_at_{size}px")

    def supervised(self, model, epochs, seed_offset, native_size=None):
        """``model`` trained by cross-entropy on the labelled images (Adam 1e-3);
        ``native_size``: built at that many pixels a side behind an area resize of the
        inputs (a cheap teacher for images upscaled from small ones)."""
        from kdtf import keras

        net = self.build(model, seed_offset) if native_size is None else self._behind_resize(model, seed_offset, native_size)
        net.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        net.fit(self.labelled_ds, steps_per_epoch=self.steps, epochs=epochs, verbose=0)
        return net
