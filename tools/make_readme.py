"Write README.md from nbs/index.ipynb (Quarto-free stand-in for `nbdev_readme`)."
import json, re
from pathlib import Path

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def main(nb='nbs/index.ipynb', out='README.md'):
    cells = json.loads(Path(nb).read_text())['cells']
    parts = []
    for c in cells:
        s = _src(c)
        if c['cell_type'] == 'markdown':
            s = re.sub(r'^> ', '', s, count=1) if s.startswith('> ') else s
            parts.append(s)
        elif c['cell_type'] == 'code':
            lines = s.splitlines()
            if any(l.startswith('#| hide') or l.startswith('#|hide') for l in lines): continue
            body = '\n'.join(l for l in lines if not l.startswith('#|'))
            if body.strip(): parts.append(f"```python\n{body}\n```")
    text = '\n\n'.join(parts).replace('](07_tutorial.ipynb)', '](nbs/07_tutorial.ipynb)')
    Path(out).write_text(text + '\n\n<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook -->\n')

if __name__ == '__main__': main()
