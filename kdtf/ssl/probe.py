"""Evaluation of encoders with labels only at the end: linear probe and k-NN.

Both use a fixed, small number of labels per class (``few_labels``) drawn from the
training split; accuracy is measured on the test split. The encoder stays frozen.

* Linear probe: multinomial logistic regression (scikit-learn, L-BFGS, C = 1) on
  standardised embeddings (mean and scale from the labelled examples).
* k-NN: majority vote of the ``k`` nearest labelled embeddings by cosine distance.
"""

import numpy as np

__all__ = ["embed", "few_labels", "linear_probe_accuracy", "knn_accuracy", "probe"]


def embed(model, x, batch_size=256):
    """Embeddings of ``x`` from a Keras model (inference mode) or a callable."""
    if hasattr(model, "predict"):
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)
    return np.asarray(model(x), np.float32)


def few_labels(labels, per_class, seed=0):
    """Indices of ``per_class`` examples of every class, fixed by ``seed``."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels[labels >= 0]):
        pool = np.flatnonzero(labels == c)
        if len(pool) < per_class:
            raise ValueError(f"Class {c} has {len(pool)} examples; expected at least per_class={per_class}.")
        chosen.append(rng.choice(pool, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def linear_probe_accuracy(train_emb, train_y, test_emb, test_y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_emb)
    head = LogisticRegression(max_iter=3000, C=1.0).fit(scaler.transform(train_emb), train_y)
    return float(head.score(scaler.transform(test_emb), test_y))


def knn_accuracy(train_emb, train_y, test_emb, test_y, k=5):
    from sklearn.neighbors import KNeighborsClassifier

    return float(KNeighborsClassifier(k, metric="cosine").fit(train_emb, train_y).score(test_emb, test_y))


def probe(train_emb, train_y, test_emb, test_y, k=5):
    """``{"linear_probe": accuracy, "knn": accuracy}``."""
    return {
        "linear_probe": linear_probe_accuracy(train_emb, train_y, test_emb, test_y),
        "knn": knn_accuracy(train_emb, train_y, test_emb, test_y, k),
    }
