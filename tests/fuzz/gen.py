# gen.py SEED [CHAIN] -- generates random well-formed model files (random
# shapes, expressions, orders, families, objectives) and runs `chain check`
# and `chain gradcheck` on each under the sanitizers.  Reports any crash,
# sanitizer error, internal error, hang, or gradient check failure, and
# keeps the input in $FUZZ_OUT.  Not a test: run it by hand, e.g.
#     make BUILD=build-asan SANITIZE=1 OPT='-O1 -g' && N=200 python3 tests/fuzz/gen.py 1
import random, subprocess, sys, os
seed = int(sys.argv[1]); random.seed(seed)
chain = sys.argv[2] if len(sys.argv) > 2 else 'build-asan/chain'
out = os.environ.get('FUZZ_OUT', '/tmp')
def expr(d, names):
    if d <= 0 or random.random() < 0.3:
        return random.choice(names + ['1', '0.5', '2', 'n', '-3'])
    r = random.random()
    a = expr(d-1, names); b = expr(d-1, names)
    if r < 0.25: return '(%s %s %s)' % (a, random.choice(['+','-','*','/','^','@','<','>=']), b)
    if r < 0.5: return '%s(%s)' % (random.choice(['exp','log','sigmoid','softplus','tanh','relu','abs','square','log_sigmoid','log1p','sqrt','sum','mean','logsumexp','max','l2','l1']), a)
    if r < 0.6: return 'dot(%s, %s)' % (a, b)
    if r < 0.75: return 'sum(j before i) %s' % random.choice(['W[:, j] * x[j]', 'W[i, j] * x[j]', 'x[j]', 'b[j] * x[j]', 'U[j] * x[j]', a])
    if r < 0.85: return 'sum(k in 0..2) %s' % random.choice(['b[k]', 'W[k, :]', 'b[k] * ' + a, a])
    if r < 0.92: return 'if %s then %s else %s' % (a, b, expr(d-1, names))
    return random.choice(['W[i]', 'W[:, i]', 'V[i, :]', 'b[i]', 'x[i]', 'W[i, 2]', 'U', 'h[i]', 'z'])
def model():
    fam = random.choice(['bernoulli_logit(%s)', 'bernoulli(sigmoid(%s))', 'normal(%s, 1)', 'normal_logscale(%s, 0.1)', 'categorical_logits(%s)', 'poisson_log(%s)'])
    kind = {'bernoulli_logit':'bin','bernoulli(':'bin','normal(':'real','normal_logscale':'real','categorical':'cat(3)','poisson':'int'}
    k = next(v for key, v in kind.items() if fam.startswith(key))
    order = random.choice(['order x', 'order reverse(x)', 'order x by random(3)', 'const P : int[n] = [3, 1, 0, 2]\norder x by P', ''])
    names = ['b[i]', 'c', 'U', 'W[i, :]', 'V[i]', 'z', 'h[i]', 'x[0]', 'sum(c)', 'c[1]']
    lines = ['model fz', 'dim n = %d' % random.choice([4, 4, 1, 3]), 'dim H = 3', 'data x : %s[n]' % k,
             'param W : real[n, n] ~ normal(0, 0.1)', 'param V : real[n, H]', 'param c : real[H]', 'param b : real[n] ~ uniform(-1, 1)', 'param U : real[n]',
             order, 'let z = %s' % expr(2, ['sum(c)', 'c[0]', '1', 'dot(U, b)']), 'let h[i] = %s' % expr(2, ['c', 'sigmoid(c)', 'V[i, :]']),
             'x[i] ~ ' + (fam % expr(3, names)), random.choice(['maximize loglik', 'maximize loglik - 0.1 * l2(W)', 'minimize l2(c)'])]
    return '\n'.join(lines) + '\n'
bad = 0
okc = 0
for it in range(int(os.environ.get('N', '200'))):
    src = model()
    p = os.path.join(out, 'gen_%d.chain' % seed)
    open(p, 'w').write(src)
    for cmd in ([chain, 'check', p], [chain, 'gradcheck', p, '--tol', '1e-3']):
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=120, env=dict(os.environ, ASAN_OPTIONS='detect_leaks=0'))
        except subprocess.TimeoutExpired:
            print('TIMEOUT', src); bad += 1; break
        err = r.stderr.decode(errors='replace') + r.stdout.decode(errors='replace')
        if r.returncode not in (0, 1) or 'internal error' in err or 'AddressSanitizer' in err or 'runtime error' in err or ('FAILED' in err and 'gradcheck' in cmd[1]):
            bad += 1
            fn = os.path.join(out, 'gen_bad_%d_%d.chain' % (seed, it)); open(fn, 'w').write(src)
            print('BAD rc=%d %s %s\n%s' % (r.returncode, cmd[1], fn, err[-800:])); break
        if r.returncode == 1: break
        if cmd[1] == 'check': okc += 1
print('done', bad, 'checked ok', okc)
