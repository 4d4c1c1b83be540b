"Heading anchors as Quarto (pandoc) makes them, so nbdev's doc links (`page.html#toywaypointenv.step`) land"
import re, unicodedata

def slug(text:str)->str:
    "pandoc's auto_identifiers: keep letters, digits, `_`, `-`, `.`; spaces -> `-`; lowercase; drop up to the first letter"
    t = unicodedata.normalize('NFKC', text).strip().lower()
    t = re.sub(r'\s+', '-', t)
    t = ''.join(ch for ch in t if ch.isalnum() or ch in '_-.')
    t = re.sub(r'^[^a-z]+', '', t)
    return t or 'section'
