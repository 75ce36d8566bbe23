"""Link the chapters' `wvi.x.y` names to the API reference.

A Sphinx extension (listed under `sphinx.local_extensions` in _config.yml). The chapters write library names as
inline code, `wvi.flows.bw_euler` or the short `flows.bw_euler` and `nn.meanfield_vi(...)`; autodoc documents every
module of `wvi` on the API page (book/api.md). After the doctrees are resolved, every inline literal outside the API
page whose text names a documented object (with or without the `wvi.` prefix, with or without a call's
parentheses) becomes a link to that object's entry. Anything else stays plain code.
"""
from __future__ import annotations

import importlib
import re

from docutils import nodes

NAME = re.compile(r"^(?:wvi\.)?([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)(?:\(.*\))?$")


def _canonical(name: str):
    """`module.qualname` of the object `name` names (a package's re-export resolves to where it is defined)."""
    module_name, _, attribute = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        return None
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else None


def _target(objects: dict, text: str):
    match = NAME.match(text.strip())
    if not match:
        return None
    name = "wvi." + match.group(1)
    return objects.get(name) or objects.get(_canonical(name) or "")


def link_api_names(app, doctree, docname: str) -> None:
    """Wrap inline literals naming a documented `wvi` object in a reference to the API page."""
    if docname == "book/api" or app.builder.format != "html":
        return
    objects = app.env.get_domain("py").objects
    for literal in list(doctree.findall(nodes.literal)):
        if isinstance(literal.parent, (nodes.reference, nodes.literal_block)) or "code" in literal.parent.get("classes", []):
            continue
        entry = _target(objects, literal.astext())
        if entry is None:
            continue
        uri = app.builder.get_relative_uri(docname, entry.docname) + "#" + entry.node_id
        reference = nodes.reference("", "", internal=True, refuri=uri, classes=["wvi-api"])
        literal.replace_self(reference)
        reference.append(literal)


def setup(app):
    app.connect("doctree-resolved", link_api_names)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
