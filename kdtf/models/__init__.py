"""Model zoo: small teachers and students, and classifiers on Keras application backbones."""

from kdtf.models.resnet import resnet18_cifar
from kdtf.models.transfer import backbone_classifier
from kdtf.models.vit import block_layer_names, text_classifier, uniform_block_mapping, vit_classifier, vit_student, vit_teacher
from kdtf.models.zoo import ENCODERS, build, builder, is_backbone, names, student_cnn, student_encoder, teacher_cnn, teacher_encoder

__all__ = [
    "build", "builder", "names", "is_backbone", "student_cnn", "teacher_cnn", "backbone_classifier",
    "ENCODERS", "teacher_encoder", "student_encoder", "resnet18_cifar",
    "vit_classifier", "text_classifier", "vit_teacher", "vit_student", "block_layer_names", "uniform_block_mapping",
]
