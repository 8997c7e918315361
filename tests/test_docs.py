"""The documentation builds without warnings (fast gallery)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_in_fast_mode(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("sphinx_gallery")
    pytest.importorskip("numpydoc")
    pytest.importorskip("myst_parser")
    # Build a copy, so that the test neither reads stale outputs nor writes
    # into the checkout (sphinx-gallery writes next to the sources).
    outputs = shutil.ignore_patterns("_build", "auto_examples", "generated",
                                     "sg_execution_times.rst")
    shutil.copytree(ROOT / "doc", tmp_path / "doc", ignore=outputs)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "SKBNCONVEX_DOC_FAST": "1", "OMP_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    env.pop("SKBNCONVEX_DOC_ONLINE", None)  # offline: no intersphinx fetches
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(tmp_path / "doc"),
         str(tmp_path / "html")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (tmp_path / "html" / "api.html").exists()
    assert (tmp_path / "html" / "generated" / "skbnconvex.bn_relu_path.html").exists()
    quickstart = tmp_path / "html" / "auto_examples" / "plot_regression_quickstart.html"
    assert "sphx-glr-single-img" in quickstart.read_text()  # the example ran
