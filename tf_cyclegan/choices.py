"""The words the config, the command line and the Python API share, each set defined once.

The config's types (`typing.Literal[...]` of these tuples) and the command line's `choices=`
are built from them, so the two cannot drift apart. This module imports nothing, so a value
can be checked before TensorFlow loads.
"""

# The methods: CycleGAN (two generators, cycle-consistency; the default), CUT and FastCUT
# (one generator, one discriminator, PatchNCE: Park et al. 2020), which translate A to B only.
MODEL_KINDS = ("cyclegan", "cut", "fastcut")

# The two directions of translation, and the four networks of a CycleGAN (their attribute names).
DIRECTIONS = ("a2b", "b2a")
NETWORKS = ("gen_a2b", "gen_b2a", "disc_a", "disc_b")

# Which generators translate: the averaged ones where a model keeps them (`ema_decay`) and the
# trained ones otherwise ("auto"), or asked for by name.
GENERATOR_WEIGHTS = ("auto", "averaged", "raw")

# The adversarial loss: least squares (the paper's) or the original cross-entropy GAN.
GAN_MODES = ("lsgan", "vanilla")

# How the two upsamplings double the height and width. "transpose": the reference's stride-2
# transposed convolutions (its checkpoints load only into these). "resize": nearest-neighbour
# upsampling by 2, then a reflection-padded 3x3 convolution (Odena, Dumoulin and Olah,
# "Deconvolution and Checkerboard Artifacts", 2016): every output pixel gets the same number of
# kernel taps, so there is no uneven overlap to imprint the period-2 grid of a transposed
# convolution. Same parameter count; docs/checkerboard.md measures what it changes.
UPSAMPLINGS = ("transpose", "resize")

# How the stride-2 convolutions line up with the pixels. "reference": exactly the PyTorch
# reference's `Conv2d(3, stride=2, padding=1)` and `ConvTranspose2d(3, stride=2, padding=1,
# output_padding=1)`, so that its checkpoints compute here what they compute there.
# "keras_same": Keras' "same" padding, which version 0.1.0 built (the same parameters,
# sampled one pixel off); kept so that their runs resume with the network they trained.
ALIGNMENTS = ("reference", "keras_same")

# build_cyclegan's keywords that version 0.2.0 named otherwise, old -> new. The config's model
# keys are named as these keywords, so the same words were its model.* keys: both are still
# taken, with a warning naming the new one.
OLD_MODEL_KEYWORDS = {"generator_alignment": "alignment", "disc_layers": "disc_num_layers"}

# The numbers the networks compute in, for training and for translation alike: float32, or
# bfloat16 / float16 with float32 weights (Keras' mixed_bfloat16 / mixed_float16 policies);
# `auto` picks per device (tf_cyclegan/precision.py).
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# The words of version 0.2.0's config and `bench`, still read (with a warning naming the new one).
OLD_PRECISIONS = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}

# tf.distribute: none, one machine's devices, several machines, a TPU; `auto` picks.
STRATEGIES = ("auto", "none", "mirrored", "multi_worker", "tpu")

# The CPU speed devices of tf_cyclegan.speed: on, off, or `auto` (on where they pay).
CPU_SPEEDUPS = ("auto", "on", "off")

# TensorFlow's CPU allocator (runtime.set_cpu_allocator): its own BFC, or the C library's.
ALLOCATORS = ("auto", "bfc", "malloc")

