"""Classifiers on ``tf_keras.applications`` backbones, for fine-tuning and as teachers.

``backbone_classifier("mobilenet_v2", (96, 96, 3), 120, weights="notop.h5")`` builds one
flat Functional model::

    input in [0, 1] -> (grey -> RGB) -> the backbone's own preprocessing -> backbone
    (include_top=False, global average pooling) -> Dropout -> Dense logits ("logits")

Flat (the backbone's layers sit in the model, not as one nested layer) so that taps
(FitNets on backbone layers), pruning and QAT reach every layer. The preprocessing each
backbone's ImageNet weights expect is part of the model, made of TFLite builtin ops, so
the exported model takes the same ``[0, 1]`` input as kdtf's pipelines:

* MobileNetV2: ``2x - 1``.
* ResNet50 ("caffe"): ``255x``, RGB -> BGR, minus the ImageNet mean (a fixed 1x1 conv).
* EfficientNetB0: ``255x`` (the model normalises inside).

Nothing is downloaded: ``weights`` is ``None`` or the path of the backbone's no-top
weights file (``*_notop.h5``, see README "Pretrained backbones").
"""

import os

import numpy as np

from kdtf._keras import keras

__all__ = ["BACKBONES", "backbone_classifier", "backbone_layers", "head_layers", "is_backbone_classifier"]

_IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


def _mobilenet_v2(alpha):
    return lambda **kw: keras.applications.MobileNetV2(alpha=alpha, **kw)


BACKBONES = {  # name -> (constructor, preprocessing, weights file Keras publishes)
    "mobilenet_v2": (_mobilenet_v2(1.0), "tf", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5"),
    "mobilenet_v2_035": (_mobilenet_v2(0.35), "tf", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}_no_top.h5"),
    "resnet50": (lambda **kw: keras.applications.ResNet50(**kw), "caffe", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "efficientnet_b0": (lambda **kw: keras.applications.EfficientNetB0(**kw), "torch_inside", "efficientnetb0_notop.h5"),
}
HEAD = ("head_dropout", "logits")
# The applications' BatchNormalization momentum (0.999 in MobileNetV2, 0.99 elsewhere) is
# for ImageNet-length training: trained from scratch for a few hundred steps, the moving
# statistics would stay near their initial values and the model would predict one class
# in inference mode. A backbone built without weights uses this momentum instead.
SCRATCH_BN_MOMENTUM = 0.9


def _preprocess(x, kind):
    layers = keras.layers
    if kind == "tf":
        return layers.Rescaling(2.0, offset=-1.0, name="preprocess_scale")(x)
    if kind == "caffe":
        conv = layers.Conv2D(3, 1, trainable=False, name="preprocess_caffe")
        y = conv(x)
        kernel = np.zeros((1, 1, 3, 3), np.float32)
        for rgb, bgr in ((0, 2), (1, 1), (2, 0)):
            kernel[0, 0, rgb, bgr] = 255.0
        conv.set_weights([kernel, -np.asarray(_IMAGENET_MEAN_BGR, np.float32)])
        return y
    return layers.Rescaling(255.0, name="preprocess_scale")(x)


def _check_weights(weights, name):
    if weights is None:
        return None
    if not isinstance(weights, str) or weights in ("imagenet",):
        raise ValueError(
            f"kdtf does not download weights. Pass weights=None or the path of the "
            f"{name} no-top weights file ({BACKBONES[name][2].format(size='SIZE')}). "
            f"Received: weights={weights!r}"
        )
    if not os.path.isfile(weights):
        raise ValueError(f"Weights file for {name} not found: {weights!r}.")
    return weights


def backbone_classifier(name, input_shape, num_classes, weights=None, dropout=0.2, model_name=None):
    """Builds a flat classifier on a Keras application backbone.

    Args:
        name: one of :data:`BACKBONES` (``mobilenet_v2``, ``mobilenet_v2_035``,
            ``resnet50``, ``efficientnet_b0``).
        input_shape: ``(height, width, channels)``; one channel is repeated to RGB.
        num_classes: classes of the new head.
        weights: ``None`` (random; BatchNormalization momentum
            :data:`SCRATCH_BN_MOMENTUM`) or a local no-top ``.h5`` weights file.
        dropout: dropout before the new Dense head.
        model_name: name of the model (default ``name``).

    Returns:
        A Functional model from ``[0, 1]`` images to logits.
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}. Known: {', '.join(sorted(BACKBONES))}")
    build, preprocessing, _ = BACKBONES[name]
    weights = _check_weights(weights, name)
    height, width, channels = (int(d) for d in input_shape)
    if min(height, width) < 32 or channels not in (1, 3):
        raise ValueError(
            f"{name} needs images of at least 32x32 with 1 or 3 channels. Received: "
            f"input_shape={tuple(input_shape)}; pass --image-size 32 or more."
        )
    inputs = keras.Input((height, width, channels), name="image")
    x = keras.layers.Concatenate(name="grey_to_rgb")([inputs] * 3) if channels == 1 else inputs
    x = _preprocess(x, preprocessing)
    backbone = build(include_top=False, weights=None, input_tensor=x, pooling="avg")
    x = keras.layers.Dropout(dropout, name=HEAD[0])(backbone.output)
    outputs = keras.layers.Dense(num_classes, name=HEAD[1])(x)
    model = keras.Model(inputs, outputs, name=model_name or name)
    if weights:
        _load_backbone_weights(model, build, weights, name, (height, width, 3))
    else:  # from scratch: moving statistics must settle in a few hundred steps, not thousands
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = SCRATCH_BN_MOMENTUM
    return model


def _load_backbone_weights(model, build, path, name, shape):
    try:
        reference = build(include_top=False, weights=path, input_shape=shape, pooling="avg")
    except Exception as error:  # h5py/ValueError from a wrong or corrupt file
        raise ValueError(
            f"Could not load {path!r} as {name} no-top weights ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}). Expected {BACKBONES[name][2].format(size='SIZE')}."
        ) from None
    for layer in reference.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())


def is_backbone_classifier(model):
    """True for models built by :func:`backbone_classifier`."""
    names = [layer.name for layer in model.layers]
    return names[-2:] == list(HEAD) and any(n.startswith("preprocess_") for n in names)


def head_layers(model):
    """The new head: dropout and the Dense logits."""
    return [model.get_layer(n) for n in HEAD]


def backbone_layers(model):
    """The backbone's layers, input side first (the preprocessing and head excluded)."""
    skip = set(HEAD)
    return [
        layer for layer in model.layers
        if layer.name not in skip and not layer.name.startswith("preprocess_")
        and not isinstance(layer, keras.layers.InputLayer) and layer.name != "grey_to_rgb"
    ]
