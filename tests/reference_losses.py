"""Independent float64 numpy implementations of the distillation losses, written with
explicit loops where that is clearer than vectorised TensorFlow. Used to produce
tests/fixtures/feature_relation.json (`python tests/reference_losses.py`) and by the tests."""

import json
import os

import numpy as np


def kd(teacher, student, temperature):
    """Independent reference: T^2 * sum p_t * log(p_t / p_s), softmax by exp/sum."""

    def softmax(z):
        e = np.exp((z - z.max(-1, keepdims=True)) / temperature)
        return e / e.sum(-1, keepdims=True)

    p_t, p_s = softmax(teacher.astype(np.float64)), softmax(student.astype(np.float64))
    return temperature**2 * np.sum(p_t * np.log(p_t / p_s), axis=-1)


def dkd(teacher, student, labels, alpha, beta, temperature):
    """Independent reference: binary target/rest KL plus KL of the renormalised
    non-target distributions, times T^2."""

    def softmax(z):
        e = np.exp((z - z.max(-1, keepdims=True)) / temperature)
        return e / e.sum(-1, keepdims=True)

    p_t, p_s, out = softmax(teacher), softmax(student), []
    for i, k in enumerate(labels):
        b_t, b_s = np.array([p_t[i, k], 1 - p_t[i, k]]), np.array([p_s[i, k], 1 - p_s[i, k]])
        rest = [j for j in range(teacher.shape[1]) if j != k]
        q_t, q_s = p_t[i, rest] / p_t[i, rest].sum(), p_s[i, rest] / p_s[i, rest].sum()
        out.append(temperature**2 * (alpha * np.sum(b_t * np.log(b_t / b_s)) + beta * np.sum(q_t * np.log(q_t / q_s))))
    return np.array(out)


def hint(t, s):
    if t.ndim == 4 and s.shape[1] != t.shape[1]:  # average-pool the student to the teacher size
        k = s.shape[1] // t.shape[1]
        s = s.reshape(s.shape[0], t.shape[1], k, t.shape[2], k, s.shape[3]).mean(axis=(2, 4))
    return ((t - s) ** 2).reshape(len(t), -1).mean(1)


def attention(t, s, p=2.0):
    def q(a):
        m = (np.abs(a) ** p).sum(-1).reshape(len(a), -1)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    return np.linalg.norm(q(s) - q(t), axis=1)


def _huber(x):
    x = np.abs(x)
    return np.where(x < 1, 0.5 * x**2, x - 0.5)


def rkd_distance(t, s):
    t, s = t.reshape(len(t), -1), s.reshape(len(s), -1)
    n = len(t)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    dt = np.array([np.linalg.norm(t[i] - t[j]) for i, j in pairs])
    ds = np.array([np.linalg.norm(s[i] - s[j]) for i, j in pairs])
    return _huber(ds / ds.mean() - dt / dt.mean()).mean()


def rkd_angle(t, s):
    t, s = t.reshape(len(t), -1), s.reshape(len(s), -1)
    n = len(t)

    def cos(x, i, j, k):
        a, b = x[i] - x[j], x[k] - x[j]
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    triplets = [(i, j, k) for i in range(n) for j in range(n) for k in range(n) if len({i, j, k}) == 3]
    return np.mean([_huber(cos(s, *x) - cos(t, *x)) for x in triplets])


def similarity_preserving(t, s):
    def g(x):
        x = x.reshape(len(x), -1)
        m = x @ x.T
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    return ((g(s) - g(t)) ** 2).sum() / len(t) ** 2


def embedding_cosine(t, s):
    t, s = t.reshape(len(t), -1), s.reshape(len(s), -1)
    return 1 - (t * s).sum(1) / (np.linalg.norm(t, axis=1) * np.linalg.norm(s, axis=1))


def make_inputs():
    rng = np.random.default_rng(11)
    return {
        "teacher_map": rng.normal(size=(3, 4, 4, 5)).round(3),
        "student_map_same": rng.normal(size=(3, 4, 4, 5)).round(3),
        "student_map_big": rng.normal(size=(3, 8, 8, 2)).round(3),
        "student_map_big5": rng.normal(size=(3, 8, 8, 5)).round(3),
        "teacher_emb": rng.normal(size=(5, 6)).round(3),
        "student_emb": rng.normal(size=(5, 3)).round(3),
    }


def expected(x):
    return {
        "hint_same": hint(x["teacher_map"], x["student_map_same"]).tolist(),
        "hint_pooled": hint(x["teacher_map"], x["student_map_big5"]).tolist(),
        "at_same": attention(x["teacher_map"], x["student_map_same"]).tolist(),
        "at_p1": attention(x["teacher_map"], x["student_map_same"], p=1.0).tolist(),
        "rkd_distance": float(rkd_distance(x["teacher_emb"], x["student_emb"])),
        "rkd_angle": float(rkd_angle(x["teacher_emb"], x["student_emb"])),
        "sp": float(similarity_preserving(x["teacher_map"], x["student_map_big"])),
        "embedding_cosine": embedding_cosine(x["teacher_emb"], x["teacher_emb"][:, ::-1] + 0.5).tolist(),
    }


if __name__ == "__main__":
    inputs = make_inputs()
    out = {
        "description": "Reference values of feature/relation/representation losses from tests/reference_losses.py (float64 numpy, loops).",
        "inputs": {k: v.tolist() for k, v in inputs.items()},
        "expected": expected(inputs),
    }
    path = os.path.join(os.path.dirname(__file__), "fixtures", "feature_relation.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)
