"""Which output channels of a model can be removed, and which are tied together.

Every filter of a Conv2D, SeparableConv2D or Dense layer (a *producer*) gets a channel
id. :class:`ChannelGraph` walks the model and labels the last axis of every tensor with
the ids it carries: channel-wise layers (BatchNormalization, activations, pooling,
DepthwiseConv2D, padding, dropout, a Reshape that keeps the last axis as in
squeeze-and-excitation) pass the labels on; ``Concatenate`` on the channel axis joins
them; ``Flatten`` repeats them once per spatial position (so the Dense after it loses
whole rows); ``Add``/``Multiply``/... tie the channels they combine (union-find
over ids), so a ResNet block's convolutions and its shortcut are pruned together.

A channel class (ids tied together) is *frozen*, never removed, when it reaches a model
output, the model input, a layer type that cannot be sliced (``Lambda``,
``LayerNormalization``, a ``Reshape`` that moves the channel axis, ...), a grouped
convolution, a softmax, or a layer that is not trainable. A producer all of whose
classes are frozen is *unprunable*, with the reason.
"""

import collections

import numpy as np

from kdtf._keras import keras, tf
from kdtf.compress.graph import walk

__all__ = ["ChannelGraph", "FilterGroup", "PRODUCER_TYPES", "filter_count"]

layers = keras.layers
PRODUCER_TYPES = (layers.Conv2D, layers.SeparableConv2D, layers.Dense)
# exact types only: a subclass (Conv2DTranspose is a Conv2D) may lay out its weights
# differently, so it counts as unknown
_PASS_THROUGH = {
    layers.BatchNormalization, layers.ReLU, layers.Activation, layers.LeakyReLU, layers.ELU,
    layers.PReLU, layers.ThresholdedReLU, layers.Dropout, layers.SpatialDropout2D,
    layers.GaussianNoise, layers.GaussianDropout, layers.AlphaDropout, layers.ActivityRegularization,
    layers.MaxPooling2D, layers.AveragePooling2D, layers.GlobalAveragePooling2D,
    layers.GlobalMaxPooling2D, layers.ZeroPadding2D, layers.Cropping2D, layers.UpSampling2D,
    layers.Rescaling, layers.DepthwiseConv2D,
}
_ELEMENTWISE = {layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum, layers.Minimum}
_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")

FilterGroup = collections.namedtuple("FilterGroup", ["layers", "filters"])
FilterGroup.__doc__ = """Producers whose filters are removed together; ``filters`` prunable channels."""

_Reason = collections.namedtuple("_Reason", ["site", "own", "other"])


def filter_count(layer):
    """Output channels (filters or units) of a producer layer."""
    return int(layer.units if type(layer) is layers.Dense else layer.filters)


def _unsupported(layer):
    """Why ``layer`` cannot be sliced channel-wise, or None when it can."""
    kind = type(layer)
    config = layer.get_config()
    if config.get("data_format") == "channels_first":
        return "data_format='channels_first'"
    if kind is layers.Conv2D and config.get("groups", 1) != 1:
        return f"a grouped convolution (groups={config['groups']})"
    if kind is layers.BatchNormalization and list(np.ravel(layer.axis)) != [len(layer.input_shape) - 1]:
        return f"normalises axis {layer.axis}, not the channel axis"
    if kind is layers.Rescaling and (np.ndim(config["scale"]) or np.ndim(config["offset"])):
        return "per-channel scale or offset"
    if kind is layers.Reshape and layer.input_shape[-1] != layer.output_shape[-1]:
        return "a reshape that moves the channel axis"
    if kind in (layers.Concatenate, layers.Flatten, layers.Reshape) or kind in _ELEMENTWISE:
        return None
    if kind in PRODUCER_TYPES or kind in _PASS_THROUGH:
        return None
    if isinstance(layer, keras.Model):
        return "a nested model (rebuild it flat, as kdtf.models.backbone_classifier does)"
    return "a layer type filter pruning cannot slice"


def _output_widths(node):
    return [t.shape[-1] for t in tf.nest.flatten(node.outputs)]


class ChannelGraph:
    """Channel ids of every producer, the labels each layer's input carries, the tied
    classes, the frozen ones with their reasons, and the prunable groups.

    Attributes:
        producers: ``{layer_name: int array}``, the ids of the layer's filters.
        inputs: ``{layer_name: int array}``, the ids on the last axis of the layer's
            (first) input, for every layer whose weights (or Reshape target) follow
            its input channels.
        groups: list of :class:`FilterGroup`, input side first.
        unprunable: ``{layer_name: reason}`` for producers nothing can be removed from.
    """

    def __init__(self, model):
        self.model = model
        self._parent = []
        self._frozen = {}
        self.producers, self.inputs = {}, {}
        self._order = {layer.name: i for i, layer in enumerate(model.layers)}
        labels = [self._new(t.shape[-1], _Reason(n, "", f"is tied to the model input '{n}'"))
                  for t, n in zip(model.inputs, model.input_names)]
        outputs = walk(model, labels, self._propagate)
        for site, ids in zip(model.output_names, outputs):
            self._freeze(ids, _Reason(site, "is a model output", f"reaches the model output '{site}'"))
        self._frozen_by_root = {}
        for i, reason in sorted(self._frozen.items()):
            self._frozen_by_root.setdefault(self._find(i), reason)
        self._classes = {name: self.root(ids) for name, ids in self.producers.items()}
        self.unprunable = self._unprunable()
        self.groups = self._groups()

    # union-find over channel ids
    def _new(self, count, frozen=None):
        if count is None:
            return None
        ids = np.arange(len(self._parent), len(self._parent) + int(count))
        self._parent.extend(ids.tolist())
        if frozen is not None:
            self._freeze(ids, frozen)
        return ids

    def _find(self, i):
        while self._parent[i] != i:
            self._parent[i] = self._parent[self._parent[i]]
            i = self._parent[i]
        return i

    def root(self, ids):
        """The class (root id) of each id."""
        return np.array([self._find(int(i)) for i in ids], dtype=np.int64)

    def _tie(self, a, b):
        for i, j in zip(a.tolist(), b.tolist()):
            ri, rj = self._find(i), self._find(j)
            if ri != rj:
                self._parent[max(ri, rj)] = min(ri, rj)

    def _freeze(self, ids, reason):
        if ids is not None:
            for i in ids.tolist():
                self._frozen.setdefault(i, reason)

    def _propagate(self, node, labels):
        layer = node.layer
        why = _unsupported(layer)
        if why is not None:
            return self._block(node, labels, why)
        kind = type(layer)
        if kind in PRODUCER_TYPES or kind in _PASS_THROUGH or kind is layers.Reshape:
            self.inputs[layer.name] = labels[0]
        if kind in PRODUCER_TYPES:
            return self._producer(layer)
        if kind is layers.DepthwiseConv2D:
            return None if labels[0] is None else np.repeat(labels[0], layer.depth_multiplier)
        if kind is layers.Activation and layer.get_config()["activation"] in _CHANNEL_MIXING_ACTIVATIONS:
            self._freeze(labels[0], _Reason(layer.name, "", f"feeds the softmax '{layer.name}'"))
        if kind is layers.Flatten:
            shape = layer.input_shape[1:-1]
            if labels[0] is None or None in shape:
                self._freeze(labels[0], _Reason(layer.name, "", f"feeds Flatten '{layer.name}' of unknown input shape"))
                return self._new(layer.output_shape[-1])
            return np.tile(labels[0], int(np.prod(shape)))
        if kind is layers.Concatenate:
            return self._concatenate(layer, labels)
        if kind in _ELEMENTWISE:
            return self._elementwise(node, labels)
        return labels[0]

    def _producer(self, layer):
        ids = self._new(filter_count(layer))
        self.producers[layer.name] = ids
        if not layer.trainable:
            self._freeze(ids, _Reason(layer.name, "is not trainable", f"is tied to '{layer.name}', which is not trainable"))
        activation = layer.get_config().get("activation")
        if activation in _CHANNEL_MIXING_ACTIVATIONS:
            self._freeze(ids, _Reason(layer.name, f"ends in a {activation} over its filters", ""))
        return ids

    def _concatenate(self, layer, labels):
        if any(ids is None for ids in labels):
            return None
        axis = layer.axis % len(layer.output_shape)
        if axis == len(layer.output_shape) - 1:
            return np.concatenate(labels)
        for ids in labels[1:]:  # joined along another axis: channel i of each input is one channel
            self._tie(labels[0], ids)
        return labels[0]

    def _elementwise(self, node, labels):
        width = _output_widths(node)[0]
        full = [ids for ids in labels if ids is not None and len(ids) == width]
        if len(full) != len([ids for ids in labels if ids is not None and len(ids) != 1]):
            return self._block(node, labels, "inputs of different widths")
        for ids in full[1:]:
            self._tie(full[0], ids)
        return full[0] if full else None

    def _block(self, node, labels, why):
        """Freezes every input channel of ``node`` and gives its outputs frozen ids."""
        layer, kind = node.layer, type(node.layer).__name__
        for ids in labels:
            self._freeze(ids, _Reason(layer.name, f"is {why}", f"feeds {kind} '{layer.name}' ({why})"))
        blocked = _Reason(layer.name, f"is {why}", f"is tied to the output of {kind} '{layer.name}' ({why})")
        outputs = [self._new(width, blocked) for width in _output_widths(node)]
        return outputs if len(outputs) > 1 else outputs[0]

    def frozen_reason(self, root):
        """The reason a class is frozen, or None."""
        return self._frozen_by_root.get(int(root))

    def _unprunable(self):
        found = {}
        for name, classes in self._classes.items():
            reasons = [self.frozen_reason(r) for r in classes]
            if len(classes) and all(reasons):
                reason = next((r for r in reasons if r.site == name and r.own), reasons[0])
                found[name] = reason.own if reason.site == name and reason.own else reason.other
        return found

    def _groups(self):
        """Producers linked by a shared prunable class, joined (union-find on names)."""
        owner = {}
        parent = {name: name for name in self.producers if name not in self.unprunable}

        def find(name):
            while parent[name] != name:
                name = parent[name]
            return name

        for name in parent:
            for r in self.prunable_classes(name):
                if r in owner and find(owner[r]) != find(name):
                    parent[find(name)] = find(owner[r])
                owner.setdefault(r, name)
        members = collections.defaultdict(list)
        for name in sorted(parent, key=self._order.get):
            members[find(name)].append(name)
        groups = [FilterGroup(tuple(names), len(self.group_classes(names))) for names in members.values()]
        return sorted(groups, key=lambda g: self._order[g.layers[0]])

    def prunable_classes(self, name):
        """Classes of producer ``name`` that are not frozen, in filter order, unique."""
        seen = dict.fromkeys(int(r) for r in self._classes[name] if self.frozen_reason(r) is None)
        return np.array(list(seen), dtype=np.int64)

    def group_classes(self, names):
        """The prunable classes of a group of producers, unique, in first-seen order."""
        seen = dict.fromkeys(int(r) for name in names for r in self.prunable_classes(name))
        return np.array(list(seen), dtype=np.int64)

    def keep_mask(self, ids, removed):
        """Boolean mask over ``ids``: False where the id's class is in ``removed``."""
        if ids is None:
            return None
        return ~np.isin(self.root(ids), np.fromiter(removed, np.int64, len(removed)))
