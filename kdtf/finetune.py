"""Two-phase fine-tuning of a backbone classifier, plain or teacher-assisted.

Phase 1 (feature extraction): the backbone is frozen and only the new head trains.
Phase 2: the top ``unfreeze_layers`` layers of the backbone are unfrozen and train with
a lower learning rate. BatchNormalization layers stay frozen in both phases; in tf_keras
a BatchNormalization layer with ``trainable=False`` runs in inference mode, so its moving
statistics (from pretraining) are neither used as batch statistics nor updated — the
recipe of the Keras transfer-learning guide.

With ``teacher=...`` both phases train through :class:`kdtf.Distiller` (teacher-assisted
fine-tuning: a small pretrained student learns the target task from the labels and from
a fine-tuned teacher).
"""

from kdtf import validation
from kdtf._keras import keras
from kdtf.models.transfer import backbone_layers, head_layers, is_backbone_classifier
from kdtf.training import fit

__all__ = ["freeze_backbone", "unfreeze_top", "fine_tune"]


def _require_backbone(model):
    if not is_backbone_classifier(model):
        raise ValueError(
            f"Model '{model.name}' was not built by kdtf.models.backbone_classifier; "
            "fine-tuning needs its backbone/head split."
        )


def freeze_backbone(model):
    """Freezes every backbone layer; the head stays trainable. Returns ``model``."""
    _require_backbone(model)
    for layer in backbone_layers(model):
        layer.trainable = False
    for layer in head_layers(model):
        layer.trainable = True
    return model


def unfreeze_top(model, layers):
    """Unfreezes the last ``layers`` backbone layers, except BatchNormalization, which
    stays frozen (inference mode). Returns the names of the unfrozen layers with weights."""
    _require_backbone(model)
    backbone = backbone_layers(model)
    validation.integer("unfreeze_layers", layers, 0, len(backbone),
                       what=f"an integer between 0 and the {len(backbone)} backbone layers of '{model.name}'")
    freeze_backbone(model)
    unfrozen = []
    for layer in backbone[len(backbone) - layers:]:
        if isinstance(layer, keras.layers.BatchNormalization):
            continue
        layer.trainable = True
        if layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


def fine_tune(
    model, train_ds, val_ds=None, *, head_epochs, epochs, unfreeze_layers=30, learning_rate=1e-3,
    finetune_learning_rate=1e-4, teacher=None, spec=None, loss=None, **fit_args,
):
    """Fine-tunes ``model`` in two phases (head only, then the top of the backbone).

    Args:
        model: a :func:`kdtf.models.backbone_classifier` model.
        train_ds, val_ds: ``tf.data`` pipelines of ``(x, y)``.
        head_epochs: epochs of phase 1 (0 skips it).
        epochs: epochs of phase 2 (0 skips it).
        unfreeze_layers: backbone layers unfrozen in phase 2, counted from the top.
        learning_rate, finetune_learning_rate: optimizers of the two phases (a float is
            Adam's learning rate; see :func:`kdtf.training.make_optimizer`).
        teacher: a teacher model for teacher-assisted fine-tuning, or ``None``.
        spec: the :class:`kdtf.spec.DistillSpec` when ``teacher`` is given.
        loss: the loss without a teacher (default sparse cross-entropy on logits).
        **fit_args: passed to ``fit`` (``steps_per_epoch``, ``callbacks``, ``verbose``).

    Returns:
        ``{"head": history, "finetune": history, "unfrozen": [layer names]}``.
    """
    validation.integer("head_epochs", head_epochs, 0)
    validation.integer("epochs", epochs, 0)
    phase = dict(teacher=teacher, spec=spec, loss=loss, validation_data=val_ds, **fit_args)
    result = {"head": {}, "finetune": {}, "unfrozen": []}
    freeze_backbone(model)
    if head_epochs:
        result["head"] = fit(model, train_ds, epochs=head_epochs, optimizer=learning_rate, **phase).history
    result["unfrozen"] = unfreeze_top(model, unfreeze_layers)
    if epochs:
        result["finetune"] = fit(model, train_ds, epochs=epochs, optimizer=finetune_learning_rate, **phase).history
    return result
