"""Model zoo: small teachers and students, and classifiers on Keras application backbones."""

from kdtf.models.transfer import backbone_classifier
from kdtf.models.zoo import build, is_backbone, names, student_cnn, teacher_cnn

__all__ = ["build", "names", "is_backbone", "student_cnn", "teacher_cnn", "backbone_classifier"]
