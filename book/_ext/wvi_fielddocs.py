"""Document the fields of `wvi`'s NamedTuples on the API page by their source comments.

A Sphinx extension (listed under `sphinx.local_extensions` in _config.yml). Python gives every NamedTuple field
the docstring "Alias for field number N", which autodoc would print under each of the API page's ~200 fields. `wvi`
documents a field by a comment on its line instead::

    class BBVIInfo(NamedTuple):
        loss: jax.Array  # Monte Carlo estimate of KL(q‖p) - log Z at q before the update

This extension shows that comment (with any comment lines right below that continue it) in place of the alias
text, and leaves out a field that has no comment: the class's signature still names it, and the class docstring
describes it where it needs describing.
"""
from __future__ import annotations

import ast
import functools
import inspect
import re
import sys
import textwrap

ALIAS = re.compile(r"^Alias for field number \d+$")


def field_comments(source: str) -> dict:
    """{field: comment} for the annotated fields of the class whose source text is `source` that carry a trailing
    `#` comment; comment-only lines right below a field continue its comment."""
    source = textwrap.dedent(source)
    lines = source.splitlines()
    comments = {}
    for statement in ast.parse(source).body[0].body:
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            continue
        code, hash_, comment = lines[statement.end_lineno - 1].partition("#")
        if not hash_ or code.count('"') % 2 or code.count("'") % 2:  # no comment, or a '#' inside a string
            continue
        parts = [comment.strip()]
        for following in lines[statement.end_lineno:]:
            if not following.lstrip().startswith("#"):
                break
            parts.append(following.strip().lstrip("#").strip())
        comments[statement.target.id] = " ".join(p for p in parts if p)
    return comments


def as_rest(comment: str) -> str:
    """`comment` as reStructuredText: `|` and `*` outside `code` escaped (`|m_j − μ_j|` is not a substitution)."""
    pieces = comment.split("`")
    return "`".join(p if i % 2 else re.sub(r"([|*])", r"\\\1", p) for i, p in enumerate(pieces))


def _is_alias(obj) -> bool:
    return bool(ALIAS.match((getattr(obj, "__doc__", None) or "").strip()))


@functools.lru_cache(maxsize=None)
def _class_comments(cls) -> dict:
    """`field_comments` of a class's source, parsed once per class (both hooks ask for every field)."""
    try:
        return field_comments(inspect.getsource(cls))
    except (OSError, TypeError, SyntaxError):
        return {}


def _comment(field: str, obj):
    """The source comment of NamedTuple field `field` whose accessor is `obj` (found among `wvi`'s classes by
    identity), or None."""
    for module_name, module in list(sys.modules.items()):
        if module_name != "wvi" and not module_name.startswith("wvi."):
            continue
        for cls in list(vars(module).values()):
            if inspect.isclass(cls) and cls.__dict__.get(field) is obj:
                return _class_comments(cls).get(field)
    return None


def skip_uncommented_fields(app, what, name, obj, skip, options):
    """autodoc-skip-member: leave out a NamedTuple field that has no source comment."""
    if not skip and what == "class" and _is_alias(obj) and _comment(name, obj) is None:
        return True
    return None


def replace_alias_docstring(app, what, name, obj, options, lines):
    """autodoc-process-docstring: a field's alias docstring becomes its source comment."""
    if _is_alias(obj) and ALIAS.match(" ".join(lines).strip()):
        comment = _comment(name.rpartition(".")[2], obj)
        lines[:] = [as_rest(comment)] if comment else []


def setup(app):
    app.connect("autodoc-skip-member", skip_uncommented_fields)
    app.connect("autodoc-process-docstring", replace_alias_docstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
