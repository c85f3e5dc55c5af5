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


def test_every_registered_step_parses_from_the_form_help_shows():
    examples = {"prune": "prune:0.5", "sparse24": "2:4", "cluster": "cluster:8", "qat": "qat", "lowrank": "lowrank:0.9",
                "filters": "filters:0.5"}
    assert set(examples) == set(compress.STEPS.names())
    assert sorted(compress.step_forms()) == ["2:4", "cluster:K", "filters:F", "lowrank:E|R", "prune:S", "qat"]
    for name, text in examples.items():
        assert type(compress.parse_step(text)) is compress.STEPS.get(name)


def test_catalog_and_config_import_without_tensorflow():
    code = ("import sys, kdtf.catalog, kdtf.config, kdtf.validation, kdtf.spec, kdtf.compress.forms; "
            "kdtf.compress.forms.parse_steps('filters:0.5,prune:0.5,cluster:8,qat'); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
