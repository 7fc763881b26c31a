"""Local copies of what the report's pages load: plotly.js (one per run, shared with its figures) and MathJax
(from the ``jupyter-server-mathjax`` package), so the report opens offline from a file URL."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..plots.saving import PLOTLY_JS, STATIC_DIR, shared_plotlyjs

MATHJAX_DIR = "mathjax"
# what MathJax 2 needs for TeX input and HTML-CSS output with the STIX web font (the package ships the output jax
# only inside its combined config file); no other fonts or locales
_MATHJAX_PARTS = ("MathJax.js", "config", "jax/input/TeX", "jax/output/HTML-CSS", "jax/element", "extensions",
                  "fonts/HTML-CSS/STIX-Web", "localization/en")
_MATHJAX_COMBINED = "TeX-AMS-MML_HTMLorMML-full"
MATHJAX_CONFIG = r"""<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  jax: ["input/TeX", "output/HTML-CSS"],
  "HTML-CSS": {availableFonts: [], webFont: "STIX-Web", imageFont: null},
  TeX: {extensions: ["AMSmath.js", "AMSsymbols.js", "noErrors.js", "noUndefined.js"]},
  tex2jax: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
            processEscapes: true, processEnvironments: true, ignoreClass: "fl1-source|fl1-traceback|input_area"},
  messageStyle: "none",
  showMathMenu: false
});
MathJax.Hub.Queue(function () { document.body.dataset.mathjax = "done"; });
</script>"""


def mathjax_source() -> Path:
    """The installed MathJax 2 folder (``jupyter-server-mathjax``'s static files)."""
    try:
        import jupyter_server_mathjax
    except ImportError as exc:
        raise RuntimeError("the report needs a local MathJax: pip install jupyter-server-mathjax "
                           "(part of the [notebooks] extra)") from exc
    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (src / "MathJax.js").is_file():
        raise RuntimeError(f"{src}: no MathJax.js in the jupyter-server-mathjax package")
    return src


def install_mathjax(static: Path) -> Path:
    """Copy MathJax (TeX → HTML-CSS parts, ~9 MB) into ``<static>/mathjax`` once; returns that folder."""
    dest = static / MATHJAX_DIR
    if (dest / "MathJax.js").is_file():
        return dest
    src = mathjax_source()
    tmp = static / (MATHJAX_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for part in _MATHJAX_PARTS:
        s, d = src / part, tmp / part
        if s.is_dir():
            shutil.copytree(s, d)
        elif s.is_file():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
    tmp.replace(dest)
    return dest


def install_assets(run_dir: Path) -> dict[str, str]:
    """plotly.js and MathJax in ``<run>/_static``; returns their paths relative to ``<run>/report/``."""
    static = run_dir / STATIC_DIR
    shared_plotlyjs(static)
    install_mathjax(static)
    return {"plotly": f"../{STATIC_DIR}/{PLOTLY_JS}",
            "mathjax": f"../{STATIC_DIR}/{MATHJAX_DIR}/MathJax.js?config={_MATHJAX_COMBINED}"}


__all__ = ["MATHJAX_CONFIG", "install_assets", "install_mathjax", "mathjax_source"]
