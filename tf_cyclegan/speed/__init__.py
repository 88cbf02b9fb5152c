"""The CPU speed-ups of the training step, attached to a plain-Keras CycleGAN or CUT by one switch.

The networks and optimizers the builders and `CycleGAN.compile` give are plain Keras
(`keras.layers.Conv2D`, `keras.optimizers.Adam`), and a saved `.keras` file names only
those and this package's own layers. On a CPU, training runs faster with the devices
gathered here, each measured in docs/performance.md:

- `lean_conv`: stride-1 "valid" convolutions' gradients as forward convolutions (only
  where TensorFlow runs its own CPU kernels: oneDNN's and cuDNN's need no such help);
- `tape`: the instance norm's (and the lean convolution's) hand-written gradient recorded
  straight onto the tape, without `tf.custom_gradient`'s `IdentityN` and its zeros;
- `fused_adam`: Adam's update as one `ResourceApplyAdam` per variable;
- `grappler`: the training function run without four graph passes that do nothing here;
- stacked network calls: each generator run once on its independent inputs stacked along
  the batch, each discriminator once on real and fake (23 % of step time under oneDNN;
  4.4 s of first step on Eigen, where its step time was within the noise). CUT's generator
  already runs once on real A and B (the official's); its discriminator is stacked on real
  and fake, its encoder on each PatchNCE's input and translation.

The devices ask a model only what `CycleGAN` and `CUT` both answer: `network_names`,
`training_optimizers` and `stack_network_calls`, `train_function_wrapper`.

`apply_cpu_speedups(model, "auto")` attaches them (all of them on a machine without a GPU,
none with one) to a compiled `CycleGAN` or `CUT` object, without changing any class, config or
weight: what is saved stays plain Keras, and `apply_cpu_speedups(model, "off")` puts
the plain path back. Training applies it from `train.cpu_speedups`. Nothing in
`tf_cyclegan.layers` or `tf_cyclegan.models` imports this package.

Example:
>>> from tf_cyclegan.models.cyclegan import build_cyclegan
>>> model = build_cyclegan(filters=8, num_residual_blocks=1, disc_filters=8)
>>> model.compile()
>>> applied = apply_cpu_speedups(model, "on")
"""

import keras

from tf_cyclegan import runtime
from tf_cyclegan.choices import CPU_SPEEDUPS
from tf_cyclegan.speed import fused_adam, grappler, lean_conv, tape


def resolve_cpu_speedups(mode="auto"):
    """`mode` as True (on) or False (off): "auto" is on where TensorFlow sees no GPU."""
    if mode not in CPU_SPEEDUPS:
        raise ValueError(f"cpu_speedups must be one of {CPU_SPEEDUPS}. Received: cpu_speedups={mode!r}")
    if mode == "auto":
        return not runtime.has_gpu()
    return mode == "on"


def apply_cpu_speedups(model, mode="auto"):
    """Attaches the CPU speed-ups to a compiled `CycleGAN` or `CUT` (or takes them away).

    Call after `model.compile(...)` and before `fit`; the training function is made again
    at the next `fit`. Each device follows its own condition on top of the switch: the lean
    convolution gradient where TensorFlow runs its own CPU kernels (not oneDNN), the
    Grappler options without a GPU.

    Args:
        model: a compiled `tf_cyclegan.CycleGAN` or `tf_cyclegan.CUT`.
        mode: "auto" (default: on without a GPU), "on" or "off".

    Returns:
        dict: device name -> whether it is now attached.
    """
    if not getattr(model, "compiled", False):
        raise ValueError("apply_cpu_speedups needs a compiled model: call model.compile() first. "
                         f"Received: model={model!r}")
    on = resolve_cpu_speedups(mode)
    eigen = not runtime.onednn_enabled()
    layers = _network_layers(model)
    applied = {}

    convs = [layer for layer in layers if lean_conv.applies_to(layer)]
    for layer in convs:
        lean_conv.detach(layer)
        if on and eigen:
            lean_conv.attach(layer)
    applied["lean_conv"] = bool(convs) and on and eigen

    norms = [layer for layer in layers if hasattr(layer, "custom_gradient")]
    for layer in norms:
        layer.__dict__.pop("custom_gradient", None)
        if on:
            object.__setattr__(layer, "custom_gradient", tape.recorded_custom_gradient)
    applied["tape"] = bool(norms) and on and tape.tape_record_module() is not None

    adams = []
    for optimizer in model.training_optimizers:
        fused_adam.detach(optimizer)
        adams.append(on and fused_adam.attach(optimizer))
    applied["fused_adam"] = all(adams)

    model.stack_network_calls = on
    applied["stacked_calls"] = model.stack_network_calls

    model.train_function_wrapper = grappler.lean_training_function if on else None
    applied["grappler"] = on and not runtime.has_gpu()

    model.train_function = None  # traced again, with what is attached now, at the next fit
    return applied


def cpu_speedups_applied(model):
    """The devices attached to `model` now (a dict as `apply_cpu_speedups` returns)."""
    layers = _network_layers(model)
    return {
        "lean_conv": any(lean_conv.attached(layer) for layer in layers),
        "tape": any("custom_gradient" in layer.__dict__ for layer in layers),
        "fused_adam": all(fused_adam.attached(o) for o in model.training_optimizers),
        "stacked_calls": bool(getattr(model, "stack_network_calls", False)),
        "grappler": getattr(model, "train_function_wrapper", None) is not None,
    }


def _network_layers(model):
    """Every layer of the trained networks (`model.network_names`), nested models' layers
    included (public `.layers`); a network that is one layer (CUT's feature head) is itself."""
    found, todo = [], []
    for name in model.network_names:
        network = getattr(model, name)
        (todo if isinstance(network, keras.Model) else found).append(network)
    while todo:
        for layer in todo.pop().layers:
            (todo if isinstance(layer, keras.Model) else found).append(layer)
    return found


__all__ = ["CPU_SPEEDUPS", "apply_cpu_speedups", "cpu_speedups_applied", "resolve_cpu_speedups"]
