#!/usr/bin/python3
"""array_oracle.py : numpy's side of tests/test_array.c.

    array_oracle.py gen DIR     numpy writes .npy files (every dtype, C and
                                Fortran order, both byte orders, 0-d, empty,
                                larger shapes, versions 1.0/2.0/3.0) and
                                .npz archives (savez, savez_compressed), and
                                for each array DIR/<name>.raw (its bytes in C
                                order, in its own byte order) and a line of
                                DIR/manifest.txt:
                                    name dtype endian(l|b) order(C|F) ndim dims...
    array_oracle.py check DIR   reads the arrays weft wrote: every line of
                                DIR/weft_manifest.txt (same format; .npz
                                entries as archive.npz:name) must load in
                                numpy with that dtype, byte order, order,
                                shape and the bytes of <name>.raw; a .npy
                                that numpy itself would write the same way
                                must be byte-identical to what np.save gives.
Exit status 0 when all is well, 1 with the mismatches printed."""
import io
import os
import sys
import warnings

import numpy as np

DTYPES = ['bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
          'float16', 'float32', 'float64', 'complex64', 'complex128']
SHAPES = [(), (0,), (3, 0, 2), (7,), (4, 5), (2, 3, 4), (1, 1, 6), (33, 65)]


def values(rng, dt, shape):
    n = int(np.prod(shape)) if shape else 1
    if dt == 'bool':
        v = rng.integers(0, 2, n).astype(bool)
    elif dt.startswith('int') or dt.startswith('uint'):
        info = np.iinfo(dt)
        v = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
    elif dt.startswith('float'):
        v = (rng.standard_normal(n) * 1000).astype(dt)
    else:
        v = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
    return v.reshape(shape)


def endian_of(a):
    bo = a.dtype.byteorder
    if bo == '=':
        return 'l' if sys.byteorder == 'little' else 'b'
    if bo == '|':
        return 'l' if sys.byteorder == 'little' else 'b'
    return 'l' if bo == '<' else 'b'


def line(name, a, order):
    return ' '.join([name, str(a.dtype.name), endian_of(a), order, str(a.ndim)] +
                    [str(d) for d in a.shape])


def gen(d):
    rng = np.random.default_rng(7)
    lines = []
    for dt in DTYPES:
        for shape in SHAPES:
            for bo in '<>':
                for order in 'CF':
                    a = values(rng, dt, shape).astype(np.dtype(dt).newbyteorder(bo))
                    a = np.asarray(a, order=order)
                    # what the file's header says: F only when not also C contiguous
                    fo = 'F' if (a.flags.f_contiguous and not a.flags.c_contiguous) else 'C'
                    name = f'np_{dt}_{"x".join(map(str, shape)) or "scalar"}_{bo == "<" and "le" or "be"}_{order}'
                    np.save(os.path.join(d, name + '.npy'), a)
                    with open(os.path.join(d, name + '.raw'), 'wb') as f:
                        f.write(a.tobytes(order='C'))
                    lines.append(line(name, a, fo))
    # larger, and the other format versions
    big = values(rng, 'float64', (300, 500))
    np.save(os.path.join(d, 'np_big.npy'), big)
    open(os.path.join(d, 'np_big.raw'), 'wb').write(big.tobytes())
    lines.append(line('np_big', big, 'C'))
    for v in ((2, 0), (3, 0)):
        a = values(rng, 'int32', (5, 6))
        name = f'np_v{v[0]}'
        with open(os.path.join(d, name + '.npy'), 'wb') as f, warnings.catch_warnings():
            warnings.simplefilter('ignore')
            np.lib.format.write_array(f, a, version=v)
        open(os.path.join(d, name + '.raw'), 'wb').write(a.tobytes())
        lines.append(line(name, a, 'C'))
    # archives: several named arrays
    arrs = {'a': values(rng, 'float64', (10, 3)), 'b': values(rng, 'int16', (4,)),
            'c': np.asfortranarray(values(rng, 'complex64', (3, 4))),
            'empty': values(rng, 'uint8', (0, 5))}
    np.savez(os.path.join(d, 'np_plain.npz'), **arrs)
    np.savez_compressed(os.path.join(d, 'np_deflated.npz'), **arrs)
    for k, a in arrs.items():
        open(os.path.join(d, f'npz_{k}.raw'), 'wb').write(a.tobytes(order='C'))
        fo = 'F' if (a.flags.f_contiguous and not a.flags.c_contiguous) else 'C'
        lines.append(line(f'npz_{k}', a, fo))
    with open(os.path.join(d, 'manifest.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def check(d):
    bad = 0
    archives = {}
    n = 0
    for ln in open(os.path.join(d, 'weft_manifest.txt')):
        parts = ln.split()
        if not parts:
            continue
        name, dt, en, order, nd = parts[:5]
        shape = tuple(int(x) for x in parts[5:5 + int(nd)])
        raw_name = name.replace(':', '__')
        if ':' in name:
            arch, key = name.split(':')
            if arch not in archives:
                archives[arch] = np.load(os.path.join(d, arch))
            a = archives[arch][key]
        else:
            a = np.load(os.path.join(d, name))
        raw = open(os.path.join(d, raw_name + '.raw'), 'rb').read()
        fo = 'F' if (a.flags.f_contiguous and not a.flags.c_contiguous) else 'C'
        why = []
        if a.dtype.name != dt:
            why.append(f'dtype {a.dtype.name} != {dt}')
        if endian_of(a) != en and a.dtype.itemsize > 1:
            why.append(f'byte order {endian_of(a)} != {en}')
        if a.shape != shape:
            why.append(f'shape {a.shape} != {shape}')
        if fo != order:
            why.append(f'order {fo} != {order}')
        if a.tobytes(order='C') != raw:
            why.append('values differ')
        if ':' not in name and name.endswith('.npy') and not name.startswith('v'):
            buf = io.BytesIO()
            np.save(buf, a)
            if buf.getvalue() != open(os.path.join(d, name), 'rb').read():
                why.append('file bytes differ from np.save of the same array')
        if why:
            bad += 1
            print(f'{name}: ' + '; '.join(why))
        n += 1
    print(f'array_oracle: {n} arrays checked, {bad} bad')
    return 1 if bad or n == 0 else 0


if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] not in ('gen', 'check'):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == 'gen':
        gen(sys.argv[2])
        sys.exit(0)
    sys.exit(check(sys.argv[2]))
