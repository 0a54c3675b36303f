"""Plain PyTorch (and Pyro) implementations of the models and estimators that benchmarks/peers.py
times against our fused step. Each class computes the SAME estimator as the `ppl` program it is
compared with (see benchmarks/README.md for the correspondence and where it is not exact) and
applies the same update (torch.optim.Adam, betas (0.9, 0.999), eps 1e-8). Parameters are copied
from a compiled `ppl` program (`prog.params`), so both sides start from the same point; weights
use our layout (W is (inputs, outputs), y = x @ W + b).

Only imported when torch is installed.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

softplus = F.softplus


def _tensor(a, dtype):
    return torch.tensor(np.asarray(a), dtype=dtype).clone().requires_grad_(True)


def _adam(params, lr):
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)


# --------------------------------------------------------------------------------------------
# SBN 64-32: q(h|x) = Bernoulli(sigmoid(x @ enc.W + enc.b)); costs per row
#   entropy = log q(h|x) = sum h a - softplus(a)
#   prior   = -log p(h)  = sum softplus(prior) - h prior
#   recon   = -log p(x|h) = sum softplus(d) - x d,  d = h @ dec.W + dec.b
# objective: mean over rows of E[entropy + prior + recon] (= -ELBO), minimised.
# --------------------------------------------------------------------------------------------
SBN_ESTIMATORS = ("score", "straight_through", "concrete", "rebar", "vimco", "disarm")


class TorchSBN:
    """One training step = sample + costs + backward + Adam, for one estimator:

    score             surrogate mean(L + (L.detach() - b) * log q(h|x)), b the moving average
                      of the batch-mean L over earlier steps (decay 0.9; b = 0 at the first step,
                      which seeds the average with the first batch mean) -- as ppl's
                      score + moving_average baseline.
    straight_through  h = hard + sigmoid(a) - sigmoid(a).detach() (backward dF_logistic/da).
    concrete          h = sigmoid((a + logistic noise) / 0.5), exact backward.
    rebar             Tucker et al. 2017: z = a + logit(u), b = H(z), z~ ~ p(z | b) from v,
                      surrogate f(b) + (f(b) - eta f(s(z~))).detach_theta * log q(b) + eta f(s(z))
                      - eta f(s(z~)), s(.) = sigmoid(. / lam); eta and log lam trained by Adam on
                      d/d(eta, log lam) of sum_r (1/B) |B dS/da_r|^2 (double backward).
    disarm            Dong et al. 2020: b = 1[u < sigmoid(a)], b~ = 1[u > sigmoid(-a)] on one u,
                      surrogate mean((f(b) + f(b~)) / 2 + sum_j c_j a_j), c = (f(b~) - f(b)) / 2
                      (-1)^b 1[b != b~] sigmoid(|a|) per unit (detached) -- as ppl's disarm and
                      jax_peers.py's.
    vimco             Mnih & Rezende 2016, on the importance-weighted bound of `samples` = K draws
                      per row (ppl: estimators="vimco", objective="iwae", samples=K): ell =
                      -log mean_k exp(-C_k), surrogate mean(ell + sum_k (ell - ell_-k).detach()
                      * log q(h_k | x)), ell_-k the bound with C_k replaced by the others' mean.
    """

    def __init__(self, params, estimator, lr=1e-3, temperature=0.5, decay=0.9, seed=0, dtype=torch.float32,
                 samples=5):
        if estimator not in SBN_ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}")
        self.est, self.dtype, self.tau, self.decay = estimator, dtype, float(temperature), float(decay)
        self.K = int(samples)
        self.P = {k: _tensor(params[k], dtype) for k in ("enc.W", "enc.b", "dec.W", "dec.b", "prior")}
        plist = list(self.P.values())
        if estimator == "rebar":
            self.eta = _tensor(np.asarray(params.get("rebar.h.eta", [1.0])).reshape(1), dtype)
            self.loglam = _tensor(np.asarray(params.get("rebar.h.log_temperature",
                                                        [math.log(temperature)])).reshape(1), dtype)
            plist += [self.eta, self.loglam]
        self.opt = _adam(plist, lr)
        self.ma, self.ma_seeded = 0.0, False
        self.gen = torch.Generator().manual_seed(seed)

    @staticmethod
    def costs(P, x, h, a):
        """Per-row entropy + prior + recon (h may be relaxed; a the encoder logits)."""
        ent = (h * a - softplus(a)).sum(1)
        pr = P["prior"]
        prior = (softplus(pr) - h * pr).sum(1)
        d = h @ P["dec.W"] + P["dec.b"]
        rec = (softplus(d) - x * d).sum(1)
        return ent + prior + rec, ent

    def _uniform(self, shape):
        return torch.rand(shape, generator=self.gen, dtype=self.dtype).clamp_(1e-7, 1 - 1e-7)

    def grads(self, x):
        """Fill .grad of every parameter with one estimate on the batch x; returns the loss."""
        P = self.P
        a = x @ P["enc.W"] + P["enc.b"]
        B = x.shape[0]
        if self.est == "score":
            u = self._uniform(a.shape)
            h = (u < torch.sigmoid(a.detach())).to(self.dtype)
            L, ent = self.costs(P, x, h, a)
            Ld = L.detach()
            b = self.ma
            m = float(Ld.mean())
            self.ma = m if not self.ma_seeded else self.decay * self.ma + (1 - self.decay) * m
            self.ma_seeded = True
            (L + (Ld - b) * ent).mean().backward()
            return m
        if self.est == "vimco":
            K = self.K
            ar, xr = a.repeat_interleave(K, 0), x.repeat_interleave(K, 0)
            u = self._uniform(ar.shape)
            h = (u < torch.sigmoid(ar.detach())).to(self.dtype)
            L, ent = self.costs(P, xr, h, ar)
            C = L.view(B, K)
            ell = -(torch.logsumexp(-C, 1) - math.log(K))
            with torch.no_grad():
                cbar = (C.sum(1, keepdim=True) - C) / (K - 1)
                eye = torch.eye(K, dtype=torch.bool)[None]
                Ck = torch.where(eye, cbar[:, :, None], C[:, None, :])
                sig = (ell[:, None] + (torch.logsumexp(-Ck, 2) - math.log(K))).reshape(-1)
            (ell.mean() + (sig * ent).sum() / B).backward()
            return float(ell.detach().mean())
        if self.est == "disarm":
            u = self._uniform(a.shape)
            ad = a.detach()
            b0 = (u < torch.sigmoid(ad)).to(self.dtype)
            b1 = (u > torch.sigmoid(-ad)).to(self.dtype)
            f0, _ = self.costs(P, x, b0, a)
            f1, _ = self.costs(P, x, b1, a)
            with torch.no_grad():
                c = (0.5 * (f1 - f0))[:, None] * torch.sigmoid(ad.abs()) * torch.where(b0 > 0.5, -1.0, 1.0)
                c = torch.where(b0 != b1, c, torch.zeros_like(c))
            f = 0.5 * (f0 + f1)
            (f.mean() + (c * a).sum(1).mean()).backward()
            return float(f.detach().mean())
        if self.est == "straight_through":
            u = self._uniform(a.shape)
            s = torch.sigmoid(a)
            h = (u < s.detach()).to(self.dtype) + (s - s.detach())
            L, _ = self.costs(P, x, h, a)
            loss = L.mean()
            loss.backward()
            return float(loss.detach())
        if self.est == "concrete":
            u = self._uniform(a.shape)
            h = torch.sigmoid((a + torch.log(u) - torch.log1p(-u)) / self.tau)
            L, _ = self.costs(P, x, h, a)
            loss = L.mean()
            loss.backward()
            return float(loss.detach())
        return self._rebar(x, a, B)

    def _rebar(self, x, a, B):
        P = self.P
        u = self._uniform(a.shape)
        v = self._uniform(a.shape)
        lam = torch.exp(self.loglam)
        z = a + torch.log(u) - torch.log1p(-u)
        b = (z.detach() > 0).to(self.dtype)
        lv, l1v = torch.log(v), torch.log1p(-v)
        zt = torch.where(b > 0, softplus(a + lv) - l1v, lv - softplus(l1v - a))   # z~ ~ p(z | b)
        fb, logq = self.costs(P, x, b, a)
        fz, _ = self.costs(P, x, torch.sigmoid(z / lam), a)
        fzt, _ = self.costs(P, x, torch.sigmoid(zt / lam), a)
        # control variate in the learning signal: no gradient to the model's parameters, but
        # its dependence on lam (and eta) kept for the variance objective
        Pd = {k: t.detach() for k, t in P.items()}
        fzt_sig, _ = self.costs(Pd, x, torch.sigmoid(zt.detach() / lam), a.detach())
        surrogate = (fb + (fb.detach() - self.eta * fzt_sig) * logq + self.eta * fz - self.eta * fzt).mean()
        names = ("dec.W", "dec.b", "prior")
        gs = torch.autograd.grad(surrogate, [a] + [P[k] for k in names], create_graph=True)
        ga = gs[0]
        var = B * (ga * ga).sum()
        geta, glam = torch.autograd.grad(var, [self.eta, self.loglam])
        gad = ga.detach()
        P["enc.W"].grad = x.t() @ gad
        P["enc.b"].grad = gad.sum(0)
        for k, g in zip(names, gs[1:]):
            P[k].grad = g.detach()
        self.eta.grad, self.loglam.grad = geta, glam
        return float(fb.detach().mean())

    def step(self, x):
        self.opt.zero_grad(set_to_none=True)
        loss = self.grads(x)
        self.opt.step()
        return loss

    def numpy_params(self):
        return {k: t.detach().double().numpy().copy() for k, t in self.P.items()}


# --------------------------------------------------------------------------------------------
# Gaussian VAE 64-32-8 (models/gaussian_vae.py): pathwise, closed-form KL
# --------------------------------------------------------------------------------------------
VAE_PARAMS = ("enc.W", "enc.b", "loc.W", "loc.b", "scale.W", "scale.b", "dec.W", "dec.b", "out.W", "out.b")


class TorchGaussianVAE:
    def __init__(self, params, lr=1e-3, seed=0, dtype=torch.float32):
        self.dtype = dtype
        self.P = {k: _tensor(params[k], dtype) for k in VAE_PARAMS}
        self.opt = _adam(list(self.P.values()), lr)
        self.gen = torch.Generator().manual_seed(seed)

    def grads(self, x):
        P = self.P
        e = torch.tanh(x @ P["enc.W"] + P["enc.b"])
        loc = e @ P["loc.W"] + P["loc.b"]
        scale = softplus(e @ P["scale.W"] + P["scale.b"])
        eps = torch.randn(loc.shape, generator=self.gen, dtype=self.dtype)
        z = loc + scale * eps
        d = torch.tanh(z @ P["dec.W"] + P["dec.b"])
        o = d @ P["out.W"] + P["out.b"]
        recon = (softplus(o) - x * o).sum(1)
        kl = (0.5 * (scale * scale + loc * loc - 1.0) - torch.log(scale)).sum(1)
        loss = (recon + kl).mean()
        loss.backward()
        return float(loss.detach())

    def step(self, x):
        self.opt.zero_grad(set_to_none=True)
        loss = self.grads(x)
        self.opt.step()
        return loss


# --------------------------------------------------------------------------------------------
# Toy (models/toy_bernoulli.py): b ~ Bernoulli(sigmoid(theta)), f(b) = (b - t)^2, one sample
# per gradient estimate (no optimiser step: the per-call cost of one estimate).
# --------------------------------------------------------------------------------------------
class TorchToy:
    """score: plain REINFORCE f(b) d log p(b)/dtheta (ppl's "score" at samples=1 uses a
    moving-average baseline: b = running mean of f, the same arithmetic, kept here too).
    disarm: Dong et al. 2020, one antithetic pair. relax: Grathwohl et al. 2018 with the
    control variate c(z) = w2 . tanh(W1 z + b1) + c0 (H = 16, as ppl's relax), its parameters
    receiving d E|g|^2 / dphi by double backward."""

    def __init__(self, estimator, t=0.501, theta0=0.0, hidden=16, seed=0, dtype=torch.float32):
        self.est, self.t, self.dtype = estimator, float(t), dtype
        self.theta = torch.tensor([theta0], dtype=dtype, requires_grad=True)
        self.gen = torch.Generator().manual_seed(seed)
        self.ma, self.ma_seeded = 0.0, False
        if estimator == "relax":
            g = torch.Generator().manual_seed(seed + 1)
            self.W1 = (0.1 * torch.randn((hidden, 1), generator=g, dtype=dtype)).requires_grad_(True)
            self.b1 = (0.1 * torch.randn((hidden,), generator=g, dtype=dtype)).requires_grad_(True)
            self.w2 = (0.1 * torch.randn((hidden,), generator=g, dtype=dtype)).requires_grad_(True)
            self.c0 = torch.zeros((1,), dtype=dtype, requires_grad=True)

    def f(self, b):
        return (b - self.t) ** 2

    def _cv(self, z):
        return (self.w2 * torch.tanh(self.W1[:, 0] * z + self.b1)).sum() + self.c0[0]

    def estimate(self):
        """One single-sample gradient estimate; returns d/dtheta (and sets the cv grads)."""
        th = self.theta
        if self.est == "score":
            u = torch.rand((1,), generator=self.gen, dtype=self.dtype)
            p = torch.sigmoid(th)
            b = (u < p.detach()).to(self.dtype)
            fb = self.f(b)
            base = self.ma
            m = float(fb)
            self.ma = m if not self.ma_seeded else 0.9 * self.ma + 0.1 * m
            self.ma_seeded = True
            logp = b * th - softplus(th)
            (g,) = torch.autograd.grad(((fb - base) * logp).sum(), [th])
            return g
        if self.est == "disarm":
            with torch.no_grad():
                u = torch.rand((1,), generator=self.gen, dtype=self.dtype)
                p = torch.sigmoid(th)
                b1 = (u < p).to(self.dtype)
                b2 = (1 - u < p).to(self.dtype)
                sign = 1 - 2 * b2
                return 0.5 * (self.f(b1) - self.f(b2)) * sign * (b1 != b2).to(self.dtype) * torch.sigmoid(th.abs())
        # relax
        u = torch.rand((1,), generator=self.gen, dtype=self.dtype)
        v = torch.rand((1,), generator=self.gen, dtype=self.dtype)
        z = th + torch.log(u) - torch.log1p(-u)
        b = (z.detach() > 0).to(self.dtype)
        lv, l1v = torch.log(v), torch.log1p(-v)
        zt = torch.where(b > 0, softplus(th + lv) - l1v, lv - softplus(l1v - th))
        logp = b * th - softplus(th)
        czt = self._cv(zt)
        # the score term's cv keeps phi but not theta
        czt_sig = self._cv(zt.detach())
        surrogate = ((self.f(b) - czt_sig) * logp).sum() + self._cv(z) - czt
        (g,) = torch.autograd.grad(surrogate, [th], create_graph=True)
        phis = [self.W1, self.b1, self.w2, self.c0]
        gphi = torch.autograd.grad((g * g).sum(), phis)
        for p_, gp in zip(phis, gphi):
            p_.grad = gp
        return g.detach()


# --------------------------------------------------------------------------------------------
# Pyro: the same SBN as a model / guide pair, trained by SVI with TraceGraph_ELBO (Pyro's own
# score-function estimator for the non-reparameterisable Bernoulli site, with its decaying-
# average baseline, beta 0.9, or none).
# --------------------------------------------------------------------------------------------
def pyro_sbn_svi(params, lr=1e-3, baseline=True, dtype=torch.float32):
    import pyro
    import pyro.distributions as dist
    from pyro.infer import SVI, TraceGraph_ELBO
    from pyro.optim import Adam

    pyro.clear_param_store()
    init = {k: torch.tensor(np.asarray(params[k]), dtype=dtype) for k in ("enc.W", "enc.b", "dec.W", "dec.b", "prior")}

    def model(x):
        prior = pyro.param("prior", init["prior"])
        W, b = pyro.param("dec.W", init["dec.W"]), pyro.param("dec.b", init["dec.b"])
        with pyro.plate("data", x.shape[0]):
            h = pyro.sample("h", dist.Bernoulli(logits=prior.expand(x.shape[0], -1)).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=h @ W + b).to_event(1), obs=x)

    def guide(x):
        W, b = pyro.param("enc.W", init["enc.W"]), pyro.param("enc.b", init["enc.b"])
        infer = {"baseline": {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}} if baseline else {}
        with pyro.plate("data", x.shape[0]):
            pyro.sample("h", dist.Bernoulli(logits=x @ W + b).to_event(1), infer=infer)

    return SVI(model, guide, Adam({"lr": lr, "betas": (0.9, 0.999), "eps": 1e-8}), loss=TraceGraph_ELBO())
