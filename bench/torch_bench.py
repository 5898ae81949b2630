"""torch_bench.py -- the PyTorch column of bench/: FVSBN and NADE written the
way a good PyTorch user would write them, timed on request of bench/bench.c.

Why: the generated kernels are compared with the project's hand-written C and
with what a user would get from a mainstream framework on the same machine,
same data, same thread count, measured side by side.  bench.c starts this
script once and talks to it over stdin/stdout, one command per line, so that
PyTorch runs alternate with the C runs (drift hits all alike) and the
interpreter starts once.  PyTorch is not a dependency of the project: when
`import torch` fails this prints "none REASON" and exits, and bench.c leaves
the column out.

The models (the same parameters as the C kernels, read from bench.c's theta):
  FVSBN  a strictly lower-triangular masked linear layer:
         logits = x @ (W * tril(1, -1)).T + b
  NADE   all n hidden pre-activations at once with a cumulative sum over
         positions: a[:, i] = c + sum_{j<i} W[:, j] x_j (exclusive cumsum of
         x[:, :, None] * W.T), h = sigmoid(a), logits = einsum(h, V) + b
  log p = sum_i x_i l_i - softplus(l_i), under torch.no_grad();
  gradient: backward() of sum log p (forward + backward);
  sample: ancestral, a Python loop over the n positions, batched over rows;
  training epoch: shuffled minibatches of 100, forward + backward + Adam
  (lr 1e-3, as `chain train`), from the same starting params.
NADE's cumsum materializes batch x n x H tensors (800 MB each for 256 rows
at H = 500 in float64); glibc hands such blocks back to the kernel when they
are freed, so every call page-faults them in again and most of the time goes
there (about 50 images/s at H = 500).  A good user splits the batch: NADE
works on chunks of rows whose intermediates hold at most CHUNK_ELEMS numbers,
gradients accumulate over the chunks (the usual gradient accumulation); on
this machine that is 2-3x faster than one piece at batch 256.
Matrix products go to the BLAS that libblas.so.3 points to (Debian's
alternatives): the reference BLAS of libblas3 is several times slower than
OpenBLAS (libopenblas0-openmp); the "ready" line says which one is loaded.

Commands (replies start with "ok" or "error"):
  data PATH ROWS N                     rows of float64 (raw) for logp/grad
  model fvsbn|nade N H f32|f64 THETA   theta as raw float64; replies log p of
                                       the first 4 data rows (bench.c checks them)
  time logp|grad|sample B T CALLS      seconds for CALLS calls on batches of B
  epoch PATH ROWS T                    seconds of one training epoch over ROWS
                                       rows (raw float64) with T threads
  quit
"""
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # any failure to import means: no PyTorch column
    print("none", str(e).replace("\n", " "), flush=True)
    sys.exit(0)


CHUNK_ELEMS = 1 << 20


def read_f64(path, count):
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    t = torch.frombuffer(buf, dtype=torch.float64)
    if t.numel() != count:
        raise ValueError("%s: %d values, expected %d" % (path, t.numel(), count))
    return t.clone()


class FVSBN(torch.nn.Module):
    """x_i ~ Bernoulli(sigmoid(b_i + sum_{j<i} W[i, j] x_j))."""

    def __init__(self, n, theta, dtype):
        super().__init__()
        self.n = n
        self.W = torch.nn.Parameter(theta[: n * n].view(n, n).to(dtype).clone())
        self.b = torch.nn.Parameter(theta[n * n:].to(dtype).clone())
        self.register_buffer("mask", torch.tril(torch.ones(n, n, dtype=dtype), -1))
        self.chunk = 1 << 30                                 # never split

    def logp(self, x):
        logits = F.linear(x, self.W * self.mask, self.b)
        return (x * logits - F.softplus(logits)).sum(1)

    def sample(self, B, gen):
        n = self.n
        WT = (self.W * self.mask).t().contiguous()  # row j = column j of W
        u = torch.rand(B, n, generator=gen, dtype=self.W.dtype)
        x = torch.empty(B, n, dtype=self.W.dtype)
        logits = self.b.expand(B, n).clone()
        for i in range(n):
            xi = (u[:, i] < torch.sigmoid(logits[:, i])).to(x.dtype)
            x[:, i] = xi
            logits.addr_(xi, WT[i])  # every later logit gets W[:, i] x_i
        return x


class NADE(torch.nn.Module):
    """h_i = sigmoid(c + sum_{j<i} W[:, j] x_j), x_i ~ Bernoulli(sigmoid(b_i + V[i] . h_i))."""

    def __init__(self, n, H, theta, dtype):
        super().__init__()
        self.n, self.H = n, H
        o = 0
        self.W = torch.nn.Parameter(theta[o:o + H * n].view(H, n).to(dtype).clone())
        o += H * n
        self.c = torch.nn.Parameter(theta[o:o + H].to(dtype).clone())
        o += H
        self.V = torch.nn.Parameter(theta[o:o + n * H].view(n, H).to(dtype).clone())
        o += n * H
        self.b = torch.nn.Parameter(theta[o:o + n].to(dtype).clone())
        self.chunk = max(1, CHUNK_ELEMS // (n * H))          # rows per piece

    def logp(self, x):
        xw = x.unsqueeze(2) * self.W.t().unsqueeze(0)       # B x n x H: W[:, j] x_j
        a = torch.cumsum(xw, dim=1) - xw + self.c           # exclusive: positions j < i
        h = torch.sigmoid(a)
        logits = torch.einsum("bih,ih->bi", h, self.V) + self.b
        return (x * logits - F.softplus(logits)).sum(1)

    def sample(self, B, gen):
        n = self.n
        WT = self.W.t().contiguous()                        # row j = column j of W
        u = torch.rand(B, n, generator=gen, dtype=self.W.dtype)
        x = torch.empty(B, n, dtype=self.W.dtype)
        a = self.c.expand(B, self.H).clone()
        for i in range(n):
            h = torch.sigmoid(a)
            p = torch.sigmoid(torch.mv(h, self.V[i]) + self.b[i])
            xi = (u[:, i] < p).to(x.dtype)
            x[:, i] = xi
            a.addr_(xi, WT[i])
        return x


def logp(m, x):
    """log p of each row of x, the batch split into pieces of m.chunk rows."""
    if x.shape[0] <= m.chunk:
        return m.logp(x)
    return torch.cat([m.logp(xc) for xc in x.split(m.chunk)])


def backward(m, x, scale):
    """Adds the gradient of scale * sum of log p over the rows of x into .grad."""
    for xc in x.split(m.chunk):
        (m.logp(xc).sum() * scale).backward()


def set_threads(T):
    """torch.set_num_threads, only when T changes: each call costs
    milliseconds and slows the next operations (it resets the OpenMP and
    BLAS thread pools)."""
    if torch.get_num_threads() != T:
        torch.set_num_threads(T)


def blas_name():
    """The BLAS library this process has loaded (after a matrix product)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "/" in line}
        libs = [p.split("/")[-2] + "/" + p.split("/")[-1] for p in sorted(libs)
                if "blas" in p.split("/")[-1].lower()]
        return ",".join(libs) or "built in"
    except OSError:
        return "unknown"


def make_model(spec):
    """A fresh model from the starting params of spec (see "model")."""
    if spec["kind"] == "fvsbn":
        return FVSBN(spec["n"], spec["theta"], spec["dtype"])
    return NADE(spec["n"], spec["H"], spec["theta"], spec["dtype"])


def main():
    torch.set_num_interop_threads(1)
    print("ready torch", torch.__version__, "BLAS", blas_name(), flush=True)
    data = None      # the test rows, float64
    spec = None      # the current model: kind, n, H, dtype, theta, x (data in dtype)
    model = None
    epoch_data = {}
    gen = torch.Generator().manual_seed(1)
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        try:
            if w[0] == "quit":
                break
            elif w[0] == "data":
                rows, n = int(w[2]), int(w[3])
                data = read_f64(w[1], rows * n).view(rows, n)
                print("ok", rows, flush=True)
            elif w[0] == "model":
                kind, n, H, prec, path = w[1], int(w[2]), int(w[3]), w[4], w[5]
                count = n * n + n if kind == "fvsbn" else 2 * n * H + H + n
                dtype = torch.float32 if prec == "f32" else torch.float64
                spec = {"kind": kind, "n": n, "H": H, "dtype": dtype,
                        "theta": read_f64(path, count), "x": data.to(dtype)}
                model = make_model(spec)
                with torch.no_grad():
                    lp = logp(model, spec["x"][:4])
                print("ok", " ".join("%.17g" % v for v in lp.tolist()), flush=True)
            elif w[0] == "time":
                kernel, B, T, calls = w[1], int(w[2]), int(w[3]), int(w[4])
                set_threads(T)
                x = spec["x"]
                rows = x.shape[0]
                t0 = time.perf_counter()
                for k in range(calls):
                    first = (k * B) % (rows - B + 1)
                    xb = x[first:first + B]
                    if kernel == "logp":
                        with torch.no_grad():
                            logp(model, xb)
                    elif kernel == "grad":
                        model.zero_grad(set_to_none=True)
                        backward(model, xb, 1.0)
                    else:
                        with torch.no_grad():
                            model.sample(B, gen)
                dt = time.perf_counter() - t0
                print("ok %.9f" % dt, flush=True)
            elif w[0] == "epoch":
                path, rows, T = w[1], int(w[2]), int(w[3])
                key = (path, spec["dtype"])
                if key not in epoch_data:
                    n = spec["n"]
                    epoch_data[key] = read_f64(path, rows * n).view(rows, n).to(spec["dtype"])
                X = epoch_data[key]
                set_threads(T)
                m = make_model(spec)    # from the same starting params, a fresh Adam
                opt = torch.optim.Adam(m.parameters(), lr=1e-3)
                for epoch in range(2):  # the second is timed, as bench.c does for C
                    t0 = time.perf_counter()
                    perm = torch.randperm(rows, generator=gen)
                    for s in range(0, rows, 100):
                        xb = X[perm[s:s + 100]]
                        opt.zero_grad(set_to_none=True)
                        backward(m, xb, -1.0 / xb.shape[0])      # loss = mean NLL
                        opt.step()
                    dt = time.perf_counter() - t0
                print("ok %.9f" % dt, flush=True)
            else:
                print("error unknown command", w[0], flush=True)
        except Exception as e:
            print("error", str(e).replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()
