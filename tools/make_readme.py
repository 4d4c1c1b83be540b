"""Write README.md from nbs/index.ipynb (Quarto-free stand-in for `nbdev_readme`).

Markdown cells are copied; code cells are shown as code unless `#| hide`; a cell marked `#| echo: false` shows
only its figures, saved as PNG files under docs/_static/ (README.md cannot hold images inline). Links to
notebooks (`10_tutorial.ipynb`) are pointed into `nbs/`.
"""
import base64, json, re
from pathlib import Path

FIGURES = 'docs/_static'

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def _directives(lines): return {re.sub(r'\s+', '', l[2:]) for l in lines if l.startswith('#|')}   # {'echo:false'}

def main(nb='nbs/index.ipynb', out='README.md', figures=FIGURES):
    cells = json.loads(Path(nb).read_text())['cells']
    parts, n_fig = [], 0
    for c in cells:
        s = _src(c)
        if c['cell_type'] == 'markdown':
            parts.append(re.sub(r'^> ', '', s, count=1) if s.startswith('> ') else s)
        elif c['cell_type'] == 'code':
            lines = s.splitlines()
            d = _directives(lines)
            if 'hide' in d: continue
            if 'echo:false' in d:
                for o in c.get('outputs', []):
                    if 'image/png' not in o.get('data', {}): continue
                    n_fig += 1
                    f = Path(figures)/f'{Path(nb).stem}_figure{n_fig}.png'
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(base64.b64decode(o['data']['image/png']))
                    parts.append(f"![figure {n_fig}]({f.as_posix()})")
                continue
            body = '\n'.join(l for l in lines if not l.startswith('#|'))
            if body.strip(): parts.append(f"```python\n{body}\n```")
    text = re.sub(r'\]\((\d+[a-z]?_[\w-]+\.ipynb)', r'](nbs/\1', '\n\n'.join(parts))
    note = f'<!-- generated from {nb} by tools/make_readme.py: edit the notebook -->'
    Path(out).write_text(f'{text}\n\n{note}\n')

if __name__ == '__main__': main()
