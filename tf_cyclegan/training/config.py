"""Typed training configuration: frozen dataclasses with the paper's defaults.

A YAML file holds only overrides of these defaults, and `--set section.key=value`
overrides that. Unknown keys and values of the wrong type or range stop everything
before any work, with a message naming the key. Keys and values that earlier versions
named otherwise (`_RENAMED_KEYS`, `_RENAMED_VALUES`) are still read, from a file, a dict
or `--set` alike, with a warning naming the new one: so a run's config.yaml written by
version 0.1.0 or 0.2.0 still resumes.
"""

import dataclasses
import difflib
import math
import typing
import warnings
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import yaml

from tf_cyclegan.checks import (
    MAX_DISC_LAYERS,
    check_decay,
    check_image_size,
    check_int,
    check_pipeline_sizes,
    min_training_size,
)
from tf_cyclegan.choices import (
    ALIGNMENTS,
    ALLOCATORS,
    CPU_SPEEDUPS,
    GAN_MODES,
    MODEL_KINDS,
    OLD_MODEL_KEYWORDS,
    OLD_PRECISIONS,
    PRECISIONS,
    STRATEGIES,
    UPSAMPLINGS,
)


class ConfigError(ValueError):
    """A configuration key or value that cannot be used."""


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are augmented."""

    root: Optional[str] = None  # folder with trainA/, trainB/ (and testA/, testB/)
    train_a: Optional[str] = None  # or two explicit folders
    train_b: Optional[str] = None
    tfds: Optional[str] = None  # or a TFDS name, e.g. cycle_gan/horse2zebra
    tfds_data_dir: Optional[str] = None
    load_size: int = 286
    crop_size: int = 256
    batch_size: int = 1
    flip: bool = True
    cache: bool = True
    num_samples: int = 4  # test images in the per-epoch sample grid


@dataclass(frozen=True)
class ModelConfig:
    """The method, network sizes and loss weights (the reference's `resnet_9blocks` and `basic` D).

    Every key is the keyword argument of the builder it is passed to, by the same name:
    `models.cyclegan.build_cyclegan` for `kind: cyclegan` (the loss weights, pool and GAN mode
    go on to `CycleGAN`), `models.cut.build_cut` for `cut` and `fastcut` (`model_arguments`
    says which keys each kind takes), so that a key means what that argument's docstring says
    and a new network argument is a new key of the same name. A key of the other kind left at
    its default is not passed; set away from it, it is an error naming the kind it belongs to.
    """

    kind: Literal[MODEL_KINDS] = "cyclegan"  # cut, fastcut: one generator, PatchNCE (docs/cut.md)
    filters: int = 64
    num_residual_blocks: int = 9
    disc_filters: int = 64
    disc_num_layers: int = 3
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    gan_mode: Literal[GAN_MODES] = "lsgan"
    # The generators' stride-2 alignment: "reference" (the PyTorch reference's, exactly) or
    # "keras_same" (what runs of version 0.1.0 trained; their config.yaml has no such key).
    alignment: Literal[ALIGNMENTS] = "reference"
    norm_affine: bool = False  # instance norms with a learned scale and offset (PyTorch's affine=True)
    use_bias: bool = True  # biases on the convolutions before a normalisation
    upsampling: Literal[UPSAMPLINGS] = "transpose"  # resize: no visible grid (docs/checkerboard.md)
    # Also keep averages of the generators' weights over training, which translate by default
    # (tf_cyclegan/models/averaging.py, docs/averaged-generators.md: 0.999 was nearer the truth
    # than the trained weights on both seeds measured); training itself is unchanged. None: none kept.
    ema_decay: Optional[float] = 0.999
    # CUT's and FastCUT's (null: the official default of the kind, `models.cut.MODES`).
    lambda_gan: Optional[float] = None  # 1
    lambda_nce: Optional[float] = None  # 1 for cut, 10 for fastcut
    nce_identity: Optional[bool] = None  # PatchNCE on G(B) against B too: cut yes, fastcut no
    flip_equivariance: Optional[bool] = None  # cut no, fastcut yes
    num_patches: int = 256  # patch locations per tapped layer and step
    temperature: float = 0.07  # PatchNCE's
    head_units: int = 256  # width of the feature head's MLPs


# Which model keys each kind's builder takes (the rest belong to the other kind).
_CYCLEGAN_ONLY = ("lambda_cycle", "lambda_identity", "pool_size", "gan_mode", "alignment", "norm_affine", "use_bias",
                  "upsampling")
_CUT_ONLY = ("lambda_gan", "lambda_nce", "nce_identity", "flip_equivariance", "num_patches", "temperature",
             "head_units")


def model_arguments(model):
    """The builder's keyword arguments of a `ModelConfig`: `build_cyclegan`'s for kind
    "cyclegan", `build_cut`'s (without `mode`, which is the kind) for "cut" and "fastcut";
    CUT's keys left null take the kind's official default."""
    values = dataclasses.asdict(model)
    del values["kind"]
    if model.kind == "cyclegan":
        return {key: value for key, value in values.items() if key not in _CUT_ONLY}
    return {key: value for key, value in values.items()
            if key not in _CYCLEGAN_ONLY and not (key in _CUT_ONLY and value is None)}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: Adam(2e-4, 0.5), 100 epochs constant then 100 of linear decay."""

    epochs: int = 100
    epochs_decay: int = 100
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    precision: Literal[PRECISIONS] = "auto"  # tf_cyclegan/precision.py
    jit_compile: Union[bool, Literal["auto"]] = "auto"
    steps_per_epoch: Optional[int] = None  # cap an epoch's steps (None: max(|A|, |B|) pairs)
    seed: Optional[int] = 0
    deterministic: bool = False  # enable_op_determinism(): a resumed run ends bit-identical
    cpu_allocator: Literal[ALLOCATORS] = "auto"  # auto: TensorFlow's own (tf_cyclegan/runtime.py)
    cpu_speedups: Literal[CPU_SPEEDUPS] = "auto"  # tf_cyclegan.speed; auto: on without a GPU
    verbose: Literal["auto", 0, 1, 2] = "auto"  # fit's; auto: 1 (live bar) on a terminal, else 2 (line per epoch)
    init_from: Optional[str] = None  # a CycleGAN .keras whose four networks' weights a new run starts from


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation during training (needs data.root with testA/ and testB/)."""

    every_n_epochs: int = 0  # 0: never
    max_images: int = 50
    inception_weights: Optional[str] = None  # None: no FID/KID; "imagenet" or a weights file


@dataclass(frozen=True)
class BackupConfig:
    """Backups of the full training state in `backup/`: what a stopped run resumes from (the keys
    are `BackupCallback`'s `every_n_steps` and `BackupManager`'s `keep`)."""

    every_n_steps: int = 500  # 0: at epoch ends only (always also at each epoch's end)
    keep: int = 2


@dataclass(frozen=True)
class CheckpointConfig:
    """`.keras` checkpoints in `checkpoints/`: models to export or translate with (the keys are
    `KerasCheckpoints`' arguments)."""

    every_n_epochs: int = 1  # 0: never
    every_n_steps: int = 0  # 0: never
    keep: int = 3


@dataclass(frozen=True)
class MonitorConfig:
    """What goes to TensorBoard between epochs."""

    scalars_every_n_steps: int = 10
    images_every_n_steps: int = 200  # 0: the sample grid at epoch ends only


@dataclass(frozen=True)
class DistributeConfig:
    """Data-parallel training with tf.distribute; `data.batch_size` is per replica."""

    strategy: Literal[STRATEGIES] = "auto"
    scale_learning_rate: bool = False  # linear scaling rule: learning_rate x replicas
    tpu: Optional[str] = None  # TPU name or grpc:// address; None: the local TPU
    timeout_s: int = 300  # bound on waiting for other workers


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)

    def to_dict(self):
        return dataclasses.asdict(self)


# data.load_size, data.crop_size and data.batch_size: check_pipeline_sizes, shared with the data functions.
_POSITIVE = {
    "model.filters", "model.num_patches", "model.temperature", "model.head_units",
    "model.disc_filters", "model.disc_num_layers", "train.learning_rate", "train.steps_per_epoch",
    "eval.max_images", "backup.keep", "checkpoint.keep", "monitor.scalars_every_n_steps",
    "distribute.timeout_s",
}
_NON_NEGATIVE = {
    "data.num_samples", "model.num_residual_blocks", "model.lambda_cycle", "model.lambda_gan", "model.lambda_nce",
    "model.lambda_identity", "model.pool_size", "train.epochs", "train.epochs_decay",
    "eval.every_n_epochs", "backup.every_n_steps", "checkpoint.every_n_epochs",
    "checkpoint.every_n_steps", "monitor.images_every_n_steps",
}


def _matches(value, annotation):
    origin = typing.get_origin(annotation)
    if origin is Union:
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return value in typing.get_args(annotation) and not isinstance(value, bool)
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _takes_float(annotation):
    return annotation is float or float in typing.get_args(annotation)


def _check_value(key, value, annotation):
    if isinstance(value, str) and _takes_float(annotation):
        # YAML 1.1 reads an exponent without a dot ("2e-4") as a string.
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number. Received: {value!r}")
    if not _matches(value, annotation):
        raise ConfigError(f"Bad value for {key}: expected {_describe(annotation)}. Received: {value!r}")
    if value is not None and not isinstance(value, (bool, str)):
        if key in _POSITIVE and value <= 0:
            raise ConfigError(f"{key} must be positive. Received: {value!r}")
        if key in _NON_NEGATIVE and value < 0:
            raise ConfigError(f"{key} must not be negative. Received: {value!r}")
    if key == "train.beta_1" and not 0 <= value < 1:
        raise ConfigError(f"train.beta_1 must be in [0, 1). Received: {value!r}")
    return float(value) if annotation is float else value


# Keys that versions 0.1.0 and 0.2.0 wrote under another name, old -> new: still read, with a
# warning naming the new one. The model's keys are build_cyclegan's keywords, renamed with them
# (OLD_MODEL_KEYWORDS); the backups (for resuming) and the .keras checkpoints (for use), once
# one section, are two.
_RENAMED_KEYS = {
    **{f"model.{old}": f"model.{new}" for old, new in OLD_MODEL_KEYWORDS.items()},
    "checkpoint.backup_every_n_steps": "backup.every_n_steps",
    "checkpoint.keep_backups": "backup.keep",
    "checkpoint.keras_every_n_epochs": "checkpoint.every_n_epochs",
    "checkpoint.keras_every_n_steps": "checkpoint.every_n_steps",
    "checkpoint.keep_keras": "checkpoint.keep",
}
# Values that version 0.2.0 wrote under another name: still read, with a warning naming the new one.
_RENAMED_VALUES = {"train.precision": OLD_PRECISIONS}


def _renamed_keys(tree, source):
    """A copy of `tree`, the nested mapping that one `source` gives (a config file, the
    overrides, the `--set` assignments), with each key of `_RENAMED_KEYS` under its new name
    and a warning naming it. One source giving both names of a key is a `ConfigError`: which
    value is meant? (A later source may override an earlier one's old name with the new.)"""
    if not isinstance(tree, dict):
        raise ConfigError(f"Expected a mapping of sections from {source}. Received: {tree!r}")
    tree = {key: dict(value) if isinstance(value, dict) else value for key, value in tree.items()}
    for old, new in _RENAMED_KEYS.items():
        (old_section, old_key), (new_section, new_key) = old.split("."), new.split(".")
        if not isinstance(tree.get(old_section), dict) or old_key not in tree[old_section]:
            continue
        if tree.get(new_section) is None:
            tree[new_section] = {}
        target = tree[new_section]
        if not isinstance(target, dict):
            raise ConfigError(f"{new_section} must be a mapping. Received: {target!r}")
        if new_key in target:
            raise ConfigError(f"Both {old} and {new} (its new name) in {source}: give only {new}. "
                              f"Received: {old}={tree[old_section][old_key]!r}, {new}={target[new_key]!r}")
        target[new_key] = tree[old_section].pop(old_key)
        warnings.warn(f"{old} is now {new} ({source})", stacklevel=3)
    return tree


def _renamed_value(key, value):
    renamed = _RENAMED_VALUES.get(key, {})
    if isinstance(value, str) and value in renamed:
        warnings.warn(f"{key}: {value!r} is now called {renamed[value]!r}", stacklevel=2)
        return renamed[value]
    return value


def _describe(annotation):
    origin = typing.get_origin(annotation)
    if origin is Union:
        return " or ".join(_describe(arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(annotation))
    return "null" if annotation is type(None) else annotation.__name__


def _merge(node, overrides, prefix):
    if not isinstance(overrides, dict):
        raise ConfigError(f"{prefix or 'The config'} must be a mapping. Received: {overrides!r}")
    hints = typing.get_type_hints(type(node))
    changes = {}
    for key, value in overrides.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(hints)}"
            raise ConfigError(f"Unknown key '{key}' in {prefix or 'the config'}{hint}")
        current = getattr(node, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value or {}, path)
        else:
            changes[key] = _check_value(path, _renamed_value(path, value), hints[key])
    return dataclasses.replace(node, **changes)


class _StrictLoader(yaml.SafeLoader):
    """`yaml.safe_load`'s loader, but a key given twice in one mapping, at any level, is an error
    naming it: safe_load keeps the last one silently, so an edit near the top of a file would
    be undone by a forgotten line further down."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base" may be overridden, as YAML says
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: SafeLoader's own error follows
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(stream):
    """YAML as `yaml.safe_load` reads it, refusing duplicate keys (`_StrictLoader`)."""
    return yaml.load(stream, Loader=_StrictLoader)


def _set_nested(tree, dotted_key, value):
    *parents, leaf = dotted_key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            raise ConfigError(f"Cannot set {dotted_key}: {part} is not a section")
    tree[leaf] = value


def _yaml_problem(error):
    """PyYAML's error in one line: what went wrong and where."""
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def parse_set(assignments):
    """['model.lambda_identity=0', ...] -> nested dict; values are parsed as YAML scalars."""
    tree = {}
    for assignment in assignments or ():
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes section.key=value. Received: {assignment!r}")
        try:
            value = _load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {assignment!r}: the value is not valid YAML ({_yaml_problem(error)})") from None
        _set_nested(tree, key.strip(), value)
    return tree


def _deep_update(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def _check_consistency(config):
    data = config.data
    try:
        check_pipeline_sizes(data.load_size, data.crop_size, data.batch_size, prefix="data.")
        check_int("model.disc_num_layers", config.model.disc_num_layers, minimum=1, maximum=MAX_DISC_LAYERS)
        check_decay("model.ema_decay", config.model.ema_decay)
        check_image_size("data.crop_size", data.crop_size, minimum=min_training_size(config.model.disc_num_layers),
                         why=f" for model.disc_num_layers={config.model.disc_num_layers}")
        if config.train.seed is not None:  # what keras.utils.set_random_seed takes
            check_int("train.seed", config.train.seed, minimum=0, maximum=2**32 - 1)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    sources = [name for name, on in (("root", data.root), ("tfds", data.tfds),
                                     ("train_a/train_b", data.train_a or data.train_b)) if on]
    if len(sources) > 1:
        raise ConfigError(f"Give one data source, not {' and '.join('data.' + s for s in sources)}")
    if bool(data.train_a) != bool(data.train_b):
        raise ConfigError("data.train_a and data.train_b go together")
    if config.train.epochs + config.train.epochs_decay < 1:
        raise ConfigError("train.epochs + train.epochs_decay must be at least 1: there would be no epoch to train. "
                          f"Received: epochs={config.train.epochs}, epochs_decay={config.train.epochs_decay}")
    defaults, kind = ModelConfig(), config.model.kind
    others = _CUT_ONLY if kind == "cyclegan" else _CYCLEGAN_ONLY
    changed = [key for key in others if getattr(config.model, key) != getattr(defaults, key)]
    if changed:
        owner = "cut and fastcut" if kind == "cyclegan" else "cyclegan"
        raise ConfigError(f"model.{changed[0]} applies to model.kind {owner}, not to this config's {kind!r}: "
                          f"remove it or set model.kind")
    if config.train.deterministic and config.train.seed is None:
        raise ConfigError("train.deterministic needs a train.seed")
    if config.eval.every_n_epochs and not data.root:
        raise ConfigError("eval.every_n_epochs needs data.root (with testA/ and testB/)")
    return config


def read_config_file(path):
    """The mapping the YAML file at `path` holds ({} for an empty file), with the keys of
    earlier versions under their new names (`_renamed_keys`), unchecked: what `load_config`
    merges, and what tells a run's config.yaml (every section) from a file of overrides.
    `ConfigError` naming the file if it cannot be read or holds no mapping."""
    try:
        with open(path) as f:
            loaded = _load_yaml(f)
    except OSError as error:
        raise ConfigError(f"Cannot read config file {str(path)!r}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Config file {str(path)!r} is not a text file (not UTF-8)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {_yaml_problem(error)}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"Config file {str(path)!r} must hold a mapping. Received: {loaded!r}")
    return _renamed_keys(loaded or {}, f"config file {str(path)!r}")


def load_config(path=None, overrides=None, sets=None):
    """Paper defaults <- YAML file at `path` <- `overrides` dict <- `--set` assignments.

    Each of the three may name a key as an earlier version did (`_RENAMED_KEYS`), with a warning."""
    tree = {}
    _deep_update(tree, read_config_file(path) if path is not None else {})
    _deep_update(tree, _renamed_keys(overrides or {}, "the overrides"))
    _deep_update(tree, _renamed_keys(parse_set(sets), "--set"))
    return _check_consistency(_merge(Config(), tree, ""))


def flatten_config(config_dict, prefix=""):
    """{'train': {'epochs': 5}} -> {'train.epochs': 5}, values made TensorBoard-hparam safe.

    One dotted key per setting, as `--set` names them: what a resumed run's config is compared
    by, key by key, and what TensorBoard records as the run's hparams (which take only bools,
    numbers and strings, so anything else, such as None, becomes its `str`)."""
    flat = {}
    for key, value in config_dict.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, prefix=f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def dump_config(config, path):
    """Writes the resolved config as YAML, atomically (other workers may be reading it)."""
    from tf_cyclegan.files import write_bytes

    write_bytes(path, yaml.safe_dump(config.to_dict(), sort_keys=False).encode())
