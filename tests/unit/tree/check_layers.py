#!/usr/bin/python3
"""check_layers.py: the build enforces the layering of DESIGN.md §1 (util < sec < httpapi < pipeline;
the daemon and modules see only include/). TAP output.

Usage: check_layers.py BUILD_DIR SOURCE_DIR

1. Include views. For each layer, the daemon and a module, the compile command of one of its real
   sources (compile_commands.json) compiles a probe file that includes one header: the headers of
   the target's own and lower layers must be found, every other must be "No such file or
   directory". A probe that fails for any other reason is a failed case, never a pass.
2. Paths around the views: no source under src/ or modules/ includes a quoted path with "..".
3. Symbols: no layer's archive refers to a symbol that an upper layer's archive defines (nm), so
   a lower layer cannot reach up with an extern declaration either.
"""
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

LAYERS = ['util', 'sec', 'httpapi', 'pipeline']
# one internal and the public headers each layer owns (src/lib/meson.build, gh_layer_public)
INTERNAL = {
    'util': '"util/alloc.h"',
    'sec': '"sec/sec_internal.h"',
    'httpapi': '"httpapi/internal.h"',
    'pipeline': '"pipeline/pipeline_int.h"',
}
EXTRA_INTERNAL = {'sec': ['"sec/runas.h"'], 'httpapi': ['"httpapi/auth/auth.h"', '"httpapi/url.h"']}
PUBLIC = {
    'util': ['<gatehouse/common.h>', '<gatehouse/error.h>'],
    'sec': ['<gatehouse/token.h>', '<gatehouse/impersonate.h>'],
    'httpapi': ['<gatehouse/httpapi.h>', '<gatehouse/authinfo.h>', '<gatehouse/metrics.h>'],
    'pipeline': ['<gatehouse/module.h>'],
}
ALL_PUBLIC = [h for l in LAYERS for h in PUBLIC[l]]
ALL_INTERNAL = [h for l in LAYERS for h in [INTERNAL[l]] + EXTRA_INTERNAL.get(l, [])]
# the source tree's root or src/ on the path would make these resolve
ROOT_PATHS = ['"src/lib/util/alloc.h"', '"lib/util/alloc.h"', '"include/gatehouse/error.h"']


def layer_headers(upto):
    ok, bad = [], []
    for i, l in enumerate(LAYERS):
        hs = [INTERNAL[l]] + EXTRA_INTERNAL.get(l, []) + PUBLIC[l]
        (ok if i <= LAYERS.index(upto) else bad).extend(hs)
    return ok, bad + ROOT_PATHS


def contexts():
    """name -> (source file, object-path marker, headers found, headers not found)"""
    ctx = {}
    for l in LAYERS:
        ok, bad = layer_headers(l)
        ctx[l] = ('src/lib/%s/' % l, 'libgatehouse_%s.a.p/' % l, ok + ['"gh_config.h"'], bad)
    ctx['daemon'] = ('src/daemon/main.c', 'gatehoused.p/', ALL_PUBLIC + ['"gh_config.h"'],
                     ALL_INTERNAL + ROOT_PATHS)
    ctx['module whoami'] = ('modules/whoami/whoami.c', 'whoami.so.p/', ALL_PUBLIC,
                            ALL_INTERNAL + ROOT_PATHS + ['"gh_config.h"'])
    return ctx


def probe_command(entry, src, probe):
    """The entry's compiler command with probe compiled (syntax only) in place of its source."""
    argv = shlex.split(entry['command'])
    out = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ('-o', '-c', '-MQ', '-MF', '-MT'):
            skip = True
            continue
        if a in ('-MD', '-MMD'):
            continue
        out.append(a)
    # quoted includes search the including file's folder first: the real source's
    return out + ['-iquote', os.path.dirname(src), '-fsyntax-only', probe]


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def case(self, ok, name, detail=''):
        self.n += 1
        print('%s %d - %s' % ('ok' if ok else 'not ok', self.n, name))
        if not ok:
            self.failed += 1
            for line in detail.splitlines()[:12]:
                print('#   ' + line)


def check_includes(tap, build, source):
    with open(os.path.join(build, 'compile_commands.json')) as f:
        db = json.load(f)
    with tempfile.TemporaryDirectory(prefix='gh-layers-') as tmp:
        for name, (where, marker, ok, bad) in contexts().items():
            entry = None
            for e in db:
                path = os.path.normpath(os.path.join(e['directory'], e['file']))
                rel = os.path.relpath(path, source)
                if rel.startswith(where) and marker in e.get('output', e['command']):
                    entry = e
                    break
            if entry is None:
                tap.case(False, '%s: a compile command for %s (%s)' % (name, where, marker))
                continue
            src = os.path.normpath(os.path.join(entry['directory'], entry['file']))
            for i, h in enumerate(ok + bad):
                probe = os.path.join(tmp, 'probe_%d.c' % i)
                with open(probe, 'w') as f:
                    f.write('#include %s\nint gh_probe(void);\nint gh_probe(void) { return 0; }\n'
                            % h)
                p = subprocess.run(probe_command(entry, src, probe), cwd=entry['directory'],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                if h in ok:
                    tap.case(p.returncode == 0, '%s sees %s' % (name, h), p.stdout)
                else:
                    missing = h.strip('"<>')
                    refused = (p.returncode != 0 and missing in p.stdout
                               and 'No such file or directory' in p.stdout)
                    tap.case(refused, '%s cannot include %s' % (name, h),
                             p.stdout or 'it compiled')


def check_dotdot(tap, source):
    bad = []
    pat = re.compile(r'^\s*#\s*include\s*"[^"]*\.\./')
    for top in ('src', 'modules'):
        for dirpath, _, files in os.walk(os.path.join(source, top)):
            for fn in files:
                if not fn.endswith(('.c', '.h')):
                    continue
                path = os.path.join(dirpath, fn)
                with open(path, errors='replace') as f:
                    for no, line in enumerate(f, 1):
                        if pat.match(line):
                            bad.append('%s:%d: %s' % (os.path.relpath(path, source), no,
                                                      line.strip()))
    tap.case(not bad, 'no quoted include climbs out with ".." (src/, modules/)', '\n'.join(bad))


def symbols(archive, defined):
    args = ['nm', '--defined-only' if defined else '--undefined-only', archive]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return None
    names = set()
    for line in p.stdout.splitlines():
        f = line.split()
        if defined and len(f) == 3 and f[1] in 'TDBRGSVW':
            names.add(f[2])
        elif not defined and len(f) == 2 and f[0] == 'U':
            names.add(f[1])
    return names


def check_symbols(tap, build):
    arch = {l: os.path.join(build, 'src', 'lib', 'libgatehouse_%s.a' % l) for l in LAYERS}
    defs = {l: symbols(a, True) for l, a in arch.items()}
    for i, l in enumerate(LAYERS):
        undef = symbols(arch[l], False)
        if undef is None or any(defs[u] is None for u in LAYERS):
            tap.case(False, '%s: nm reads the layer archives (%s)' % (l, arch[l]))
            continue
        if not defs[l]:
            tap.case(False, '%s: its archive defines symbols' % l)
            continue
        up = sorted((s, u) for u in LAYERS[i + 1:] for s in undef & defs[u])
        tap.case(not up, '%s refers to no symbol of an upper layer' % l,
                 '\n'.join('%s (defined in %s)' % su for su in up))


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    build, source = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    tap = Tap()
    check_includes(tap, build, source)
    check_dotdot(tap, source)
    check_symbols(tap, build)
    print('1..%d' % tap.n)
    return 1 if tap.failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
