#!/usr/bin/env python3
"""Minimax polynomials (least relative error, Remez exchange) for the
elementary functions compiler/cg_math.c writes out inline:

    exp    exp(r) on [-0.3466, 0.3466] (|r| <= ln(2)/2 and a little)
    log1p  log1p(x) / x on [0, 1] (softplus' log1p(exp(-|l|)) = x q(x))

Prints the coefficients, lowest power first, rounded to the precision, and
the relative error of the rounded polynomial.  Not part of the build: run it
to check or change those constants.  Needs mpmath (Debian: python3-mpmath);
takes seconds to a minute.

    python3 tools/minimax.py exp 11 f64
    python3 tools/minimax.py log1p 10 f32
"""
import struct
import sys

import mpmath as mp

mp.mp.dps = 80


def target(name):
    if name == "exp":
        return mp.exp, -mp.mpf("0.3466"), mp.mpf("0.3466")
    if name == "log1p":
        return (lambda x: mp.log1p(x) / x if x != 0 else mp.mpf(1)), mp.mpf(0), mp.mpf(1)
    raise SystemExit("minimax.py: unknown function %s (exp or log1p)" % name)


def horner(c, x):
    p = mp.mpf(0)
    for ck in reversed(c):
        p = p * x + ck
    return p


def solve(f, points, deg):
    # p(x_i) - (-1)^i E f(x_i) = f(x_i): equioscillating relative error
    n = deg + 2
    M = mp.matrix(n, n)
    b = mp.matrix(n, 1)
    for i, x in enumerate(points):
        fx = f(x)
        for k in range(deg + 1):
            M[i, k] = x ** k
        M[i, deg + 1] = -((-1) ** i) * fx
        b[i] = fx
    s = mp.lu_solve(M, b)
    return [s[k] for k in range(deg + 1)], s[deg + 1]


def extrema(f, c, lo, hi):
    err = lambda x: horner(c, x) / f(x) - 1
    N = 3000
    xs = [lo + (hi - lo) * i / N for i in range(N + 1)]
    es = [err(x) for x in xs]
    pts = [xs[0]]
    for i in range(1, N):
        if (es[i] - es[i - 1]) * (es[i + 1] - es[i]) < 0:
            a, b = xs[i - 1], xs[i + 1]
            sgn = 1 if es[i] > 0 else -1
            for _ in range(50):
                m1, m2 = a + (b - a) * 0.382, a + (b - a) * 0.618
                if sgn * err(m1) > sgn * err(m2):
                    b = m2
                else:
                    a = m1
            pts.append((a + b) / 2)
    pts.append(xs[-1])
    return pts


def remez(f, lo, hi, deg):
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    pts = [mid - half * mp.cos(mp.pi * i / (deg + 1)) for i in range(deg + 2)]
    c, E = solve(f, pts, deg)
    for _ in range(30):
        new = extrema(f, c, lo, hi)
        if len(new) != deg + 2:
            break
        pts = new
        c, E = solve(f, pts, deg)
    return c, E


def round_to(x, prec):
    if prec == "f64":
        return float(x)
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    name, deg, prec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    f, lo, hi = target(name)
    c, E = remez(f, lo, hi, deg)
    cr = [round_to(ck, prec) for ck in c]
    worst = max(abs(horner([mp.mpf(v) for v in cr], x) / f(x) - 1)
                for x in [lo + (hi - lo) * i / 20000 for i in range(20001)])
    ulp = 2.0 ** -52 if prec == "f64" else 2.0 ** -23
    print("# %s, degree %d, %s: minimax relative error %.3g, rounded %.3g (%.3f ulp)" %
          (name, deg, prec, float(abs(E)), float(worst), float(worst) / ulp))
    for k, v in enumerate(cr):
        print("c%d = %s" % (k, float.hex(v)))


main()
