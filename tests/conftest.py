"""Unit tests check identities to high precision: float64 for the whole session (the chapters also choose it)."""
import jax

jax.config.update("jax_enable_x64", True)
