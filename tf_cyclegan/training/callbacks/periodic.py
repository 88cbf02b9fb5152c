"""When a periodic action of a callback is due, in one place for all of them."""


def is_due(count, every_n):
    """Whether something done every `every_n` steps (or epochs) is due after the `count`-th
    (counted from 1, over the whole run); `every_n` 0 or None: never."""
    return bool(every_n) and count % every_n == 0
