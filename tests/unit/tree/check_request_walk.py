#!/usr/bin/python3
"""check_request_walk.py: every `file:function` hop of docs/internals/request-walk.md exists. TAP.

Usage: check_request_walk.py SOURCE_DIR [DOC]

- Each `path.c:name` (or .h) names a file of the tree that defines name: a function (its
  declarator followed by a body) or a table (`name = {`).
- Each function-pointer hop written "`A:target` (installed by `B:installer`" or "(listed in
  `B:table`", and each "`A:table`, the ... `B:installer` installs", is checked too: the
  installer's (or table's) definition names the target.
- The page has at least MIN_HOPS distinct hops, so that emptying it is no way to pass.
"""
import os
import re
import sys

MIN_HOPS = 40
REF = r'`(?P<{0}f>[\w./-]+\.[ch]):(?P<{0}n>\w+)`'
HOP = re.compile(REF.format('a'))
INSTALLED = re.compile(REF.format('t') + r'[^`]{0,24}?(?:installed by|listed in) ' + REF.format('i'))
INSTALLS = re.compile(REF.format('t') + r', the [\w ]{0,24}' + REF.format('i') + r' installs')


def definition(lines, name):
    """(first, last) line index of name's definition, or None."""
    start = re.compile(r'^(?![\s#/*]).*\b%s\s*\(' % re.escape(name))
    table = re.compile(r'^(?![\s#/*]).*\b%s\s*(\[[^\]]*\])?\s*=\s*\{' % re.escape(name))
    for i, line in enumerate(lines):
        if table.match(line):
            kind = '};'
        elif start.match(line):
            # a declarator: a body ({) must come before any ';' (else a prototype)
            j = i
            while j < len(lines) and '{' not in lines[j] and ';' not in lines[j]:
                j += 1
            if j == len(lines) or ';' in lines[j].split('{')[0]:
                continue
            kind = '}'
        else:
            continue
        for k in range(i + 1, len(lines)):
            if lines[k].startswith(kind):
                return i, k
        return None
    return None


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    source = os.path.abspath(argv[1])
    doc = argv[2] if len(argv) == 3 else os.path.join(source, 'docs/internals/request-walk.md')
    with open(doc) as f:
        text = ' '.join(f.read().split())  # hops wrap across lines
    n = 0
    failed = 0
    cache = {}

    def case(ok, name, detail=''):
        nonlocal n, failed
        n += 1
        print('%s %d - %s' % ('ok' if ok else 'not ok', n, name))
        if not ok:
            failed += 1
            print('#   ' + detail)

    def lookup(path, name):
        full = os.path.join(source, path)
        if full not in cache:
            try:
                with open(full, errors='replace') as f:
                    cache[full] = f.read().splitlines()
            except OSError:
                cache[full] = None
        lines = cache[full]
        if lines is None:
            return None, 'no file %s' % path
        span = definition(lines, name)
        if span is None:
            return None, '%s defines no %s' % (path, name)
        return lines[span[0]:span[1] + 1], ''

    hops = sorted({(m.group('af'), m.group('an')) for m in HOP.finditer(text)})
    case(len(hops) >= MIN_HOPS, 'the walk names at least %d hops' % MIN_HOPS,
         'only %d' % len(hops))
    for path, name in hops:
        body, why = lookup(path, name)
        case(body is not None, '%s:%s is defined there' % (path, name), why)
    pairs = {(m.group('tf'), m.group('tn'), m.group('if'), m.group('in'))
             for rx in (INSTALLED, INSTALLS) for m in rx.finditer(text)}
    for tf, tn, ipath, iname in sorted(pairs, key=lambda p: (p[2], p[3], p[1])):
        body, why = lookup(ipath, iname)
        named = body is not None and re.search(r'\b%s\b' % re.escape(tn), '\n'.join(body))
        case(bool(named), '%s:%s installs %s' % (ipath, iname, tn),
             why or '%s does not name %s' % (iname, tn))
    case(len(pairs) >= 10, 'the walk checks at least 10 function-pointer installations',
         'only %d' % len(pairs))
    print('1..%d' % n)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
