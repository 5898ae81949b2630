# fuzz.py SEED [CHAIN] -- mutates the example and test model files token by
# token and runs `chain check`, `chain build --emit ir` and `chain build` on
# each under the sanitizers: any exit status other than 0 or 1, sanitizer
# report, internal error or hang is reported and its input kept in $FUZZ_OUT.
# Not a test: run it by hand, e.g.
#     make BUILD=build-asan SANITIZE=1 OPT='-O1 -g' && N=300 python3 tests/fuzz/fuzz.py 1
import random, subprocess, sys, os, glob
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
chain = sys.argv[2] if len(sys.argv) > 2 else 'build-asan/chain'
out = os.environ.get('FUZZ_OUT', '/tmp')
seeds = [open(f).read() for f in glob.glob('examples/*.chain')]
seeds += [open(f, errors='replace').read() for f in glob.glob('tests/errors/*.chain') if os.path.getsize(f) < 3000]
toks = ['x','y','i','j','k','W','b','c','V','h','n','H','K','[',']','(',')',',',':','+','-','*','/','^','@','~','=','..','sum','before','in','let','order','reverse','by','random','data','param','input','const','dim','model','bin','real','int','cat','0','1','2','3','-1','1e300','0.5','sigmoid','dot','logsumexp','max','mean','l2','l1','loglik','maximize','minimize','if','then','else','<','>','==','\n','family','on','logp','sample','uniform()','normal','bernoulli_logit','categorical_logits','mixture_normal','poisson_log','binomial','normal_logscale','bernoulli','{','}','x[i]','x[j]','W[:, j]','V[i, :]','sum(j before i)','sum(k in 0..3)','exp','log','softplus']
def mutate(s):
    parts = s.split(' ')
    for _ in range(random.randint(1, 6)):
        op = random.random()
        i = random.randrange(len(parts)) if parts else 0
        if op < 0.3 and parts: parts[i] = random.choice(toks)
        elif op < 0.6: parts.insert(i, random.choice(toks))
        elif op < 0.8 and parts: del parts[i]
        else:
            j = random.randrange(len(parts)) if parts else 0
            if parts: parts[i] = parts[j]
    return ' '.join(parts)
crashes = 0
for it in range(int(os.environ.get('N', '300'))):
    src = mutate(random.choice(seeds))
    path = os.path.join(out, 'fuzz_in_%s.chain' % sys.argv[1])
    open(path, 'w').write(src)
    for cmd in ([chain, 'check', path], [chain, 'build', path, '--emit', 'ir', '-o', '/dev/null'], [chain, 'build', path, '-O1', '-o', os.path.join(out, 'fuzz_%s.o' % sys.argv[1])]):
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=60, env=dict(os.environ, ASAN_OPTIONS='detect_leaks=0'))
        except subprocess.TimeoutExpired:
            print('TIMEOUT', cmd); open(os.path.join(out, 'fuzz_hang_%d_%d.chain' % (int(sys.argv[1]), it)), 'w').write(src); crashes += 1; break
        if r.returncode not in (0, 1) or b'internal error' in r.stderr or b'AddressSanitizer' in r.stderr or b'runtime error' in r.stderr:
            crashes += 1
            fn = os.path.join(out, 'fuzz_crash_%d_%d.chain' % (int(sys.argv[1]), it))
            open(fn, 'w').write(src)
            print('CRASH rc=%d' % r.returncode, cmd[1], fn, r.stderr.decode(errors='replace')[-600:])
            break
        if r.returncode == 1: break
print('done', crashes)
