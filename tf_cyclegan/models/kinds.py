"""One builder for every method the library trains: `model.kind` in the config."""

from tf_cyclegan.choices import MODEL_KINDS
from tf_cyclegan.models.cut import build_cut
from tf_cyclegan.models.cyclegan import build_cyclegan


def build_model(kind="cyclegan", **kwargs):
    """An uncompiled model of `kind`: "cyclegan" (`build_cyclegan(**kwargs)`), "cut" or
    "fastcut" (`build_cut(mode=kind, **kwargs)`).

    Example:
    >>> build_model("fastcut", filters=4, num_residual_blocks=5, disc_filters=4, head_units=8).directions
    ('a2b',)
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be one of {', '.join(MODEL_KINDS)}. Received: kind={kind!r}")
    if kind == "cyclegan":
        return build_cyclegan(**kwargs)
    return build_cut(mode=kind, **kwargs)
