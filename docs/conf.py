# Sphinx configuration for the offline documentation site; built by tools/build_docs.py (`make docs`),
# which writes the converted notebooks into _proc/_src and runs `sphinx-build -W -c docs _proc/_src ...`.
import configparser, shutil, sys
from importlib.metadata import distribution, PackageNotFoundError
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE/'_ext'))
_ini = configparser.ConfigParser(interpolation=None)
_ini.read(HERE.parent/'settings.ini')
_s = _ini['DEFAULT']

project = _s.get('title', _s.get('lib_name', 'waypoint_rl'))
author = _s.get('author', '')
copyright = _s.get('copyright', '')
release = version = _s.get('version', '')

extensions = ['myst_nb', 'sphinx.ext.mathjax']
exclude_patterns = ['pages.json', '**/.ipynb_checkpoints']
# A code block whose text does not lex as its language (`...` in a JSON sketch) is shown without colour: not an error.
suppress_warnings = ['misc.highlighting_failure']

# The notebooks carry their outputs (figures, printed results): never execute them here.
nb_execution_mode = 'off'
nb_merge_streams = True
nb_output_stderr = 'show'
myst_enable_extensions = ['colon_fence', 'dollarmath', 'amsmath', 'attrs_inline', 'attrs_block', 'deflist']
myst_heading_anchors = 6
myst_heading_slug_func = 'nbdev_anchors.slug'   # Quarto's ids: nbdev's links to `page.html#cls.method` resolve

html_theme = 'sphinx_book_theme'
html_title = project
html_static_path = [str(HERE/'_static')]
html_css_files = ['custom.css']
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    'home_page_in_toc': True,
    'show_toc_level': 2,
    'use_download_button': False,
    'use_fullscreen_button': False,
    'use_repository_button': False,
    'navigation_with_keys': False,
    'show_navbar_depth': 1,
}

# Math renders offline: MathJax 3.2.2 from the PyPI package sphinx-mathjax-offline (docs/requirements.txt).
# Only its single-file SVG build is shipped (tex-svg-full.js: every TeX extension, glyphs as SVG paths, so no
# web fonts and no further downloads); it goes to _static/mathjax/ in the built site.
_MATHJAX = 'tex-svg-full.js'
mathjax_path = f'mathjax/{_MATHJAX}'
mathjax3_config = {'svg': {'fontCache': 'global'}}

def _mathjax_file():
    try: f = Path(distribution('sphinx-mathjax-offline').locate_file(f'sphinx-mathjax-offline/static/mathjax/{_MATHJAX}'))
    except PackageNotFoundError: f = None
    if not f or not f.is_file():
        raise RuntimeError(f"docs/conf.py: MathJax file {_MATHJAX} not found: pip install -r docs/requirements.txt")
    return f

def _copy_mathjax(app, exc):
    if exc is None and app.builder.format == 'html':
        dest = Path(app.outdir)/'_static'/'mathjax'
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(_mathjax_file(), dest/_MATHJAX)

def setup(app):
    _mathjax_file()                       # fail early, before a long build, when the package is missing
    app.connect('build-finished', _copy_mathjax)
