"""Build the documentation site `_docs/` offline from the notebooks in `nbs/` (Quarto-free stand-in for `nbdev_docs`).

    .venv/bin/python tools/build_docs.py            # or: make docs

1. `nbdev.serve.proc_nbs(force=True)` writes `_proc/`: each notebook with its front matter as a raw cell,
   `#| hide` cells gone and `show_doc` cells re-run into markdown API sections (other outputs are the
   ones saved in the notebook).
2. `convert_nb` turns each processed notebook into a plain MyST notebook in `_proc/_src/` (front matter ->
   title + lead paragraph, `#| echo: false` -> `hide-input` tag, `show_doc` output -> markdown with its
   `[source]` link, nbdev's absolute doc links and links to notebooks -> links between the local pages).
   The notebooks write plain markdown: Quarto-only syntax (callouts, divs, shortcodes) is not converted.
3. Sphinx + myst-nb (execution off) + sphinx-book-theme with `-W` builds `_proc/_html`, which then replaces
   `_docs/` (a failed build leaves the previous `_docs/` alone). Configuration: `docs/conf.py`.
"""
import argparse, configparser, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_SUFFIXES = {'.ipynb', '.md', '.rst', '.txt', '.py'}   # never copied into the Sphinx source folder as assets
SKIP_ASSETS = {'_quarto.yml', '_brand.yml', 'sidebar.yml', 'nbdev.yml', 'custom.yml', 'styles.css'}

class DocsError(Exception):
    "A notebook or the configuration cannot be turned into the site (message names the file)"

def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']
def _lines(s): return s.splitlines(keepends=True)

def _natural(s): return [int(t) if t.isdigit() else t.lower() for t in re.split(r'(\d+)', s)]

def read_settings(root=ROOT):
    "The `[DEFAULT]` section of settings.ini as a dict"
    p = configparser.ConfigParser(interpolation=None)
    if not p.read(root/'settings.ini'): raise DocsError(f"{root/'settings.ini'}: not found")
    return dict(p['DEFAULT'])

def front_matter(nb, path='notebook'):
    "The YAML front matter nbdev put in the first raw cell of a processed notebook, as a dict (`{}` when absent)"
    import yaml
    for c in nb['cells'][:1]:
        s = _src(c).strip()
        if c['cell_type'] == 'raw' and s.startswith('---'):
            try: fm = yaml.safe_load(s.strip('-').strip() or '{}') or {}
            except yaml.YAMLError as e: raise DocsError(f"{path}: bad front matter: {e}") from None
            if not isinstance(fm, dict): raise DocsError(f"{path}: front matter is not a mapping")
            return fm
    return {}

def page_name(nb_rel:Path, fm:dict|None=None)->str:
    "The site page (no `.html`) for a notebook path relative to `nbs/`: nbdev's `output-file`, else the unnumbered name"
    out = (fm or {}).get('output-file')
    name = Path(str(out)).with_suffix('').name if out else re.sub(r'^\d+[a-z]?_', '', Path(nb_rel).stem)
    return str(Path(nb_rel).parent/name)

# --- markdown rewriting -------------------------------------------------------------------------------------------

_re_fence = re.compile(r'^\s*(`{3,}|~{3,})')
_re_heading = re.compile(r'^(#{1,6})(\s+.*)$')

def _outside_fences(text, fn, inside=lambda t: t):
    "Apply `fn` to each run of lines outside code fences (and `inside` to each fence's body)"
    out, buf, fence = [], [], None
    for l in _lines(text):
        m = _re_fence.match(l)
        if fence is None and m:
            out.append(fn(''.join(buf))); buf = []; fence = m.group(1); out.append(l)
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and l.strip() == m.group(1):
                out.append(inside(''.join(buf))); buf = []; fence = None; out.append(l)
            else: buf.append(l)
        else: buf.append(l)
    out.append(fn(''.join(buf)) if fence is None else inside(''.join(buf)))
    return ''.join(out)

class LinkMap:
    "Links to pages: nbdev's doc links (`doc_host` + `doc_baseurl` + `/page.html#anchor`), links to notebooks"
    def __init__(self, settings, pages:dict, anchors:dict|None=None, notebooks:dict|None=None):
        # pages: page -> its file in `_src` ('utils' -> 'utils.ipynb'); anchors: page -> heading ids;
        # notebooks: 'nbs'-relative path -> page ('04_policy.ipynb' -> 'policy', so '04_policy.ipynb#speed' works)
        host, base = settings.get('doc_host', '').rstrip('/'), settings.get('doc_baseurl', '').strip('/')
        self.prefixes = [f"{host}/{base}/" if base else f"{host}/"] if host else []
        self.pages, self.anchors, self.notebooks = pages, anchors, notebooks or {}
    def _page(self, url):
        for p in self.prefixes:
            if url.startswith(p):
                page, _, anchor = url[len(p):].partition('#')
                return re.sub(r'\.html$', '', page) or 'index', anchor
        path, _, anchor = url.partition('#')
        if path.endswith('.ipynb') and '://' not in path:
            page = self.notebooks.get(path.removeprefix('./')) or self.notebooks.get(Path(path).name)
            if page: return page, anchor
        return None, None
    def __call__(self, url:str, text:str='')->str:
        page, anchor = self._page(url)
        if page not in self.pages: return url
        known = self.anchors.get(page, ()) if self.anchors is not None else None
        if anchor and known is not None and anchor not in known and re.fullmatch(r'`[^`]+`', text):
            # nbdev links every backticked symbol it knows, also those without a show_doc section (private
            # functions, methods): point at the class's section, else at the page
            parts = anchor.split('.')
            anchor = next(('.'.join(parts[:i]) for i in range(len(parts)-1, 0, -1) if '.'.join(parts[:i]) in known), '')
        return self.pages[page] + (f'#{anchor}' if anchor else '')

def _rewrite_links(text, links:LinkMap):
    return re.sub(r'\[([^\[\]\n]*)\]\(([^)\s]+)\)', lambda m: f"[{m.group(1)}]({links(m.group(2), m.group(1))})", text)

def heading_ids(cells)->set:
    "The anchors myst makes for the markdown headings of converted cells (see docs/_ext/nbdev_anchors.py)"
    sys.path.insert(0, str(ROOT/'docs'/'_ext'))
    try: from nbdev_anchors import slug
    finally: sys.path.remove(str(ROOT/'docs'/'_ext'))
    ids = set()
    def grab(t):
        for l in t.splitlines():
            m = _re_heading.match(l)
            if m:
                txt = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', m.group(2)).replace('`', '').replace('*', '')
                ids.add(slug(txt))
        return t
    for c in cells:
        if c['cell_type'] == 'markdown': _outside_fences(_src(c), grab)
    return ids

def _source_links(text):
    "nbdev's `[source](url){target=...}` after a `show_doc` heading -> a plain link the CSS floats right"
    return re.sub(r'\[source\]\(([^)\s]+)\)\{[^}\n]*\}', r'<a class="nbdev-source" href="\1">source</a>', text)

def rewrite_markdown(text, links:LinkMap|None=None):
    "nbdev markdown -> MyST markdown (outside code fences): `[source]` links, links between the pages"
    def fn(t):
        t = _source_links(t)
        return _rewrite_links(t, links) if links else t
    return _outside_fences(text, fn)

def normalise_headings(cells, top=1):
    "Clamp heading levels so none skips a level (Sphinx warns on `#` -> `###`); only `top` may be level 1"
    prev = top
    for c in cells:
        if c['cell_type'] != 'markdown': continue
        def fix(t):
            nonlocal prev
            out = []
            for l in _lines(t):
                m = _re_heading.match(l.rstrip('\n'))
                if m:
                    lvl = min(max(len(m.group(1)), top + 1), prev + 1)
                    prev = lvl
                    l = '#' * lvl + m.group(2) + ('\n' if l.endswith('\n') else '')
                out.append(l)
            return ''.join(out)
        c['source'] = _outside_fences(_src(c), fix)
    return cells

# --- cells ----------------------------------------------------------------------------------------------------------

_re_directive = re.compile(r'^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def directives(src:str)->dict:
    "Quarto/nbdev `#| key: value` cell directives at the top of a code cell"
    d = {}
    for l in src.splitlines():
        m = _re_directive.match(l)
        if not m:
            if l.strip(): break
            continue
        d[m.group(1).lower()] = m.group(2).strip().strip('"\'').lower()
    return d

def _strip_directives(src):
    ls = src.splitlines()
    while ls and (_re_directive.match(ls[0]) or not ls[0].strip()): ls.pop(0)
    return '\n'.join(ls)

def _md_cell(text): return {'cell_type': 'markdown', 'metadata': {}, 'source': text}

def _api_markdown(md:str)->str:
    "A `show_doc` output: drop the leading rule (the CSS draws one) and put the heading before the `[source]` link"
    md = re.sub(r'^\s*---\s*\n', '', md, count=1)
    unlink = lambda t: re.sub(r'\[(`[^`\n]+`)\]\(https?://[^)\s]+\)', r'\1', t)
    md = _outside_fences(md, lambda t: t, unlink)    # nbdev links symbols even in the signature's comments
    return re.sub(r'^\s*(\[source\]\([^)\n]*\)(?:\{[^}\n]*\})?)\s*\n+(#{1,6} [^\n]*)\n', r'\2\n\n\1\n', md, count=1)

def convert_cell(cell, links:LinkMap|None=None):
    "One processed cell -> a list of MyST notebook cells (maybe empty)"
    t = cell['cell_type']
    if t == 'raw': return []
    if t == 'markdown':
        s = _src(cell)
        if s.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): return []
        return [_md_cell(rewrite_markdown(s, links))]
    if t != 'code': return []
    src = _src(cell); d = directives(src)
    if d.get('include') == 'false': return []
    outs = cell.get('outputs', [])
    if d.get('output') == 'asis':
        mds = [_src({'source': o['data']['text/markdown']}) for o in outs if 'text/markdown' in o.get('data', {})]
        if mds: return [_md_cell(rewrite_markdown(_api_markdown(m), links)) for m in mds]
    body = _strip_directives(src)
    tags = []
    if d.get('echo') == 'false' or d.get('code-fold') in ('true', 'show'): tags.append('hide-input')
    if d.get('output') == 'false': tags.append('remove-output')
    if not body.strip():
        if not outs or 'remove-output' in tags: return []
        tags = ['remove-input'] + [x for x in tags if x != 'hide-input']
    new = {'cell_type': 'code', 'execution_count': cell.get('execution_count'), 'metadata': {}, 'outputs': outs,
           'source': body}
    if tags: new['metadata']['tags'] = tags
    return [new]

def convert_nb(nb:dict, path='notebook', links:LinkMap|None=None, default_title=None)->dict:
    "A `_proc` notebook -> a MyST notebook: title + lead paragraph, converted cells, sane heading levels"
    fm = front_matter(nb, path)
    title = str(fm.get('title') or default_title or Path(path).stem)
    desc = str(fm.get('description') or '').strip()
    head = f"# {title}\n"
    if desc: head += f"\n:::{{container}} lead\n{rewrite_markdown(desc, links)}\n:::\n"
    cells = [_md_cell(head)]
    for c in nb['cells']: cells += convert_cell(c, links)
    normalise_headings(cells[1:])   # a notebook's own `# Heading`s below the title become sections of the page
    for i, c in enumerate(cells): c['id'] = f"cell-{i}"
    return {'cells': cells, 'nbformat': 4, 'nbformat_minor': 5,
            'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
                         'language_info': {'name': 'python', 'pygments_lexer': 'ipython3'}}}

# --- the build ------------------------------------------------------------------------------------------------------

def _docs_eval(cell):
    """Which cells the docs processing executes: export/show_doc cells and cells of nothing but imports.
    nbdev's own rule also runs every cell that merely *contains* an import — test cells, `#| slow`
    benchmarks — which makes the docs build slow and fragile; those cells' saved outputs are used instead."""
    import ast
    from nbdev import processors as P
    if P.cell_lang(cell) != 'python' or not cell.source or 'nbdev_export'+'()' in cell.source: return
    if cell.cell_type != 'code' or not (trees := cell.parsed_()): return
    d = cell.directives_
    if d.get('eval:', [''])[0].lower() == 'false' or 'slow' in d: return
    if d.keys() & {'export', 'exports', 'exporti', 'exec_doc'}: return True
    if all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in trees): return True
    return P._show_docs(trees)

def process_notebooks(root=ROOT):
    "nbdev's own processing (show_doc, hide, front matter) of every notebook into `_proc/`"
    from nbdev.serve import proc_nbs
    from nbdev.config import get_config
    from nbdev import processors
    processors._do_eval = _docs_eval      # in this process only: so no worker processes below
    cwd = os.getcwd(); os.chdir(root)     # nbdev finds settings.ini from the working directory...
    get_config.cache_clear()              # ...and caches it: another root in this process must not reuse it
    try: return Path(proc_nbs(force=True, n_workers=0)).resolve()
    except Exception as e:
        cause = re.search(r'^(\w*(?:Error|Exception|Exit)\b.*)$', str(e.__cause__ or e.__context__ or ''), re.M)
        msg = f"nbdev processing failed{_which_nb(root, str(e))}: {str(e).strip()}"
        if cause: msg += f"\n-> {cause.group(1)}"
        if re.search(r'^\s*(import|from)\s+\S', str(e), re.M):
            msg += ("\nhint: the docs processing runs the cells of nothing but imports (and show_doc/export cells),"
                    " nothing else; keep imports in their own cell, apart from code that needs earlier cells")
        raise DocsError(msg) from e
    finally: os.chdir(cwd); get_config.cache_clear()

def _which_nb(root, msg):
    "nbdev's errors name a notebook by its title: find the file"
    m = re.search(r'in notebook: (.+?) in cell', msg)
    if not m: return ''
    nbs = Path(root)/read_settings(root).get('nbs_path', 'nbs')
    hits = []
    for f in sorted(nbs.rglob('*.ipynb')):
        try: cells = json.loads(f.read_text(encoding='utf-8'))['cells']
        except Exception: continue
        first = next((_src(c) for c in cells if c['cell_type'] == 'markdown'), '')
        if re.match(rf'#\s+{re.escape(m.group(1))}\s*$', first.strip().splitlines()[0] if first.strip() else ''):
            hits.append(str(f.relative_to(root)))
    return f" in {', '.join(hits)}" if hits else ''

def collect(proc:Path):
    "The processed notebooks under `proc` in site order: index first, then by (natural) name"
    nbs = [p for p in proc.rglob('*.ipynb') if '_src' not in p.relative_to(proc).parts[:1]
           and not any(x.startswith(('.', '_')) for x in p.relative_to(proc).parts)]
    return sorted(nbs, key=lambda p: (p.relative_to(proc) != Path('index.ipynb'), _natural(str(p.relative_to(proc)))))

def write_sources(proc:Path, src:Path, settings:dict):
    "Convert every processed notebook into `src` (a fresh folder), with the assets beside them; [(nb, page, title)]"
    if src.exists(): shutil.rmtree(src)
    src.mkdir(parents=True)
    entries, pages = [], {}
    for p in collect(proc):
        rel = p.relative_to(proc)
        try: nb = json.loads(p.read_text(encoding='utf-8'))
        except json.JSONDecodeError as e: raise DocsError(f"nbs/{rel}: not valid JSON: {e}") from None
        fm = front_matter(nb, f"nbs/{rel}")
        page = 'index' if rel == Path('index.ipynb') else page_name(rel, fm)
        if page in pages: raise DocsError(f"nbs/{rel} and nbs/{pages[page][0]} both make the page {page}.html")
        pages[page] = (rel, nb, fm)
    if 'index' not in pages: raise DocsError("nbs/index.ipynb: missing (it is the site's home page)")
    anchors = {k: heading_ids(convert_nb(nb, f"nbs/{rel}")['cells']) for k, (rel, nb, fm) in pages.items()}
    links = LinkMap(settings, {k: f"{k}.ipynb" for k in pages}, anchors,
                    {str(rel): k for k, (rel, _, _) in pages.items()})
    for page, (rel, nb, fm) in pages.items():
        out = convert_nb(nb, f"nbs/{rel}", links, default_title=settings.get('title') if page == 'index' else None)
        if page == 'index':
            others = [k for k in pages if k != 'index']
            if others:
                toc = "```{toctree}\n:hidden:\n:maxdepth: 2\n\n" + '\n'.join(others) + "\n```\n"
                out['cells'].append(dict(_md_cell(toc), id='toctree'))
        dest = src/f"{page}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding='utf-8')
        title = _src(out['cells'][0]).splitlines()[0][2:]
        entries.append((str(rel), page, title))
    for f in proc.rglob('*'):   # images and data the notebooks' markdown points at
        r = f.relative_to(proc)
        if f.is_dir() or r.parts[0].startswith('_') or r.parts[0] == 'jupyter_execute': continue   # our build folders
        if f.suffix in SOURCE_SUFFIXES or f.name in SKIP_ASSETS: continue
        if any(x.startswith('.') for x in r.parts): continue
        (src/r).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, src/r)
    pages_json = [dict(notebook=n, page=f"{p}.html", title=t) for n, p, t in entries]
    (src/'pages.json').write_text(json.dumps(pages_json, indent=1))
    return entries

def sphinx_build(src:Path, out:Path, jobs=1, quiet=True, names:dict|None=None):
    "sphinx-build -W (configuration: this repo's docs/conf.py) into `out`; raises DocsError with Sphinx's messages"
    doctrees = src.parent/'_doctrees'
    if out.exists(): shutil.rmtree(out)
    cmd = [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html', '-c', str(ROOT/'docs'),
           '-d', str(doctrees), '-E', '-j', str(jobs), str(src), str(out)] + (['-q'] if quiet else [])
    r = subprocess.run(cmd, cwd=src, capture_output=True, text=True)
    if r.returncode:
        msg = '\n'.join(l for l in (r.stderr.strip() or r.stdout.strip()).splitlines()
                        if 'MissingIDFieldWarning' not in l)
        for page, nb in (names or {}).items():   # point at the notebook, not at the converted copy
            msg = msg.replace(str(src/f"{page}.ipynb"), f"nbs/{nb} (as {page}.html)")
        raise DocsError(f"sphinx-build -W failed (exit {r.returncode}):\n{msg}")
    return r

def build(root=ROOT, out=None, proc=True, quiet=True):
    "Everything: `_proc/` -> `_proc/_src/` -> `_proc/_html/` -> `_docs/`; returns the page entries"
    root = Path(root); out = Path(out or root/read_settings(root).get('doc_path', '_docs'))
    settings = read_settings(root)
    t0 = time.time()
    procdir = process_notebooks(root) if proc else root/'_proc'
    if not procdir.is_dir(): raise DocsError(f"{procdir}: missing (run without --no-proc first)")
    t1 = time.time()
    entries = write_sources(procdir, procdir/'_src', settings)
    html = procdir/'_html'
    sphinx_build(procdir/'_src', html, quiet=quiet, names={p: n for n, p, _ in entries})
    shutil.copy2(procdir/'_src'/'pages.json', html/'pages.json')
    if out.exists(): shutil.rmtree(out)
    shutil.move(str(html), str(out))
    if not quiet:
        print(f"docs: {len(entries)} pages -> {out} (nbdev processing {t1-t0:.1f}s, sphinx {time.time()-t1:.1f}s)")
    return entries

def main(argv=None):
    ap = argparse.ArgumentParser(description="Build the offline documentation site from nbs/*.ipynb")
    ap.add_argument('--root', default=str(ROOT),
                    help="project folder with settings.ini and the notebooks (default: this repo)")
    ap.add_argument('--out', help="output folder (default: ROOT/ + settings.ini doc_path, i.e. _docs)")
    ap.add_argument('--no-proc', action='store_true', help="reuse _proc/ instead of re-running nbdev's processing")
    ap.add_argument('-q', '--quiet', action='store_true', help="print nothing on success")
    a = ap.parse_args(argv)
    try: build(Path(a.root).resolve(), out=a.out and Path(a.out).resolve(), proc=not a.no_proc, quiet=a.quiet)
    except DocsError as e:
        print(f"error: {e}", file=sys.stderr); return 1
    return 0

if __name__ == '__main__': sys.exit(main())
