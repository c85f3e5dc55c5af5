"""Keras 3 models in and out: the one module where the standalone Keras 3 package enters kdtf.

kdtf trains, compresses and exports tf_keras (Keras 2) models, the only ones TF-MOT wraps.
:func:`from_keras3` rebuilds a Keras 3 Sequential or Functional model as tf_keras with the
same weights; :func:`to_keras3` hands a tf_keras model (a distilled, stripped student) back
to Keras 3. Both walk the model's graph node by node and, for each layer:

* translate its config: dtype policies become their name, ``LeakyReLU(negative_slope)``
  becomes ``alpha`` (and back), Keras-3-only arguments left at their default are dropped
  (any other is refused, naming the layer and the argument);
* rebuild activations whose formula differs between the two Kerases from built-in
  layers: Keras 3's ``hard_sigmoid`` is ``relu6(x + 3) / 6`` while tf_keras's is
  ``0.2 x + 0.5``; ``hard_silu``/``hard_swish``, ``relu6`` and ``leaky_relu`` have no
  tf_keras name. Scalar arithmetic on tensors (``x + 3.0``, ``x * (1 / 6)`` in Keras 3's
  MobileNetV3) becomes ``Rescaling``; tensor-tensor arithmetic the merge layers;
* copy the weights by name (``query/kernel``...) with a shape check;
* compare the two models' outputs on random inputs (``verify=True``): a conversion that
  changes the function is refused instead of silently handed on.

Nested Functional/Sequential models (a ``keras.applications`` backbone inside a model)
are converted recursively and stay nested. Layers are limited to :data:`SUPPORTED_LAYERS`
(every layer of Keras 3's MobileNetV2, MobileNetV3Small/Large, ResNet50 and
EfficientNetB0, plus the common ones); subclassed models, ``Lambda`` layers, raw
``keras.ops`` other than scalar arithmetic and custom layers are refused with the fix.

A recorded ``training=`` argument of a Keras 3 node is dropped: Keras 3 lets the outer
call's ``training`` override it, while tf_keras would freeze it.
"""

import inspect
import json
import logging
import os
import zipfile

import numpy as np

from kdtf._keras import is_keras3_model, keras, require_keras_model, tf

logger = logging.getLogger(__name__)


def _keras3():
    """The standalone Keras 3 package, imported on first use: it takes seconds to load and
    only users who bring Keras 3 models need it (a Keras 3 object exists only once they
    imported it themselves)."""
    import keras

    return keras


def _keras3_functional():
    from keras.src.models.functional import Functional

    return Functional

__all__ = [
    "SUPPORTED_LAYERS",
    "as_tf_keras",
    "from_keras3",
    "is_keras3_file",
    "is_keras3_model",
    "load_keras3_file",
    "to_keras3",
]

SUPPORTED_LAYERS = frozenset(
    {
        "InputLayer", "Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D",
        "BatchNormalization", "LayerNormalization",
        "MaxPooling2D", "AveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling2D",
        "GlobalAveragePooling1D", "GlobalMaxPooling1D",
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
        "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
        "Dropout", "Rescaling", "Normalization", "Reshape", "Flatten", "ZeroPadding2D",
        "MultiHeadAttention",
    }
)  # fmt: skip

# Activation names with the same formula in both Kerases: Keras 3 name -> tf_keras name.
_SAME_ACTIVATIONS = {
    name: name
    for name in ("linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus",
                 "softsign", "exponential", "mish", "gelu", "swish")
}  # fmt: skip
_SAME_ACTIVATIONS["silu"] = "swish"
_TO_KERAS3_ACTIVATIONS = {tf_name: k3_name for k3_name, tf_name in _SAME_ACTIVATIONS.items()}
_TO_KERAS3_ACTIVATIONS["swish"] = "silu"
# Keras 3 activations that tf_keras lacks or computes differently: rebuilt from layers.
_REBUILT_ACTIVATIONS = ("relu6", "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish")

_RENAMED_ARGS = {"to tf_keras": {"LeakyReLU": {"negative_slope": "alpha"}},
                 "to Keras 3": {"LeakyReLU": {"alpha": "negative_slope"}}}  # fmt: skip
# Shapes come from the graph (each model is rebuilt from its inputs), never from a config.
_SHAPE_ARGS = ("batch_input_shape", "batch_shape", "input_shape", "batch_size", "input_dim",
               "query_shape", "key_shape", "value_shape")  # fmt: skip
_BASE_ARGS = {"name", "trainable", "dtype", "autocast", "activity_regularizer", "dynamic"}
_SCALAR_OPS = {  # Keras 3 op -> (scale, offset) of Rescaling for "x op c" and for "c op x"
    "Add": (lambda c: (1.0, c), lambda c: (1.0, c)),
    "Subtract": (lambda c: (1.0, -c), lambda c: (-1.0, c)),
    "Multiply": (lambda c: (c, 0.0), lambda c: (c, 0.0)),
    "Divide": (lambda c: (1.0 / c, 0.0), None),
    "TrueDivide": (lambda c: (1.0 / c, 0.0), None),
}
_TENSOR_OPS = ("Add", "Subtract", "Multiply", "Maximum", "Minimum")


def is_keras3_file(path):
    """True for a ``.keras`` archive written by Keras 3.

    Keras 3 and tf_keras both write ``metadata.json`` with ``keras_version`` (``"3.x"``
    against ``"2.x"``); without it, Keras 3's ``InputLayer`` config says ``batch_shape``
    where tf_keras's says ``batch_input_shape``. Any other file gives False.
    """
    path = os.fspath(path)
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "metadata.json" in names:
                version = json.loads(archive.read("metadata.json")).get("keras_version", "")
                return str(version).split(".")[0] == "3"
            return "config.json" in names and b'"batch_shape"' in archive.read("config.json")
    except (zipfile.BadZipFile, OSError, ValueError, AttributeError):
        return False


def from_keras3(model, *, verify=True):
    """Rebuilds a Keras 3 Sequential or Functional model as tf_keras, weights included.

    Args:
        model: a built Keras 3 ``Sequential`` or Functional model whose layers are all in
            :data:`SUPPORTED_LAYERS` (nested Sequential/Functional models included).
        verify: compare the two models' outputs on two random inputs and raise if they
            differ by more than ``1e-4`` (relative to the output scale); skipped when an
            input has an unknown (``None``) size besides the batch.

    Returns:
        A tf_keras model of the same kind, with the same layer names and weights.

    Raises:
        ValueError: for a subclassed model, a Lambda, custom or unsupported layer, a
            Keras-3-only argument, a quantized layer, or outputs that differ; the message
            names the layer and the fix.
    """
    if not is_keras3_model(model):
        raise ValueError(
            f"Expected a Keras 3 model (from `import keras`). Received: model={model!r} of type "
            f"{type(model).__name__}. tf_keras models need no conversion."
        )
    converted = _from_keras3_model(model)
    _finish(model, converted, verify, "Keras 3", "tf_keras")
    return converted


def to_keras3(model, *, verify=True):
    """Rebuilds a tf_keras Sequential or Functional model as a Keras 3 model, weights included.

    Strip compression wrappers first (:func:`kdtf.compress.strip_pruning`,
    :func:`kdtf.compress.strip_clustering`); a quantization-aware (QAT) model has no
    Keras 3 form: ship its ``.tflite`` (:func:`kdtf.export.to_tflite`).

    Args:
        model: a tf_keras model whose layers are all in :data:`SUPPORTED_LAYERS`.
        verify: compare the outputs on random inputs, as in :func:`from_keras3`.

    Returns:
        A Keras 3 model of the same kind with the same layer names and weights.
    """
    require_keras_model(model, "model")
    converted = _to_keras3_model(model)
    _finish(model, converted, verify, "tf_keras", "Keras 3")
    return converted


def as_tf_keras(model, argument):
    """``model`` as a tf_keras model: a Keras 3 model is converted (one info line), a
    tf_keras model returned as is, anything else refused naming ``argument``."""
    if is_keras3_model(model):
        return from_keras3(model)
    return require_keras_model(model, argument)


def load_keras3_file(path, *, safe_mode=True):
    """Loads a Keras 3 ``.keras`` file with Keras 3 (safe mode kept) and returns its
    tf_keras rebuild (:func:`from_keras3`); any failure is one ValueError naming the file."""
    try:
        model = _keras3().saving.load_model(path, compile=False, safe_mode=safe_mode)
    except (ValueError, TypeError, KeyError, OSError) as error:
        text = str(error)
        message = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        if "safe_mode" in text or "Lambda" in text:
            message = (
                "it holds a Lambda layer with Python code, which safe mode refuses to run. kdtf "
                "cannot convert Lambda layers from Keras 3 either: replace the Lambda with built-in "
                "layers and save the model again"
            )
        elif "Could not locate" in text:
            message += " kdtf converts Keras 3 models made of built-in layers only (kdtf.keras3.SUPPORTED_LAYERS)."
        raise ValueError(f"Cannot load {path!r} (saved by Keras 3): {message}") from None
    try:
        return from_keras3(model)
    except ValueError as error:
        raise ValueError(f"Cannot convert {path!r} (saved by Keras 3) to tf_keras: {error}") from None


def _finish(source, converted, verify, source_kind, target_kind):
    diff = _check_outputs(source, converted, source_kind, target_kind) if verify else None
    checked = "not checked" if diff is None else f"outputs match, max |diff| {diff:.1e}"
    logger.info(
        "converted the %s model '%s' to %s: %d layers, %s parameters (%s)",
        source_kind, source.name, target_kind, len(converted.layers), f"{converted.count_params():,}", checked,
    )


# ---- the graph walk shared by both directions -------------------------------------------


class _Rebuild:
    """Converts each layer once (shared layers stay shared) and remembers which converted
    layer takes which source layer's weights."""

    def __init__(self, convert_layer):
        self._convert_layer = convert_layer
        self._calls = {}
        self.pairs = []  # (source layer, converted layer) whose weights are copied
        self.names = set()

    def __call__(self, layer):
        if id(layer) not in self._calls:
            holder, call = self._convert_layer(layer, self)
            if holder is not None:
                self.pairs.append((layer, holder))
            self._calls[id(layer)] = call
        return self._calls[id(layer)]

    def unique(self, name):
        candidate, i = name, 1
        while candidate in self.names:
            candidate, i = f"{name}_{i}", i + 1
        self.names.add(candidate)
        return candidate


def _walk(nodes_by_depth, tensors, node_parts, rebuild, drop_kwargs):
    """Calls every node's converted layer on the converted tensors, deepest node first,
    filling ``tensors`` (id of a source tensor -> converted tensor)."""
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if node.is_input:
                continue
            layer, inputs, args, kwargs, outputs = node_parts(node)
            if any(id(x) not in tensors for x in inputs):
                continue  # not on the path from this model's inputs (as Keras does)
            args, kwargs = tf.nest.map_structure(lambda v: tensors.get(id(v), v), (list(args), dict(kwargs)))
            call = rebuild(layer)
            result = call(*args, **_call_kwargs(call, layer, kwargs, drop_kwargs))
            for old, new in zip(outputs, tf.nest.flatten(result)):
                tensors[id(old)] = new


def _call_kwargs(call, layer, kwargs, drop):
    kwargs = {k: v for k, v in kwargs.items() if k not in drop}
    if not hasattr(call, "call"):
        return kwargs
    parameters = inspect.signature(call.call).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return kwargs
    unknown = [k for k in kwargs if k not in parameters]
    for key in unknown:
        if kwargs[key] is not None and kwargs[key] is not False:
            raise ValueError(
                f"Layer '{layer.name}' is called with {key}={kwargs[key]!r}, which the other "
                f"Keras's {type(call).__name__} does not take. Call it without {key}= before converting."
            )
    return {k: v for k, v in kwargs.items() if k not in unknown}


def _single(values):
    return values[0] if len(values) == 1 else list(values)


# ---- Keras 3 -> tf_keras -------------------------------------------------------------------


def _keras3_parts(node):
    return node.operation, node.input_tensors, node.arguments.args, node.arguments.kwargs, node.outputs


def _from_keras3_model(model):
    if not isinstance(model, (_keras3().Sequential, _keras3_functional())):
        raise ValueError(
            f"Expected a Keras 3 Sequential or Functional model. Received: the subclassed model "
            f"'{model.name}' ({type(model).__name__}), whose call() is Python code that cannot be "
            "rebuilt layer by layer. Rewrite it as a Functional model (keras.Model(inputs, "
            "outputs)) or build it with tf_keras (`from kdtf import keras`)."
        )
    functional = getattr(model, "_functional", model) if isinstance(model, _keras3().Sequential) else model
    if functional is None or not functional.inputs:
        raise ValueError(
            f"Expected a built Keras 3 model. Received: '{model.name}' has no inputs yet. Start it "
            "with keras.Input(shape) or call model.build(input_shape) first."
        )
    rebuild = _Rebuild(_tf_keras_layer)
    inputs = [_tf_keras_input(x, rebuild) for x in functional.inputs]
    if isinstance(model, _keras3().Sequential):
        calls = [rebuild(layer) for layer in model.layers]
        if all(isinstance(call, keras.layers.Layer) for call in calls):
            converted = keras.Sequential([inputs[0], *calls], name=model.name)
            return _with_weights(model, converted, rebuild.pairs)
    tensors = dict(zip(map(id, functional.inputs), inputs))
    _walk(functional._nodes_by_depth, tensors, _keras3_parts, rebuild, drop_kwargs=("training",))
    outputs = _single([tensors[id(x)] for x in functional.outputs])
    return _with_weights(model, keras.Model(_single(inputs), outputs, name=model.name), rebuild.pairs)


def _tf_keras_input(x, rebuild):
    layer = x._keras_history[0]
    return keras.Input(batch_shape=tuple(x.shape), dtype=x.dtype, name=rebuild.unique(layer.name))


def _tf_keras_layer(layer, rebuild):
    """(layer receiving the weights or None, callable on tf_keras tensors) for one Keras 3
    operation."""
    kind = type(layer).__name__
    if isinstance(layer, _keras3().Model):
        rebuild.unique(layer.name)
        return None, _from_keras3_model(layer)  # its weights are copied by the recursion
    if type(layer).__module__.startswith("keras.src.ops."):
        return None, _scalar_op(layer, rebuild)
    _require_supported(layer, "keras.src.layers.", "Keras 3")
    if kind == "Activation":
        return None, _activation(_activation_name(layer, layer.get_config()["activation"]), layer.name, rebuild)
    target = getattr(keras.layers, kind)
    config = _layer_config(layer, target, "to tf_keras")
    after = None
    if "activation" in config:
        name = _activation_name(layer, config["activation"])
        if name in _SAME_ACTIVATIONS:
            config["activation"] = _SAME_ACTIVATIONS[name]
        else:
            config["activation"] = "linear"
            after = _activation(name, f"{layer.name}_{name}", rebuild)
    config["name"] = rebuild.unique(layer.name)
    converted = _construct(target, config, layer, "tf_keras")
    holder = None if kind == "Normalization" else converted  # its statistics are in the config
    if after is None:
        return holder, converted
    return holder, lambda *args, **kwargs: after(converted(*args, **kwargs))


def _activation_name(layer, activation):
    if isinstance(activation, str) and activation in {*_SAME_ACTIVATIONS, *_REBUILT_ACTIVATIONS}:
        return activation
    raise ValueError(
        f"Layer '{layer.name}' uses the activation {activation!r}, which kdtf cannot carry over "
        f"to tf_keras. Supported: {', '.join(sorted({*_SAME_ACTIVATIONS, *_REBUILT_ACTIVATIONS}))}. "
        "Use one of them, or rebuild the model with tf_keras."
    )


def _activation(name, layer_name, rebuild):
    """A tf_keras callable computing Keras 3's activation ``name`` with built-in layers."""
    layers = keras.layers
    if name in _SAME_ACTIVATIONS:
        return layers.Activation(_SAME_ACTIVATIONS[name], name=rebuild.unique(layer_name))
    if name == "relu6":
        return layers.ReLU(6.0, name=rebuild.unique(layer_name))
    if name == "leaky_relu":  # Keras 3's default negative_slope
        return layers.LeakyReLU(alpha=0.2, name=rebuild.unique(layer_name))
    # hard_sigmoid(x) = relu6(x + 3) / 6 in Keras 3; hard_silu(x) = x * hard_sigmoid(x)
    shift = layers.Rescaling(1.0, offset=3.0, name=rebuild.unique(f"{layer_name}_add3"))
    relu6 = layers.ReLU(6.0, name=rebuild.unique(f"{layer_name}_relu6"))
    scale = layers.Rescaling(1.0 / 6.0, name=rebuild.unique(f"{layer_name}_div6"))
    if name == "hard_sigmoid":
        return lambda x: scale(relu6(shift(x)))
    product = layers.Multiply(name=rebuild.unique(layer_name))
    return lambda x: product([x, scale(relu6(shift(x)))])


def _scalar_op(op, rebuild):
    """A tf_keras callable for Keras 3 arithmetic on tensors: ``Rescaling`` when one side
    is a number, the merge layer when both are tensors."""
    kind = type(op).__name__

    def call(*args, **kwargs):
        tensors = [not isinstance(a, (int, float, np.number, np.ndarray)) for a in args]
        if kind in _SCALAR_OPS and len(args) == 2 and not kwargs:
            if all(tensors) and kind in _TENSOR_OPS:
                return getattr(keras.layers, kind)(name=rebuild.unique(op.name))(list(args))
            side = 0 if tensors[0] else 1
            rule = _SCALAR_OPS[kind][side]
            if any(tensors) and rule is not None and np.ndim(args[1 - side]) == 0:
                scale, offset = rule(float(args[1 - side]))
                return keras.layers.Rescaling(scale, offset=offset, name=rebuild.unique(op.name))(args[side])
        raise ValueError(
            f"Expected only layers and arithmetic with a number between them in the Keras 3 model. "
            f"Received: the operation '{op.name}' (keras.ops {kind}), which tf_keras cannot rebuild. "
            "Replace it with a built-in layer (kdtf.keras3.SUPPORTED_LAYERS) before converting."
        )

    return call


# ---- tf_keras -> Keras 3 -------------------------------------------------------------------


def _tf_keras_parts(node):
    return node.layer, node.keras_inputs, node.call_args, node.call_kwargs, tf.nest.flatten(node.outputs)


def _to_keras3_model(model):
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"Expected a tf_keras Sequential or Functional model. Received: the subclassed model "
            f"'{model.name}' ({type(model).__name__}); rewrite it as a Functional model."
        )
    if not model.inputs:
        raise ValueError(f"Expected a built tf_keras model. Received: '{model.name}' has no inputs yet; build it first.")
    rebuild = _Rebuild(_keras3_layer)
    inputs = [
        _keras3().Input(batch_shape=tuple(x.shape), dtype=x.dtype.name, name=rebuild.unique(x._keras_history.layer.name))
        for x in model.inputs
    ]
    if isinstance(model, keras.Sequential):
        converted = _keras3().Sequential([inputs[0], *map(rebuild, model.layers)], name=model.name)
        return _with_weights(model, converted, rebuild.pairs)
    tensors = dict(zip(map(id, model.inputs), inputs))
    _walk(model._nodes_by_depth, tensors, _tf_keras_parts, rebuild, drop_kwargs=())
    outputs = _single([tensors[id(x)] for x in model.outputs])
    return _with_weights(model, _keras3().Model(_single(inputs), outputs, name=model.name), rebuild.pairs)


def _keras3_layer(layer, rebuild):
    kind = type(layer).__name__
    if isinstance(layer, keras.Model):
        rebuild.unique(layer.name)
        return None, _to_keras3_model(layer)
    if type(layer).__module__.startswith("tensorflow_model_optimization"):
        raise ValueError(
            f"Layer '{layer.name}' ({kind}) is a TF-MOT wrapper. Strip it first "
            "(kdtf.compress.strip_pruning / strip_clustering); a quantization-aware model has no "
            "Keras 3 form: ship its .tflite (kdtf.export.to_tflite)."
        )
    _require_supported(layer, "tf_keras.src.layers.", "tf_keras")
    target = getattr(_keras3().layers, kind)
    config = _layer_config(layer, target, "to Keras 3")
    if "activation" in config:
        activation = config["activation"]
        if not isinstance(activation, str) or activation not in _TO_KERAS3_ACTIVATIONS:
            raise ValueError(
                f"Layer '{layer.name}' uses the tf_keras activation {activation!r}, which has no "
                f"Keras 3 equivalent with the same formula. Supported: {', '.join(sorted(_TO_KERAS3_ACTIVATIONS))}."
            )
        config["activation"] = _TO_KERAS3_ACTIVATIONS[activation]
    config["name"] = rebuild.unique(layer.name)
    converted = _construct(target, config, layer, "Keras 3")
    return (None if kind == "Normalization" else converted), converted


# ---- layer configs and weights -------------------------------------------------------------


def _require_supported(layer, module_prefix, framework):
    kind = type(layer).__name__
    if kind == "Lambda":
        raise ValueError(
            f"Layer '{layer.name}' is a Lambda layer: its Python function cannot be carried over "
            "between Kerases. Replace it with built-in layers (kdtf.keras3.SUPPORTED_LAYERS), or "
            "rebuild the model with tf_keras (`from kdtf import keras`)."
        )
    if kind not in SUPPORTED_LAYERS or not type(layer).__module__.startswith(module_prefix):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__module__}.{kind}) is not a {framework} layer kdtf "
            "can convert; it converts the built-in layers in kdtf.keras3.SUPPORTED_LAYERS. "
            "Replace it with those, or rebuild that part of the model with tf_keras."
        )


def _init_parameters(cls):
    """Constructor parameters of ``cls`` and its bases: name -> default (or ``empty``)."""
    parameters = {}
    for klass in reversed(cls.__mro__[:-1]):  # subclasses override their bases' defaults
        init = vars(klass).get("__init__")
        if init is not None:
            parameters.update({k: p.default for k, p in inspect.signature(init).parameters.items()})
    for name in ("self", "args", "kwargs"):
        parameters.pop(name, None)
    return parameters


def _is_default(layer, key, value):
    """True when ``key=value`` leaves a feature off: None, False, or the layer's default;
    an initializer the other Keras has no place for never matters (weights are copied)."""
    if value is None or value is False or key.endswith("_initializer"):
        return True
    default = _init_parameters(type(layer)).get(key, inspect.Parameter.empty)
    return default is not inspect.Parameter.empty and _plain(default, layer) == value


def _plain(value, layer):
    """A config value as the other Keras reads it: a dtype policy as its name, a nested
    Keras object (initializer, regularizer, constraint) without the bookkeeping keys."""
    if isinstance(value, (list, tuple)):  # tf_keras hands out tracked ListWrappers
        return [_plain(v, layer) for v in value]
    if not (isinstance(value, dict) and "class_name" in value and "config" in value):
        return value
    kind, config = value["class_name"], value["config"] or {}
    if kind in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
        return config["name"]
    if "DTypePolicy" in kind:
        raise ValueError(
            f"Layer '{layer.name}' is quantized ({config.get('name', kind)}). Convert the float "
            "model before quantizing it, then quantize through kdtf (kdtf.export.to_tflite(..., 'int8'))."
        )
    return {"class_name": kind, "config": {k: v for k, v in config.items() if v is not None}}


def _layer_config(layer, target, direction):
    kind = type(layer).__name__
    config = {k: _plain(v, layer) for k, v in layer.get_config().items() if k not in _SHAPE_ARGS}
    for old, new in _RENAMED_ARGS[direction].get(kind, {}).items():
        if old in config:
            config[new] = config.pop(old)
    if kind == "BatchNormalization" and isinstance(config.get("axis"), list) and len(config["axis"]) == 1:
        config["axis"] = config["axis"][0]  # tf_keras stores [3], Keras 3 wants 3
    if kind == "Normalization":  # statistics as constants: Keras 3 has no `count` weight
        config["mean"] = np.squeeze(np.asarray(layer.mean)).tolist()
        config["variance"] = np.squeeze(np.asarray(layer.variance)).tolist()
    accepted = _BASE_ARGS | set(_init_parameters(target))
    for key in [k for k in config if k not in accepted]:
        value = config.pop(key)
        if not _is_default(layer, key, value):
            raise ValueError(
                f"Layer '{layer.name}' ({kind}) sets {key}={value!r}, which the {direction[3:]} "
                f"{kind} does not have. Leave {key} at its default before converting."
            )
    return config


def _construct(target, config, layer, framework):
    try:
        return target(**config)  # from_config would also want build shapes (MultiHeadAttention)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Cannot rebuild layer '{layer.name}' ({type(layer).__name__}) in {framework}: "
            f"{str(error).strip().splitlines()[0]}"
        ) from None


def _weight_key(layer, variable):
    name = (getattr(variable, "path", None) or variable.name).split(":")[0]
    prefix = f"{layer.name}/"
    return name.split(prefix, 1)[1] if prefix in name else name.rsplit("/", 1)[-1]


def _with_weights(model, converted, pairs):
    """Copies each source layer's weights into its converted layer, by weight name
    (``query/kernel``...), else in order; checks every shape. A frozen source model gives
    a frozen model (its layers carry their own ``trainable`` in their configs)."""
    if not model.trainable:
        converted.trainable = False
    for source, target in pairs:
        values = source.get_weights()
        source_keys = [_weight_key(source, v) for v in source.weights]
        target_keys = [_weight_key(target, v) for v in target.weights]
        if len(source_keys) != len(target_keys):
            raise ValueError(
                f"Layer '{source.name}' ({type(source).__name__}) has {len(source_keys)} weights "
                f"({', '.join(source_keys)}) but its rebuild has {len(target_keys)} ({', '.join(target_keys)})."
            )
        by_name = sorted(source_keys) == sorted(target_keys) and len(set(source_keys)) == len(source_keys)
        order = [source_keys.index(k) for k in target_keys] if by_name else range(len(values))
        ordered = [values[i] for i in order]
        for key, value, variable in zip(target_keys, ordered, target.weights):
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Expected weight '{key}' of layer '{source.name}' to have shape "
                    f"{tuple(variable.shape)} in the rebuilt layer. Received: shape {tuple(value.shape)}."
                )
        target.set_weights(ordered)
    return converted


def _check_outputs(source, converted, source_kind, target_kind):
    """Largest absolute output difference on two random inputs, or None when an input
    size is unknown or not float; raises when the outputs differ."""
    shapes = [tuple(x.shape) for x in source.inputs]
    dtypes = [np.dtype(getattr(x.dtype, "name", x.dtype)) for x in source.inputs]
    if any(d is None for s in shapes for d in s[1:]) or not all(np.issubdtype(t, np.floating) for t in dtypes):
        return None
    rng = np.random.default_rng(0)
    feed = _single([rng.normal(size=(2,) + s[1:]).astype(t) for s, t in zip(shapes, dtypes)])
    expected = [np.asarray(y, np.float64) for y in tf.nest.flatten(source(feed, training=False))]
    received = [np.asarray(y, np.float64) for y in tf.nest.flatten(converted(feed, training=False))]
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, received))
    scale = max(1.0, max(float(np.max(np.abs(a))) for a in expected))
    if not diff <= 1e-4 * scale:
        raise ValueError(
            f"The {target_kind} rebuild of '{source.name}' gives outputs up to {diff:.3g} away from "
            f"the {source_kind} model on random inputs: a layer's arguments mean different things in "
            "the two Kerases. Please report it with the model's config; verify=False skips this check."
        )
    return diff
