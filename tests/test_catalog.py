"""The light catalog of names agrees with every registry that builds those things."""

import subprocess
import sys

from kdtf import catalog, compress, losses, terms
from kdtf.data import augment, datasets
from kdtf.distribute import STRATEGIES
from kdtf.models import ENCODERS, zoo
from kdtf.models.transfer import BACKBONES


def test_catalog_names_match_the_registries():
    assert set(catalog.MODELS) == set(zoo.names()) - set(BACKBONES)
    assert set(catalog.BACKBONES) == set(BACKBONES)
    assert set(catalog.ENCODERS) == set(ENCODERS)
    built_in = {n for n in terms.names() if terms.get(n).__module__.startswith("kdtf.")}  # tests may register their own
    assert set(catalog.TERMS) == built_in == {n for n in losses.names() if n in built_in}
    assert set(catalog.AUGMENTATIONS) == set(augment.AUGMENTATIONS)
    assert set(catalog.STRATEGIES) == set(STRATEGIES)
    assert [s for s in datasets.specs() if ":" not in s] == sorted(catalog.DATASETS)


def test_every_catalog_step_parses_to_a_registered_step():
    examples = {"prune": "prune:0.5", "2:4": "2:4", "cluster": "cluster:8", "qat": "qat", "lowrank": "lowrank:0.9", "filters": "filters:0.5"}
    assert set(examples) == set(catalog.STEPS)
    for text in examples.values():
        assert isinstance(compress.parse_step(text), tuple(compress.recipe.STEP_TYPES))


def test_catalog_and_config_import_without_tensorflow():
    code = "import sys, kdtf.catalog, kdtf.config, kdtf.validation, kdtf.spec; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
