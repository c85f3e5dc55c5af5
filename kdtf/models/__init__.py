"""Model zoo: small teachers and students, and classifiers on Keras application backbones."""

from kdtf.models.resnet import resnet18_cifar
from kdtf.models.transfer import backbone_classifier
from kdtf.models.zoo import ENCODERS, build, is_backbone, names, student_cnn, student_encoder, teacher_cnn, teacher_encoder

__all__ = [
    "build", "names", "is_backbone", "student_cnn", "teacher_cnn", "backbone_classifier",
    "ENCODERS", "teacher_encoder", "student_encoder", "resnet18_cifar",
]
