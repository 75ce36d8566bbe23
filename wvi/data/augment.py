"""Data augmentation for image classifiers (Part V, Rossi et al.'s Fig. 12): random shifts with zero fill.

Augmentation changes the likelihood the posterior is of (each step sees a randomly shifted copy of its minibatch),
which is why Rossi et al. train without it and test its effect in one figure; `wvi.bnn`'s trainers take it as an
`augment(key, xb) -> xb` function applied to each minibatch.
"""
from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp


def random_shifts(key, x, max_shift: int = 1, image_shape: Optional[Sequence[int]] = None) -> jax.Array:
    """Each image of `x` moved by its own random integer offset (dy, dx), each uniform on {−s, …, s}
    (s = `max_shift`), with zeros shifted in: out[n, i, j] = x[n, i − dy, j − dx] where that pixel exists, else 0.

    Args:
        key: a `jax.random` key; one offset pair per image.
        x: images (N, H, W, C), or flat images (N, H·W·C) when `image_shape` = (H, W, C) is given.
        max_shift: s ≥ 0, the largest shift in pixels along each axis (0 returns x unchanged).
        image_shape: (H, W, C) of flat inputs; None when x already has that shape.
    Returns:
        The shifted images, of x's shape. Works under `jit` and `vmap`.
    """
    x = jnp.asarray(x)
    if not (isinstance(max_shift, int) and max_shift >= 0):
        raise ValueError(f"max_shift must be an integer >= 0; got {max_shift!r}")
    if image_shape is not None:
        image_shape = tuple(int(d) for d in image_shape)
        if len(image_shape) != 3 or x.ndim != 2 or x.shape[1] != image_shape[0] * image_shape[1] * image_shape[2]:
            raise ValueError(f"x must be flat images (N, H·W·C) matching image_shape (H, W, C) = {image_shape}; "
                             f"got x of shape {x.shape}")
        images = x.reshape((x.shape[0],) + image_shape)
    else:
        if x.ndim != 4:
            raise ValueError(f"x must be images (N, H, W, C), or flat with image_shape given; got shape {x.shape}")
        images = x
    if max_shift == 0:
        return x
    s = max_shift
    _, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)))
    starts = jax.random.randint(key, (images.shape[0], 2), 0, 2 * s + 1)  # start s − d: a shift by d

    def crop(image, start):
        return jax.lax.dynamic_slice(image, (start[0], start[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, starts).reshape(x.shape)
