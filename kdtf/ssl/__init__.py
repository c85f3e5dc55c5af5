"""Self-supervised pretraining (BYOL) and label-free evaluation of encoders."""

from kdtf.ssl.byol import BYOL, byol_loss, mlp, tau_schedule

__all__ = ["BYOL", "byol_loss", "tau_schedule", "mlp"]
