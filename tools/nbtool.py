"""Authoring tool for the notebooks (dev only, not part of the package).

    python tools/nbtool.py py2nb  src.py  nbs/NN_x.ipynb   # cells: '#%%' (code) / '#%% md' (markdown)
    python tools/nbtool.py nb2py  nbs/NN_x.ipynb  src.py
    python tools/nbtool.py run    nbs/NN_x.ipynb [--flags slow]  # execute in place, keep outputs
    python tools/nbtool.py ids    nbs/NN_x.ipynb             # give cells stable ids (needed for a stable export)

`py2nb` keeps the outputs of cells whose source is unchanged. `run` skips `#| eval: false`
cells and `#| slow` cells (unless `--flags slow`), stops at the first error, then `nbdev_clean`s.
"""
import json, sys, os, argparse, subprocess, hashlib
from pathlib import Path

def _split(text):
    cells, cur, kind = [], None, None
    for line in text.splitlines():
        s = line.strip()
        if s in ('#%%', '# %%', '#%% md', '# %% md', '#%% markdown', '# %% [markdown]'):
            if cur is not None: cells.append((kind, cur))
            kind, cur = ('markdown' if 'm' in s.replace('%%','') else 'code'), []
        else:
            if cur is None: kind, cur = 'code', []
            cur.append(line)
    if cur is not None: cells.append((kind, cur))
    out = []
    for kind, lines in cells:
        while lines and not lines[-1].strip(): lines.pop()
        while lines and not lines[0].strip(): lines.pop(0)
        if lines: out.append((kind, '\n'.join(lines)))
    return out

def _src(lines): return ''.join(lines) if isinstance(lines, list) else lines

def _id(s, i, seen):
    "A stable cell id: nbdev_export writes it into the module, so it must not change between runs"
    h = hashlib.sha1(s.encode()).hexdigest()[:8]
    while h in seen: h = hashlib.sha1((h + str(i)).encode()).hexdigest()[:8]
    seen.add(h); return h

def py2nb(src, dest):
    old, oid = {}, {}
    if Path(dest).exists():
        for c in json.loads(Path(dest).read_text())['cells']:
            if c['cell_type'] == 'code': old.setdefault(_src(c['source']), c.get('outputs', []))
            if 'id' in c: oid.setdefault(_src(c['source']), c['id'])
    cells, seen = [], set()
    for i, (kind, s) in enumerate(_split(Path(src).read_text())):
        lines = s.splitlines(keepends=True)
        cid = oid.get(s) if oid.get(s) not in seen else None
        if cid: seen.add(cid)
        c = dict(cell_type=kind, id=cid or _id(s, i, seen), metadata={}, source=lines)
        if kind == 'code': c.update(execution_count=None, outputs=old.get(s, []))
        cells.append(c)
    nb = dict(cells=cells, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
              nbformat=4, nbformat_minor=5)
    Path(dest).write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + '\n')

def fix_ids(path):
    "Give every cell of `path` a stable id (notebooks written without ids make nbdev_export unstable)"
    nb = json.loads(Path(path).read_text()); seen = set(c['id'] for c in nb['cells'] if 'id' in c)
    changed = False
    for i, c in enumerate(nb['cells']):
        if 'id' not in c: c['id'] = _id(_src(c['source']), i, seen); changed = True
    if nb.get('nbformat_minor', 0) < 5: nb['nbformat_minor'] = 5; changed = True
    if changed: Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + '\n')
    return changed

def nb2py(src, dest):
    out = []
    for c in json.loads(Path(src).read_text())['cells']:
        out.append('#%% md' if c['cell_type'] == 'markdown' else '#%%')
        out.append(_src(c['source'])); out.append('')
    Path(dest).write_text('\n'.join(out))

def run(path, flags=()):
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from nbdev.process import NBProcessor
    from fastcore.xtras import working_directory
    path = Path(path).resolve()
    nb = read_nb(path)
    proc = NBProcessor(path, procs=[], process=True).nb  # parses directives_
    skip = set(['slow']) - set(flags)
    def _pre(cell):
        if cell.cell_type != 'code': return True
        d = getattr(cell, 'directives_', {}) or {}
        if d.get('eval:', [''])[0].lower() == 'false': return True
        return bool(skip & d.keys())
    # run on the processed nb (has directives_), copy outputs back by index
    os.environ.setdefault('IN_TEST', '')
    k = CaptureShell(path)
    with working_directory(path.parent):
        k.run_all(proc, exc_stop=True, preproc=_pre)
    for c_raw, c in zip(nb.cells, proc.cells):
        if c_raw.cell_type == 'code':
            if _pre(c): continue
            c_raw['outputs'] = c.get('outputs', []); c_raw['execution_count'] = c.get('execution_count')
    write_nb(nb, path)
    subprocess.run([str(Path(sys.executable).parent/'nbdev_clean'), '--fname', str(path)], check=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('cmd', choices=['py2nb', 'nb2py', 'run', 'ids'])
    p.add_argument('src'); p.add_argument('dest', nargs='?')
    p.add_argument('--flags', nargs='*', default=[])
    a = p.parse_args()
    if a.cmd == 'py2nb': py2nb(a.src, a.dest)
    elif a.cmd == 'nb2py': nb2py(a.src, a.dest)
    elif a.cmd == 'ids': [print('ids added:', f) for f in [a.src] + ([a.dest] if a.dest else []) if fix_ids(f)]
    else: run(a.src, a.flags)
