"""Command-line experiments that write small result files for the book's full-scale chapters, e.g. Part V's::

    python -m wvi.experiments.permutation --preset mlp-mnist \\
        --out results/permutation/mlp-mnist
"""
