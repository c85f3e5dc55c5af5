"""kdtf.saving: QAT models save to .h5 without tf_keras's unbuilt-metrics warning (the
student a Distiller trained was never compiled itself, which tf_keras reports as metrics
"yet to be built")."""

import logging

from kdtf import compress, keras, saving


def test_saving_a_qat_model_trained_by_a_distiller_gives_no_unbuilt_metrics_warning(tmp_path, caplog):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    qat = compress.quantize(keras.Model(inputs, keras.layers.Dense(3)(x)))
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(caplog.handler)
    unbuilt = lambda: sum("compiled metrics have yet to be built" in r.getMessage() for r in caplog.records)
    try:
        path = saving.save_model(qat, str(tmp_path / "qat.keras"))
        after_kdtf = unbuilt()
        qat.save(str(tmp_path / "plain.h5"), include_optimizer=False)  # the same save, unfiltered
    finally:
        tf_logger.removeHandler(caplog.handler)
    assert path.endswith("qat.h5") and after_kdtf == 0 and unbuilt() > 0
    assert compress.is_quantized(saving.load_model(path))
