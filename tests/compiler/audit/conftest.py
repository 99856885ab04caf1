"""An overfit target for the audit tests: a 64-128-10 MLP trained 300 epochs on 100 digits
(train accuracy 100%, test about 90%), compiled by `mpc compile`; 100 non-members."""

import shutil

import pytest

from compiler.exec.train import TrainConfig

MEMBERS = 100
EPOCHS = 300
# The shadows re-enact the target's training: same optimizer, epochs, learning rate, batch.
SHADOW_TRAINING = TrainConfig(epochs=EPOCHS, lr=3e-3, batch_size=64)
QUIET = {"log": lambda *_: None, "progress": False}


@pytest.fixture(scope="session")
def overfit_build(tmp_path_factory):
    from benchmarks.datasets import MlpRecipe, load_digits, member_split, train_onnx_mlp
    from compiler import api

    folder = tmp_path_factory.mktemp("overfit")
    x, y = load_digits()
    data = member_split(x, y, MEMBERS, MEMBERS, seed=1)
    model, data_path = train_onnx_mlp(
        data, folder, "overfit", MlpRecipe(hidden=(128,), epochs=EPOCHS, seed=1), n_classes=10
    )
    api.compile(model, data_path, folder / "build", synth_timeout=None, **QUIET)
    return folder / "build", data_path


@pytest.fixture(scope="session")
def overfit_audit(overfit_build):
    """The threshold and label-only attacks with 4 shadows: the quick suite's audit."""
    from compiler import api

    out, _ = overfit_build
    return api.audit(out, attacks="threshold,label_only", shadows=4, seed=0, shadow_training=SHADOW_TRAINING, **QUIET)


@pytest.fixture
def build_copy(overfit_build, tmp_path):
    """A private copy of the build, for tests that rewrite its audit and report."""
    out, data_path = overfit_build
    shutil.copytree(out, tmp_path / "build")
    return tmp_path / "build", data_path
