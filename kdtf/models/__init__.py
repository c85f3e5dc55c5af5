"""Model zoo: small teachers and students."""

from kdtf.models.zoo import build, names, student_cnn, teacher_cnn

__all__ = ["build", "names", "student_cnn", "teacher_cnn"]
