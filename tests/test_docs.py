"""The offline documentation site (tools/build_docs.py, `make docs`).

The builder's conversions on small inputs; a fixture site (figures, math, API sections, links, hidden code)
and the project's real site, both opened in headless Chromium with the network blocked.
"""
import base64, html, io, json, re, subprocess, sys, tempfile
from importlib.metadata import version, PackageNotFoundError
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import build_docs as bd

HOST = 'https://waypoint-rl.github.io/waypoint_rl'   # settings.ini doc_host + doc_baseurl: nbdev's doc links start so

# --- the builder's pieces, no Sphinx --------------------------------------------------------------------------------

def test_page_names():
    assert bd.page_name(Path('07_ppo_delta.ipynb')) == 'ppo_delta'
    assert bd.page_name(Path('10_tutorial.ipynb')) == 'tutorial'
    assert bd.page_name(Path('10a_grpo.ipynb')) == 'grpo'
    assert bd.page_name(Path('sub/03_x.ipynb')) == 'sub/x'
    assert bd.page_name(Path('00_utils.ipynb'), {'output-file': 'tools.html'}) == 'tools'

def test_directives():
    assert bd.directives('#| echo: false\n#| output: asis\nshow_doc(f)') == {'echo': 'false', 'output': 'asis'}
    assert bd.directives('#|hide\nimport x') == {'hide': ''}
    assert bd.directives('x = 1\n#| echo: false') == {}   # only at the top of the cell

def test_source_links_and_fences():
    src = '[source](https://x/y.py#L1){target="_blank" style="float:right"}'
    assert bd.rewrite_markdown(src) == '<a class="nbdev-source" href="https://x/y.py#L1">source</a>'
    fenced = f'```\n{src}\n```\n'
    assert bd.rewrite_markdown(fenced) == fenced         # code fences are left alone

def test_links_become_local():
    links = bd.LinkMap({'doc_host': 'https://waypoint-rl.github.io', 'doc_baseurl': '/waypoint_rl'},
                       {'index': 'index.ipynb', 'env': 'env.ipynb'},
                       {'index': set(), 'env': {'speed', 'toywaypointenv'}},
                       {'index.ipynb': 'index', '01_env.ipynb': 'env'})
    assert links(f'{HOST}/env.html#toywaypointenv.step') == 'env.ipynb#toywaypointenv.step'
    assert links(f'{HOST}/') == 'index.ipynb'
    assert links(f'{HOST}/nope.html#x') == f'{HOST}/nope.html#x'     # no such page here: left as it was
    assert links('https://fastcore.fast.ai/basics.html#l') == 'https://fastcore.fast.ai/basics.html#l'
    md = bd.rewrite_markdown(f'Use [`ToyWaypointEnv`]({HOST}/env.html#toywaypointenv).', links)
    assert md == 'Use [`ToyWaypointEnv`](env.ipynb#toywaypointenv).'
    assert links('01_env.ipynb#speed') == 'env.ipynb#speed'                 # a link to a notebook: to its page
    assert links('./01_env.ipynb') == 'env.ipynb'
    assert links('00_env.ipynb') == '00_env.ipynb'                          # no such notebook: left as it was
    # nbdev links symbols that have no section (private functions, methods without show_doc): the class, else the page
    assert links(f'{HOST}/env.html#toywaypointenv.reset', '`ToyWaypointEnv.reset`') == 'env.ipynb#toywaypointenv'
    assert links(f'{HOST}/env.html#_batch', '`_Batch`') == 'env.ipynb'
    assert links(f'{HOST}/env.html#typo', 'words') == 'env.ipynb#typo'     # a hand-written link stays strict

def test_headings_never_skip_a_level():
    cells = [{'cell_type': 'markdown', 'source': '#### deep\n```\n# not a heading\n```\n### api'},
             {'cell_type': 'markdown', 'source': '# own h1\n###### tiny'}]
    bd.normalise_headings(cells)
    assert cells[0]['source'] == '## deep\n```\n# not a heading\n```\n### api'
    assert cells[1]['source'] == '## own h1\n### tiny'

def test_cells():
    code = lambda s, outs=(): {'cell_type': 'code', 'source': s, 'outputs': list(outs), 'metadata': {}}
    doc = '---\n\n[source](https://x/y.py#L1){target="_blank"}\n\n### f\n\n*doc*'
    md_out = {'output_type': 'execute_result', 'data': {'text/markdown': doc, 'text/plain': ''}}
    (c,) = bd.convert_cell(code('#| echo: false\n#| output: asis\nshow_doc(f)', [md_out]))
    assert c['cell_type'] == 'markdown'
    assert c['source'].startswith('### f\n\n<a class="nbdev-source" href="https://x/y.py#L1">source</a>')
    stream = {'output_type': 'stream', 'name': 'stdout', 'text': 'hi\n'}
    (c,) = bd.convert_cell(code('#| echo: false\nprint("hi")', [stream]))
    assert c['metadata']['tags'] == ['hide-input'] and c['source'] == 'print("hi")' and c['outputs'] == [stream]
    assert bd.convert_cell(code('#| output: false\nx')) [0]['metadata']['tags'] == ['remove-output']
    assert bd.convert_cell(code('#| include: false\nx')) == []
    assert bd.convert_cell(code('#| eval: false\n')) == []                      # nothing left to show
    assert bd.convert_cell({'cell_type': 'raw', 'source': '---\ntitle: x\n---'}) == []

_KERNEL = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
def _nb(cells): return {'cells': cells, 'nbformat': 4, 'nbformat_minor': 5, 'metadata': _KERNEL}
def _md(s): return {'cell_type': 'markdown', 'metadata': {}, 'source': s}
def _code(s, outputs=()):
    return {'cell_type': 'code', 'execution_count': None, 'metadata': {}, 'outputs': list(outputs), 'source': s}
def _fm(title): return {'cell_type': 'raw', 'metadata': {}, 'source': f'---\ntitle: {title}\n---\n'}

def test_two_notebooks_one_page(tmp_path):
    for n in ('01_x.ipynb', '02_x.ipynb', 'index.ipynb'): (tmp_path/n).write_text(json.dumps(_nb([_fm(n)])))
    with pytest.raises(bd.DocsError, match=r'nbs/02_x.ipynb and nbs/01_x.ipynb both make the page x.html'):
        bd.write_sources(tmp_path, tmp_path/'_src', {})

def test_no_home_page(tmp_path):
    (tmp_path/'01_x.ipynb').write_text(json.dumps(_nb([_fm('x')])))
    with pytest.raises(bd.DocsError, match='nbs/index.ipynb: missing'): bd.write_sources(tmp_path, tmp_path/'_src', {})

# --- building sites -------------------------------------------------------------------------------------------------

@pytest.fixture(scope='session')
def docs_deps():
    "The pinned docs packages (docs/requirements.txt) in this venv: installed here when missing, as `make docs` does"
    reqs = (ROOT/'docs/requirements.txt').read_text().splitlines()
    pins = [l.split('==') for l in reqs if '==' in l and not l.startswith('#')]
    def ok(name, want):
        try: return version(name) == want
        except PackageNotFoundError: return False
    if not all(ok(n.strip(), v.strip()) for n, v in pins):
        r = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '-r', str(ROOT/'docs/requirements.txt')],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"pip install -r docs/requirements.txt failed:\n{r.stderr[-2000:]}"

def test_sphinx_warning_fails_and_names_the_notebook(tmp_path, docs_deps):
    "A broken link (or any Sphinx warning) stops the build; the message points at the notebook; _docs is left alone"
    (tmp_path/'settings.ini').write_text((ROOT/'settings.ini').read_text())
    proc = tmp_path/'_proc'; proc.mkdir()
    (proc/'index.ipynb').write_text(json.dumps(_nb([_fm('Home'), _md('# Home')])))
    bad = _nb([_fm('Bad'), _md(f'See [x]({HOST}/index.html#no-such-anchor).')])
    (proc/'03_bad.ipynb').write_text(json.dumps(bad))
    out = tmp_path/'_docs'; out.mkdir(); (out/'old.html').write_text('previous site')
    with pytest.raises(bd.DocsError, match=r"nbs/03_bad.ipynb \(as bad.html\).*local id not found.*no-such-anchor"):
        bd.build(tmp_path, out=out, proc=False)
    assert (out/'old.html').read_text() == 'previous site'

def _png_output():
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt, numpy as np
    fig, ax = plt.subplots(figsize=(4, 3))
    x = np.linspace(0, 6, 100)
    for k in range(4): ax.plot(x, np.sin(x + k), lw=3)
    ax.set_title('fixture figure'); buf = io.BytesIO(); fig.savefig(buf, format='png', dpi=80); plt.close(fig)
    return {'output_type': 'display_data', 'metadata': {},
            'data': {'image/png': base64.b64encode(buf.getvalue()).decode(), 'text/plain': '<Figure>'}}

@pytest.fixture(scope='session')
def fixture_site(tmp_path_factory, docs_deps):
    "A small project run through the whole builder (nbdev processing included)"
    root = tmp_path_factory.mktemp('fixture')
    (root/'settings.ini').write_text((ROOT/'settings.ini').read_text())
    nbs = root/'nbs'; nbs.mkdir()
    (nbs/'index.ipynb').write_text(json.dumps(_nb([
        _md('# Fixture home\n\n> The lead line of the fixture.'),
        _md(f'Inline math $a^2+b^2=c^2$ and a display:\n\n$$\\sum_{{i=1}}^n x_i$$\n\n'
            f'See [`Thing.go`]({HOST}/plots.html#thing.go) and [the saver]({HOST}/plots.html#atomic_save).'),
        _md('## Remember this\nA section of the home page, with a table:\n\n'
            '| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |'),
        _code('for i in range(4): print("a line of output", i)',
              [{'output_type': 'stream', 'name': 'stdout',
                'text': ''.join(f'a line of output {i}\n' for i in range(4))}])])))
    (nbs/'01_plots.ipynb').write_text(json.dumps(_nb([
        _md('# Plots\n\n> Figures, hidden code and API sections.'),
        _code('#| hide\nfrom waypoint_rl.utils import *\nfrom nbdev.showdoc import *'),
        _md('#### A deep heading right after the title'),
        _code('#| export\nclass Thing:\n    "A fixture class"\n    def go(self, n:int=1): "Go `n` steps"; return n'),
        _code('#| echo: false\n#| output: asis\nshow_doc(Thing.go)'),
        _code('#| echo: false\n#| output: asis\nshow_doc(atomic_save)'),
        _code('plot_sines()', [_png_output()]),
        _code('#| echo: false\nprint("hidden source")',
              [{'output_type': 'stream', 'name': 'stdout', 'text': 'shown output\n'}]),
        _md('## Careful\nThis is **bold**, and [the home page](index.ipynb).'),
        _code('x = 1  # never run: no outputs')])))
    (nbs/'02_bare.ipynb').write_text(json.dumps(_nb([_md('No front matter here.'), _code('1 + 1')])))
    (nbs/'10_ten.ipynb').write_text(json.dumps(_nb([_md('# Ten\n\n> Sorted after two.')])))
    entries = bd.build(root)
    return root, entries

def test_fixture_sources(fixture_site):
    root, entries = fixture_site
    assert [(n, p) for n, p, _ in entries] == [('index.ipynb', 'index'), ('01_plots.ipynb', 'plots'),
                                              ('02_bare.ipynb', 'bare'), ('10_ten.ipynb', 'ten')]
    assert [t for *_, t in entries] == ['Fixture home', 'Plots', '02_bare', 'Ten']
    site = root/'_docs'
    want = {'notebook': '01_plots.ipynb', 'page': 'plots.html', 'title': 'Plots'}
    assert json.loads((site/'pages.json').read_text())[1] == want
    html = (site/'plots.html').read_text()
    assert 'id="thing.go"' in html and 'id="atomic_save"' in html             # Quarto's anchors: nbdev links land
    assert 'hide-input' in html and 'shown output' in html
    assert '<strong>bold</strong>' in html and 'href="index.html"' in html
    home = (site/'index.html').read_text()
    anchors = re.findall(r'href="plots\.html#([^"]+)"', home)
    assert len(anchors) == 2 and all(f'id="{a}"' in html for a in anchors), anchors   # nbdev's links, now local
    assert 'Remember this' in home
    assert (site/'_static/mathjax/tex-svg-full.js').stat().st_size > 1_000_000
    assert 'atomic_save' in (site/'searchindex.js').read_text()
    for page in site.glob('*.html'):   # nothing the page needs comes from the network
        t = page.read_text()
        assert not re.search(r'<script[^>]+src="(https?:)?//', t), page
        assert not re.search(r'<link[^>]+rel="stylesheet"[^>]+href="(https?:)?//', t), page

# --- headless Chromium ----------------------------------------------------------------------------------------------

@pytest.fixture(scope='session')
def chromium():
    r = subprocess.run(['bash', str(ROOT/'tools/ensure_chromium.sh')], capture_output=True, text=True, timeout=1200)
    if r.returncode: pytest.skip(f"no headless Chromium: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return r.stdout.strip().splitlines()[-1]

def _chrome(chrome, url, *action, size=(1280, 1600)):
    with tempfile.TemporaryDirectory() as prof:
        cmd = [chrome, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--no-first-run', f'--user-data-dir={prof}',
               '--proxy-server=http://127.0.0.1:9', '--proxy-bypass-list=<-loopback>',   # no network: offline for real
               '--hide-scrollbars', f'--window-size={size[0]},{size[1]}', '--virtual-time-budget=10000',
               *action, url]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"chromium failed on {url}:\n{r.stderr[-2000:]}"
    return r.stdout

def _article(dom):
    m = re.search(r'<article[^>]*bd-article[^>]*>(.*)</article>', dom, re.S)
    assert m, "no <article class=bd-article> in the page"
    return m.group(1)

def check_page(chrome, page:Path, title:str, min_images:int, shot:Path):
    "The page renders: its title, at least `min_images` figures whose files exist, a screenshot that is not blank"
    dom = _chrome(chrome, page.as_uri(), '--dump-dom')
    art = _article(dom)
    h1 = re.search(r'<h1[^>]*>(.*?)</h1>', art, re.S)
    assert h1 and title in html.unescape(re.sub(r"<[^>]+>", "", h1.group(1))), \
        f"{page.name}: title {title!r} not in <h1>"
    imgs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', art)
    assert len(imgs) >= min_images, \
        f"{page.name}: {len(imgs)} <img> in the article, the notebook has {min_images} figures"
    from PIL import Image
    for src in imgs:
        f = (page.parent/src).resolve()
        assert f.is_file(), f"{page.name}: <img src={src}> has no file"
        with Image.open(f) as im: assert im.size[0] > 10 and im.size[1] > 10, f
    _chrome(chrome, page.as_uri(), f'--screenshot={shot}')
    with Image.open(shot) as im:
        px = im.convert('RGB'); n = px.size[0]*px.size[1]
        colors = px.getcolors(maxcolors=n)
    top = max(c for c, _ in colors)
    assert len(colors) >= 64 and top < 0.97*n, f"{shot}: looks blank ({len(colors)} colours, {top/n:.1%} one colour)"
    return dom

def test_fixture_in_browser(fixture_site, chromium, tmp_path):
    root, _ = fixture_site
    site = root/'_docs'
    dom = check_page(chromium, site/'index.html', 'Fixture home', 0, tmp_path/'index.png')
    assert dom.count('<mjx-container') == 2 and '<svg' in dom, "MathJax did not typeset offline"
    nav = re.search(r'<nav[^>]*bd-docs-nav[^>]*>(.*?)</nav>', dom, re.S).group(1)
    assert re.findall(r'href="([a-z]+)\.html"', nav) == ['plots', 'bare', 'ten']       # numbered order
    check_page(chromium, site/'plots.html', 'Plots', 1, tmp_path/'plots.png')
    found = _chrome(chromium, (site/'search.html').as_uri() + '?q=atomic_save', '--dump-dom')
    assert re.search(r'<ul[^>]*class="search"[^>]*>.*href="plots\.html', found, re.S), "search found nothing"

# --- the project's own site -----------------------------------------------------------------------------------------

def _natural(s): return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', s)]

def _figures(nb:Path)->int:
    "Image outputs of the cells the site shows"
    n = 0
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] != 'code': continue
        d = bd.directives(''.join(c['source']))
        if 'hide' in d or d.get('include') == 'false' or d.get('output') == 'false': continue
        n += sum(any(k.startswith('image/') for k in o.get('data', {})) for o in c.get('outputs', []))
    return n

def _title(nb:Path)->str:
    first = next(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'markdown')
    m = re.match(r'#\s+(.+)', first.strip())
    assert m, f"{nb}: first markdown cell is not '# Title'"
    return m.group(1).strip()

def main_page(nbs:Path):
    "The residual PPO notebook once it exists, else the env one, else the first numbered notebook"
    for stem in ('07_ppo_delta', '01_env'):
        if (nbs/f'{stem}.ipynb').exists(): return nbs/f'{stem}.ipynb'
    numbered = sorted(nbs.glob('[0-9]*.ipynb'), key=lambda p: _natural(p.name))
    return numbered[0] if numbered else None

def _fresh_site():
    "`_docs/` as `make docs` left it, when it is newer than everything it is built from (else None)"
    site = ROOT/bd.read_settings().get('doc_path', '_docs')
    stamp = site/'pages.json'
    if not stamp.is_file(): return None
    nbs = ROOT/bd.read_settings().get('nbs_path', 'nbs')
    inputs = [ROOT/'settings.ini', ROOT/'tools/build_docs.py', nbs, *nbs.rglob('*'), *(ROOT/'docs').rglob('*')]
    if max(f.stat().st_mtime for f in inputs if f.exists()) >= stamp.stat().st_mtime: return None
    return site, [(e['notebook'], e['page'][:-len('.html')], e['title']) for e in json.loads(stamp.read_text())]

@pytest.fixture(scope='session')
def real_site(tmp_path_factory, docs_deps):
    "The project's site: `_docs/` when up to date (CI runs `make docs` first), else a fresh build in a temp folder"
    fresh = _fresh_site()
    if fresh: return fresh
    out = tmp_path_factory.mktemp('site')/'_docs'
    try: entries = bd.build(ROOT, out=out)
    except bd.DocsError as e: pytest.fail(f"the docs do not build:\n{e}", pytrace=False)
    return out, entries

def test_real_site(real_site, chromium, tmp_path):
    site, entries = real_site
    nbs = ROOT/bd.read_settings().get('nbs_path', 'nbs')
    on_disk = sorted(str(p.relative_to(nbs)) for p in nbs.rglob('*.ipynb')
                     if not any(x.startswith(('_', '.')) for x in p.relative_to(nbs).parts))
    assert sorted(n for n, *_ in entries) == on_disk                 # a page for every notebook
    pages = {n: site/f'{p}.html' for n, p, _ in entries}
    assert all(f.is_file() for f in pages.values())
    home = nbs/'index.ipynb'
    check_page(chromium, pages['index.ipynb'], _title(home), _figures(home), tmp_path/'home.png')
    nb = main_page(nbs)
    if nb is None: pytest.skip("no numbered notebook in nbs/ yet")
    rel = str(nb.relative_to(nbs))
    check_page(chromium, pages[rel], _title(nb), _figures(nb), tmp_path/f'{nb.stem}.png')
