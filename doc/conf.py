"""Sphinx configuration of the skbnconvex documentation."""

import os
import sys
import warnings

sys.path.insert(0, os.path.abspath(".."))

import skbnconvex  # noqa: E402

project = "skbnconvex"
author = "the skbnconvex developers"
copyright = "2026, the skbnconvex developers"
version = release = skbnconvex.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_theme = "alabaster"

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Offline builds: intersphinx inventories are fetched only when asked for
# (SKBNCONVEX_DOC_ONLINE=1); otherwise cross-references to other projects
# render as plain text instead of failing the build.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://pytorch.org/docs/stable", None),
    "cvxpy": ("https://www.cvxpy.org", None),
}
if not os.environ.get("SKBNCONVEX_DOC_ONLINE"):
    intersphinx_mapping = {}

# SKBNCONVEX_DOC_FAST=1 runs only the light examples (quick checks, CI).
_fast = bool(os.environ.get("SKBNCONVEX_DOC_FAST"))
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_regression_quickstart\.py" if _fast else r"/plot_",
    "ignore_pattern": r"(^|/)quickstart\.py$|__init__\.py",
    "download_all_examples": False,
    "plot_gallery": "True",
    "remove_config_comments": True,
}
nitpicky = False
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib")
