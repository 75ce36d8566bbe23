"""Train/test splits: one `Split` type for regression and classification, seeded and standardised by the training
statistics only."""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np


class Split(NamedTuple):
    """A train/test split. Regression targets are standardised (`y_mean`, `y_std`: the training targets' mean and
    std, to report errors in the original units); classification labels are integers 0..num_classes − 1."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: Optional[int] = None  # None: regression
    y_mean: float = 0.0
    y_std: float = 1.0


def standardised_split(x, y, test_fraction: float, seed: int) -> Split:
    """A seeded random train/test split with inputs and targets standardised by the training statistics only."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64).ravel()
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (N, D) and y (N,); got shapes {x.shape} and {y.shape}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    order = np.random.default_rng(seed).permutation(x.shape[0])
    num_test = max(1, int(round(test_fraction * x.shape[0])))
    test, train = order[:num_test], order[num_test:]
    x_mean, x_std = x[train].mean(0), x[train].std(0)
    x_std[x_std == 0] = 1.0
    y_mean, y_std = float(y[train].mean()), float(y[train].std())
    return Split((x[train] - x_mean) / x_std, (y[train] - y_mean) / y_std, (x[test] - x_mean) / x_std,
                 (y[test] - y_mean) / y_std, y_mean=y_mean, y_std=y_std)


def binary_split(x, y, test_fraction: float = 0.2, seed: int = 0, intercept: bool = True) -> Split:
    """A seeded train/test split (stratified by label) with features standardised by the training statistics only,
    and a last column of ones when `intercept` (Part III)."""
    from sklearn.model_selection import train_test_split

    x, y = np.asarray(x, np.float64), np.asarray(y).ravel()
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (N, D) and y (N,); got shapes {x.shape} and {y.shape}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must hold labels 0 or 1")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y.astype(np.int32), test_size=test_fraction, random_state=seed, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std == 0] = 1.0
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if intercept:
        x_tr, x_te = (np.hstack([a, np.ones((a.shape[0], 1))]) for a in (x_tr, x_te))
    return Split(x_tr, y_tr, x_te, y_te, num_classes=2)
