#!/usr/bin/env python3
"""Minimax polynomials for exp(r), |r| <= 0.3466 (ln(2)/2 and a little),
least relative error, by the Remez exchange.

Prints the coefficients compiler/cg_math.c (and bench/limits.c) use,
rounded to the precision, and the relative error of the rounded polynomial.
Not part of the build: run it to check or change those constants.  Needs
mpmath (Debian: python3-mpmath); takes about 10 s.

    python3 tools/minimax_exp.py 11 f64
    python3 tools/minimax_exp.py 6 f32
"""
import sys
import struct
import mpmath as mp

mp.mp.dps = 60
A = mp.mpf("0.3466")  # ln(2)/2 = 0.34657..., and a little margin


def solve(points, deg):
    # p(x_i) - (-1)^i E exp(x_i) = exp(x_i)
    n = deg + 2
    M = mp.matrix(n, n)
    b = mp.matrix(n, 1)
    for i, x in enumerate(points):
        for k in range(deg + 1):
            M[i, k] = x ** k
        M[i, deg + 1] = -((-1) ** i) * mp.exp(x)
        b[i] = mp.exp(x)
    s = mp.lu_solve(M, b)
    return [s[k] for k in range(deg + 1)], s[deg + 1]


def err(c, x):
    p = mp.mpf(0)
    for ck in reversed(c):
        p = p * x + ck
    return p / mp.exp(x) - 1


def extrema(c, deg):
    # sign changes of the error's slope on a fine grid, refined by golden search
    N = 4000
    xs = [-A + 2 * A * i / N for i in range(N + 1)]
    es = [err(c, x) for x in xs]
    pts = [xs[0]]
    for i in range(1, N):
        if (es[i] - es[i - 1]) * (es[i + 1] - es[i]) < 0:
            lo, hi = xs[i - 1], xs[i + 1]
            sgn = 1 if es[i] > 0 else -1
            for _ in range(60):
                m1 = lo + (hi - lo) * 0.382
                m2 = lo + (hi - lo) * 0.618
                if sgn * err(c, m1) > sgn * err(c, m2):
                    hi = m2
                else:
                    lo = m1
            pts.append((lo + hi) / 2)
    pts.append(xs[-1])
    return pts


def remez(deg):
    pts = [-A * mp.cos(mp.pi * i / (deg + 1)) for i in range(deg + 2)]
    for _ in range(30):
        c, E = solve(pts, deg)
        new = extrema(c, deg)
        if len(new) != deg + 2:
            break
        pts = new
    return c, E


def round_to(x, prec):
    if prec == "f64":
        return float(x)
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def main():
    deg, prec = int(sys.argv[1]), sys.argv[2]
    c, E = remez(deg)
    cr = [round_to(ck, prec) for ck in c]
    worst = max(abs(err([mp.mpf(v) for v in cr], -A + 2 * A * i / 20000)) for i in range(20001))
    ulp = 2.0 ** -52 if prec == "f64" else 2.0 ** -23
    print("# degree %d, %s: minimax relative error %.3g, rounded %.3g (%.3f ulp)" %
          (deg, prec, float(abs(E)), float(worst), float(worst) / ulp))
    for k, v in enumerate(cr):
        print("c%d = %s" % (k, float.hex(v)))


main()
