"""Tensor helpers of the layers' incremental decoding steps.

Decoding one position at a time keeps key/value caches that a compiled loop
carries from step to step. Writing a position is an XLA dynamic-update-slice
inside compiled loops (in place, no copy of the cache), or a select over the
whole cache where the loop runs without XLA.
"""

from keras import ops


def write(cache, update, index, axis: int, in_place: bool = True):
    """`cache` with position `index` of `axis` set to `update` (which lacks that axis).

    Args:
      cache: (..., L, ...) tensor, the cached axis at `axis`.
      update: the cache's shape without `axis`.
      index: scalar int tensor.
      in_place: XLA dynamic-update-slice (requires XLA compilation); False: a
        select over the whole cache (any graph).
    """
    if in_place:
        start = ops.cast(ops.one_hot(axis, len(cache.shape)), "int32") * ops.cast(index, "int32")
        return ops.slice_update(cache, start, ops.expand_dims(update, axis))
    shape = [1] * len(cache.shape)
    shape[axis] = cache.shape[axis]
    mask = ops.reshape(ops.equal(ops.arange(cache.shape[axis]), index), shape)
    return ops.where(mask, ops.expand_dims(update, axis), cache)


def at(tensor, index, axis: int):
    """tensor[..., index:index+1, ...] along `axis` for a scalar tensor index."""
    return ops.take(tensor, ops.expand_dims(index, 0), axis=axis)


def columns_first(tensor):
    """(B, 1, W, ...) -> (W, B, prod(...)): a row's per-column slices, so that a
    pixel step takes column `j` with one gather along the first axis."""
    shape = ops.shape(tensor)
    flat = ops.reshape(tensor, (shape[0], shape[2], -1))
    return ops.transpose(flat, (1, 0, 2))


def flat_conditions(conditions):
    """(B, 1, 1, D) conditional-norm (scale, shift) -> (B, D) each (None stays None)."""
    return None if conditions is None else tuple(t[:, 0, 0] for t in conditions)
