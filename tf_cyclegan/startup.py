"""Process start-up: loading TensorFlow without the cyclic garbage collector rescanning it.

Importing TensorFlow and Keras creates about 450,000 Python objects (modules, classes,
functions, op definitions) that live as long as the process. While they are created,
Python's cyclic garbage collector runs every few hundred allocations, and its full
collections scan every object created so far: on this project's benchmark CPU five of
them ran during the import, 0.46 s of its ~4 s, while one collection after the import
finds only about 1,900 unreachable objects. `collector_paused_for_import` runs such an
import with the collector paused and then moves every object that exists (the import's,
and the few the process made before it) to the collector's permanent generation
(`gc.freeze`), where later collections do not scan them either; reference counting still
frees those objects as usual, only reference cycles among them are never collected.

It acts only when the import is the first of its module in the process (`tf_cyclegan`
imported before TensorFlow: the CLI, the benchmarks, a script), and only if the collector
was on; otherwise it does nothing.
"""

import contextlib
import gc
import sys


@contextlib.contextmanager
def collector_paused_for_import(module="tensorflow"):
    """Pauses the cyclic garbage collector while `module` is first imported inside, and
    freezes the objects that exist once it has been (see the module docstring)."""
    if module in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        gc.enable()
