import dataclasses
import inspect
import os
import warnings

import pytest
import yaml
from conftest import CONFIGS

from tf_cyclegan.training.config import (
    Config,
    ConfigError,
    ModelConfig,
    flatten_config,
    load_config,
    model_arguments,
    parse_set,
)


def test_defaults_are_the_papers():
    config = Config()
    assert (config.data.load_size, config.data.crop_size, config.data.batch_size) == (286, 256, 1)
    assert (config.model.filters, config.model.num_residual_blocks, config.model.pool_size) == (64, 9, 50)
    assert (config.model.lambda_cycle, config.model.lambda_identity, config.model.gan_mode) == (10.0, 0.5, "lsgan")
    assert (config.train.epochs, config.train.epochs_decay) == (100, 100)
    assert config.model.upsampling == "transpose"  # the reference's network; its checkpoints load
    assert (config.train.learning_rate, config.train.beta_1) == (2e-4, 0.5)


def test_yaml_overrides_then_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  lambda_identity: 0\n  filters: 32\ntrain:\n  epochs: 3\n")
    config = load_config(path, sets=["model.filters=16", "train.precision=float32", "data.root=x"])
    assert config.model.lambda_identity == 0.0 and isinstance(config.model.lambda_identity, float)
    assert config.model.filters == 16 and config.train.epochs == 3
    assert config.train.precision == "float32" and config.data.root == "x"


@pytest.mark.parametrize("upsampling", ["transpose", "resize"])
def test_every_upsampling_is_a_valid_setting(upsampling):
    assert load_config(sets=[f"model.upsampling={upsampling}"]).model.upsampling == upsampling


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  lamda_cycle: 5\n")
    with pytest.raises(ConfigError, match="Unknown key 'lamda_cycle' in model; did you mean 'lambda_cycle'"):
        load_config(path)
    with pytest.raises(ConfigError, match="Unknown key 'optim'"):
        load_config(overrides={"optim": {}})


@pytest.mark.parametrize("assignment,message", [
    ("model.filters=abc", "model.filters"),
    ("model.filters=1.5", "model.filters"),
    ("data.flip=3", "data.flip"),
    ("model.gan_mode=wgan", "gan_mode.*'wgan'"),
    ("model.upsampling=bilinear", "upsampling.*'bilinear'"),
    ("train.precision=int8", "train.precision"),
    ("data.batch_size=0", "data.batch_size must be positive"),
    ("model.lambda_cycle=-1", "model.lambda_cycle must not be negative"),
    ("train.beta_1=1.5", "beta_1"),
    ("data.crop_size=300", "crop_size must not exceed"),
    ("data.crop_size=30", "multiple of 4"),
    ("eval.every_n_epochs=1", "needs data.root"),
])
def test_bad_values_are_named(assignment, message):
    with pytest.raises(ConfigError, match=message):
        load_config(sets=[assignment])


def test_bad_files_and_assignments(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_set(["model.filters"])
    with pytest.raises(ConfigError, match="one data source"):
        load_config(sets=["data.root=a", "data.tfds=cycle_gan/horse2zebra"])
    with pytest.raises(ConfigError, match=r"Expected a mapping of sections from the overrides. Received: \[1\]"):
        load_config(overrides=[1])


def test_shipped_configs_load():
    assert load_config(os.path.join(CONFIGS, "demo.yaml")).data.root == "data/demo"
    paper = load_config(os.path.join(CONFIGS, "horse2zebra.yaml"))
    assert paper.model == Config().model and paper.train.epochs == 100


def test_exponents_without_a_dot_are_numbers_and_non_finite_values_are_refused(tmp_path):
    # YAML 1.1 (PyYAML) reads 2e-4 as a string.
    (tmp_path / "c.yaml").write_text("train:\n  learning_rate: 2e-4\n  beta_1: 5E-1\n")
    config = load_config(tmp_path / "c.yaml", sets=["model.lambda_cycle=1e1"])
    assert config.train.learning_rate == 2e-4 and config.train.beta_1 == 0.5 and config.model.lambda_cycle == 10.0
    for value in ("nan", ".nan", "inf", "-.inf", "1e999"):
        with pytest.raises(ConfigError, match="model.lambda_cycle must be a finite number"):
            load_config(sets=[f"model.lambda_cycle={value}"])
    with pytest.raises(ConfigError, match="Bad value for train.learning_rate"):
        load_config(sets=["train.learning_rate=fast"])


def test_yaml_errors_are_one_line_naming_the_file_or_the_assignment(tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  epochs: [1\n")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match=r"bad\.yaml' is not valid YAML: .* at line \d+, column \d+") as caught:
        load_config(tmp_path / "bad.yaml")
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"bin\.yaml' is not a text file"):
        load_config(tmp_path / "bin.yaml")
    with pytest.raises(ConfigError, match=r"--set 'data.root=\[1': the value is not valid YAML") as caught:
        load_config(sets=["data.root=[1"])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text, key, line", [
    ("train:\n  epochs: 5\n  epochs: 50\n", "epochs", 3),  # safe_load would keep 50, silently
    ("train:\n  epochs: 5\nmodel:\n  filters: 8\ntrain:\n  seed: 1\n", "train", 5),  # a whole section
    ("data:\n  root: a\n  extra: {x: 1, x: 2}\n", "x", 3),  # any level, flow style too
])
def test_a_key_given_twice_in_a_yaml_config_is_refused_naming_the_key_the_file_and_the_line(tmp_path, text, key,
                                                                                               line):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"Config file '.*c\.yaml' is not valid YAML: duplicate key '{key}' "
                                          rf"\(first at line \d+\) at line {line}"):
        load_config(path)


def test_yaml_merge_keys_may_be_overridden_and_set_values_are_checked_too(tmp_path):
    merged = tmp_path / "m.yaml"
    merged.write_text("train:\n  <<: {epochs: 3, epochs_decay: 1}\n  epochs: 4\n")
    assert (load_config(merged).train.epochs, load_config(merged).train.epochs_decay) == (4, 1)
    with pytest.raises(ConfigError, match="--set .*duplicate key 'a'"):
        parse_set(["data.root={a: 1, a: 2}"])


def test_a_config_with_no_epoch_to_train_is_refused_with_the_values():
    with pytest.raises(ConfigError, match=r"train.epochs \+ train.epochs_decay must be at least 1.*"
                                          r"Received: epochs=0, epochs_decay=0"):
        load_config(sets=["train.epochs=0", "train.epochs_decay=0"])
    assert load_config(sets=["train.epochs=0", "train.epochs_decay=3"]).train.epochs == 0  # decay only: fine


def test_flatten_config_gives_hparam_values():
    flat = flatten_config(load_config(sets=["data.root=x"]).to_dict())
    assert flat["data.root"] == "x" and flat["train.seed"] == 0 and flat["data.tfds"] == "None"
    assert all(isinstance(value, (bool, int, float, str)) for value in flat.values())


# Each key of version 0.2.0 that has a new name, with a value other than the default.
OLD_KEYS = {
    "model.generator_alignment": ("model.alignment", "keras_same"),
    "model.disc_layers": ("model.disc_num_layers", 2),
    "checkpoint.backup_every_n_steps": ("backup.every_n_steps", 7),
    "checkpoint.keep_backups": ("backup.keep", 4),
    "checkpoint.keras_every_n_epochs": ("checkpoint.every_n_epochs", 2),
    "checkpoint.keras_every_n_steps": ("checkpoint.every_n_steps", 9),
    "checkpoint.keep_keras": ("checkpoint.keep", 6),
}


def _load_from(source, assignments, tmp_path):
    """load_config with `assignments` ({"section.key": value}) given in a YAML file, as
    overrides or with --set."""
    sets = [f"{key}={value}" for key, value in assignments.items()]
    if source == "file":
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(parse_set(sets)))
        return load_config(tmp_path / "c.yaml")
    if source == "overrides":
        return load_config(overrides=parse_set(sets))
    return load_config(sets=sets)


def test_the_table_of_renamed_keys_is_the_one_tested_here():
    from tf_cyclegan.training.config import _RENAMED_KEYS

    assert _RENAMED_KEYS == {old: new for old, (new, _) in OLD_KEYS.items()}


@pytest.mark.parametrize("source", ["file", "overrides", "set"])
def test_old_keys_load_with_a_warning_naming_the_new_one_and_give_the_same_config(tmp_path, source):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = _load_from(source, {key: value for key, (_, value) in OLD_KEYS.items()}, tmp_path)
    assert sorted(str(w.message).split(" (")[0] for w in caught) == sorted(
        f"{key} is now {new}" for key, (new, _) in OLD_KEYS.items())
    assert old == _load_from(source, dict(OLD_KEYS.values()), tmp_path) != Config()
    assert (old.model.alignment, old.backup.keep, old.checkpoint.keep) == ("keras_same", 4, 6)


@pytest.mark.parametrize("source", ["file", "overrides", "set"])
@pytest.mark.parametrize("old", ["checkpoint.keep_keras", "checkpoint.keep_backups", "model.disc_layers"])
def test_a_key_given_under_its_old_and_its_new_name_at_once_is_refused_naming_both(tmp_path, source, old):
    new, value = OLD_KEYS[old]
    with pytest.raises(ConfigError, match=rf"Both {old} and {new} \(its new name\) in .*: give only {new}\. "
                                          rf"Received: {old}={value}, {new}=1"):
        _load_from(source, {old: value, new: 1}, tmp_path)


def test_a_later_layer_overrides_an_old_name_with_the_new_one(tmp_path):
    (tmp_path / "c.yaml").write_text("checkpoint:\n  keep_keras: 6\nmodel:\n  disc_layers: 2\n")
    with pytest.warns(UserWarning) as caught:
        config = load_config(tmp_path / "c.yaml", overrides={"model": {"disc_num_layers": 4}},
                             sets=["checkpoint.keep=1", "data.crop_size=48"])
    assert (config.checkpoint.keep, config.model.disc_num_layers) == (1, 4)
    assert [str(w.message) for w in caught] == [
        f"{old} is now {new} (config file {str(tmp_path / 'c.yaml')!r})"
        for old, new in (("model.disc_layers", "model.disc_num_layers"), ("checkpoint.keep_keras", "checkpoint.keep"))]


def test_an_old_key_is_refused_where_its_new_section_is_no_mapping():
    with pytest.raises(ConfigError, match="backup must be a mapping. Received: 3"):
        load_config(overrides={"checkpoint": {"keep_backups": 2}, "backup": 3})


def test_every_model_key_is_the_builder_keyword_it_feeds():
    from tf_cyclegan.models.cut import CUT, build_cut
    from tf_cyclegan.models.cyclegan import CycleGAN, build_cyclegan

    def keywords(function):
        return {name for name, parameter in inspect.signature(function).parameters.items()
                if parameter.kind is not parameter.VAR_KEYWORD}

    # kind: cyclegan. The loss weights go through build_cyclegan's **kwargs to CycleGAN.
    cyclegan_keys = set(model_arguments(ModelConfig()))
    wrapper = set(inspect.signature(CycleGAN.__init__).parameters) - {"self", "kwargs"}
    assert cyclegan_keys - wrapper == keywords(build_cyclegan)  # every network key a keyword, every keyword a key
    assert cyclegan_keys <= keywords(build_cyclegan) | wrapper
    # kind: cut and fastcut (the kind is build_cut's mode). Every key there, set, is a keyword.
    cut = ModelConfig(kind="fastcut", lambda_gan=1.0, lambda_nce=10.0, nce_identity=False, flip_equivariance=True)
    cut_keys = set(model_arguments(cut))
    assert cut_keys <= (keywords(build_cut) - {"mode"}) | (set(inspect.signature(CUT.__init__).parameters) - {"self"})
    assert {"filters", "num_residual_blocks", "disc_filters", "disc_num_layers", "head_units"} <= cut_keys
    # And every key is some kind's.
    assert cyclegan_keys | cut_keys | {"kind"} == {field.name for field in dataclasses.fields(ModelConfig)}


def test_a_key_of_the_other_kind_is_refused_naming_the_kind_it_belongs_to():
    with pytest.raises(ConfigError, match="model.lambda_cycle applies to model.kind cyclegan, not to .* 'cut'"):
        load_config(overrides={"model": {"kind": "cut", "lambda_cycle": 5.0}})
    with pytest.raises(ConfigError, match="model.lambda_nce applies to model.kind cut and fastcut, not to"):
        load_config(overrides={"model": {"lambda_nce": 2.0}})
    # Null CUT keys take the kind's own default: build_cut gets none of them.
    arguments = model_arguments(load_config(overrides={"model": {"kind": "fastcut"}}).model)
    assert "lambda_nce" not in arguments and "lambda_cycle" not in arguments



@pytest.mark.parametrize("name", sorted(os.listdir(CONFIGS)))
def test_every_preset_loads_and_says_its_kind(name):
    config = load_config(os.path.join(CONFIGS, name))
    assert config.model.kind == ("cut" if name == "cut.yaml" else "fastcut" if "fastcut" in name else "cyclegan")
    if name in ("cut.yaml", "fastcut.yaml"):  # the official schedules
        assert (config.train.epochs, config.train.epochs_decay) == ((200, 200) if name == "cut.yaml" else (150, 50))
