"""Sphinx configuration: the Markdown pages in docs/ are the site (myst-parser), plus an
API reference generated from the packages' docstrings (autodoc).

Build (warnings are errors, every cross-reference must resolve):
``sphinx-build -W -n --keep-going -b html docs build/docs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

project = "wsd"
author = "the wsd authors"
copyright = "the wsd authors"

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "benchmarks/**"]

# GitHub's heading anchors, so `page.md#a-heading` works both on GitHub and here.
myst_heading_anchors = 6

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": False}

# There is no network for intersphinx, so references into other projects'
# documentation cannot resolve. Ignore exactly those: the standard library and
# the third-party packages our signatures mention. wsd's own names are not
# listed here, so a broken reference to them still fails the build.
_THIRD_PARTY = (
    # the standard library
    "pathlib",
    "collections",
    "os",
    "http",
    # what the packages build on
    "torch",
    "tvm",
    "numpy",
    "diffusers",
    "transformers",
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_THIRD_PARTY)})(\..*)?"),
]

html_theme = "alabaster"
html_title = "wsd: Stable Diffusion on WebGPU"


def _dataclass_factories(
    app: Any,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None]:
    """Show a dataclass field's ``default_factory`` default as ``field(...)``.

    ``inspect`` renders it as ``<factory>``, which is not Python; Sphinx then
    falls back to splitting the signature at commas and reports the pieces
    (``list[tuple[str``) as missing classes.
    """
    if signature is not None:
        signature = signature.replace("<factory>", "field(...)")
    return signature, return_annotation


class _DirectoryLinks(SphinxPostTransform):
    """A Markdown link to a directory that exists (``[raw](benchmarks/raw/)``).

    GitHub shows such a link as the directory's listing; a Sphinx site has no
    page for it, and myst-parser would report a missing target. The link text
    is kept, without a link. A directory that does not exist stays an error
    (here and in tests/test_docs.py).
    """

    default_priority = 8  # before myst-parser's reference resolver (9)

    def run(self, **kwargs: Any) -> None:
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or node.get("refdomain"):
                continue
            target = str(node["reftarget"]).split("#", 1)[0]
            if not target.endswith("/"):
                continue
            page = Path(self.env.doc2path(node.get("refdoc", self.env.docname)))
            if (page.parent / target).is_dir():
                node.replace_self(nodes.inline("", "", *node.children))


def setup(app: Any) -> None:
    app.connect("autodoc-process-signature", _dataclass_factories)
    app.add_post_transform(_DirectoryLinks)
