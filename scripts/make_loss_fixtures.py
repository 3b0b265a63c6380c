#!/usr/bin/env python3
"""Independent reference values for src/ops/losses (run with /work/peers-venv/bin/python).

Writes tests/fixtures/losses/losses_reference.json:
- ZINB / NB log-likelihoods from scvi-tools' own distributions
  (ZeroInflatedNegativeBinomial(mu, theta, zi_logits).log_prob, eps = 1e-8 hard-coded there;
  NegativeBinomial(mu, theta).log_prob, eps = self._eps = 1e-8) and, for the spec's eps = 1e-4,
  scvi.distributions._negative_binomial.log_zinb_positive(..., eps=1e-4); gradients by torch
  autograd. Everything in float64 on inputs first rounded to float32 (the Rust kernels'
  storage), so the reference is the exact answer for the f32 inputs the tests feed.
- scipy.special.gammaln / psi at a set of points.
- Bhattacharyya, KL and masked cross-entropy written directly in torch from the spec's formulas
  (U/model.py:91-110, S/model.py:106-129), gradients by autograd.

Usage: /work/peers-venv/bin/python scripts/make_loss_fixtures.py
"""

import itertools
import json
import pathlib
import warnings

import numpy as np
import scipy
import scipy.special
import scvi
import torch
from scvi.distributions import NegativeBinomial, ZeroInflatedNegativeBinomial
from scvi.distributions._negative_binomial import log_zinb_positive

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "losses"

X_VALUES = [0.0, 1.0, 5.0, 100.0, 0.37]
MU_VALUES = [1e-3, 1.0, 50.0, 1e6]
THETA_VALUES = [1e-3, 0.5, 10.0, 1e5]
LOGIT_VALUES = [-5.0, 0.0, 3.0]


def f32(values):
    """Round to float32 (what the kernels store), then widen to float64 for the reference."""
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def tensor(values, grad=False):
    return torch.tensor(f32(values), dtype=torch.float64, requires_grad=grad)


def tolist(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def zinb_cases(eps):
    grid = list(itertools.product(X_VALUES, MU_VALUES, THETA_VALUES, LOGIT_VALUES))
    x = tensor([g[0] for g in grid])
    mu = tensor([g[1] for g in grid], grad=True)
    theta = tensor([g[2] for g in grid], grad=True)
    logit = tensor([g[3] for g in grid], grad=True)
    # Shape [n, 1]: theta 2-D, so scvi does not reshape it to one row.
    args = [t.reshape(-1, 1) for t in (x, mu, theta, logit)]
    if eps == 1e-8:
        dist = ZeroInflatedNegativeBinomial(mu=args[1], theta=args[2], zi_logits=args[3])
        with warnings.catch_warnings():
            # x = 0.37 is outside the integer support; scvi only warns.
            warnings.simplefilter("ignore")
            ll = dist.log_prob(args[0])
        source = "scvi.distributions.ZeroInflatedNegativeBinomial(mu, theta, zi_logits).log_prob"
    else:
        ll = log_zinb_positive(args[0], args[1], args[2], args[3], eps=eps)
        source = f"scvi.distributions._negative_binomial.log_zinb_positive(eps={eps})"
    ll.sum().backward()
    return {
        "source": source,
        "eps": eps,
        "x": tolist(x),
        "mu": tolist(mu),
        "theta": tolist(theta),
        "logit": tolist(logit),
        "ll": tolist(ll),
        "dmu": tolist(mu.grad),
        "dtheta": tolist(theta.grad),
        "dlogit": tolist(logit.grad),
    }


def nb_cases():
    grid = list(itertools.product(X_VALUES, MU_VALUES, THETA_VALUES))
    x = tensor([g[0] for g in grid])
    mu = tensor([g[1] for g in grid], grad=True)
    theta = tensor([g[2] for g in grid], grad=True)
    dist = NegativeBinomial(mu=mu.reshape(-1, 1), theta=theta.reshape(-1, 1))
    assert dist._eps == 1e-8
    ll = dist.log_prob(x.reshape(-1, 1))
    ll.sum().backward()
    return {
        "source": "scvi.distributions.NegativeBinomial(mu, theta).log_prob",
        "eps": dist._eps,
        "x": tolist(x),
        "mu": tolist(mu),
        "theta": tolist(theta),
        "ll": tolist(ll),
        "dmu": tolist(mu.grad),
        "dtheta": tolist(theta.grad),
    }


def special_values():
    z = np.array(
        [1e-6, 1e-3, 0.1, 0.37, 0.5, 1.0, 1.4616321449683623, 1.5, 2.0, 2.5, 3.7, 7.9, 9.99,
         10.0, 10.01, 33.3, 100.5, 1000.25, 1e4, 1e5, 1e6 + 0.5, 1e8]
    )
    return {
        "z": z.tolist(),
        "lgamma": scipy.special.gammaln(z).tolist(),
        "digamma": scipy.special.psi(z).tolist(),
    }


def bhattacharyya_cases(rng):
    vectors = [
        (rng.uniform(0.1, 2.0, 7), rng.uniform(0.1, 2.0, 7)),  # positive outputs
        (rng.normal(0.5, 1.0, 9), rng.normal(0.3, 1.0, 9)),  # mixed signs
        (rng.normal(-1.0, 0.3, 5), rng.uniform(0.5, 1.0, 5)),  # negative sum for a
        (np.array([1.0, -1.0, 1e-3, 2.0]), np.array([0.5, 0.5, 0.5, 0.5])),
        (np.array([1.0, -1.0, 1e-9, 1e-9]), np.array([3.0, 2.0, 1.0, 1.0])),  # BC huge: upper clip
        (np.array([1.0, 1e-9]), np.array([1e-9, 1.0])),  # BC ~ 6e-5: lower clip
        (rng.uniform(0.1, 2.0, 1), rng.uniform(0.1, 2.0, 1)),  # one cell: BC = 1
    ]
    out = []
    for a_np, b_np in vectors:
        a = tensor(a_np, grad=True)
        b = tensor(b_np, grad=True)
        p = a / a.sum()
        q = b / b.sum()
        bc = torch.sqrt(torch.abs(p * q)).sum()
        loss = torch.log(torch.clamp(bc, 1e-4, 1e4))
        loss.backward()
        out.append({
            "a": tolist(a), "b": tolist(b), "bc": bc.item(), "loss": loss.item(),
            "da": tolist(a.grad), "db": tolist(b.grad),
        })
    return out


def kl_cases(rng):
    rows, cols = 3, 5
    m = rng.normal(0, 1.5, (rows, cols))
    logv = rng.uniform(-4, 4, (rows, cols))
    logv[0, 0], logv[1, 2] = -12.0, 11.0  # outside [1e-4, 1e4]: the log clip is active
    up = rng.uniform(0.5, 2.0, rows)
    mt, vt = tensor(m, grad=True), tensor(np.exp(logv), grad=True)
    kl = 0.5 * (-torch.log(torch.clamp(vt, 1e-4, 1e4)) + vt + mt**2 - 1).sum(dim=1)
    (kl * tensor(up)).sum().backward()
    std = {
        "rows": rows, "cols": cols, "m": tolist(mt), "v": tolist(vt), "upstream": tolist(tensor(up)),
        "kl": tolist(kl), "dm": tolist(mt.grad), "dv": tolist(vt.grad),
    }
    m2 = rng.normal(0, 1.0, (rows, cols))
    logv2 = rng.uniform(-3, 3, (rows, cols))
    logv2[2, 4] = -10.0
    m1t, v1t = tensor(m, grad=True), tensor(np.exp(logv), grad=True)
    m2t, v2t = tensor(m2, grad=True), tensor(np.exp(logv2), grad=True)
    clip = lambda v: torch.clamp(v, 1e-4, 1e4)  # noqa: E731
    kl2 = 0.5 * (
        torch.log(clip(v2t)) - torch.log(clip(v1t)) + v1t / v2t + (m1t - m2t) ** 2 / v2t - 1
    ).sum(dim=1)
    (kl2 * tensor(up)).sum().backward()
    normal = {
        "rows": rows, "cols": cols, "m1": tolist(m1t), "v1": tolist(v1t), "m2": tolist(m2t),
        "v2": tolist(v2t), "upstream": tolist(tensor(up)), "kl": tolist(kl2),
        "dm1": tolist(m1t.grad), "dv1": tolist(v1t.grad), "dm2": tolist(m2t.grad),
        "dv2": tolist(v2t.grad),
    }
    return std, normal


def cross_entropy_cases(rng):
    out = []
    rows, classes = 6, 4
    logits = rng.normal(0, 3, (rows, classes))
    logits[1, 2] = 80.0  # large logit: needs the max shift in f32
    labels = rng.integers(0, classes, rows)
    for mask in [None, [1, 0, 1, 1, 0, 1], [0] * rows]:
        lt = tensor(logits, grad=True)
        ce = torch.nn.functional.cross_entropy(lt, torch.tensor(labels), reduction="none")
        sel = torch.ones(rows, dtype=torch.float64) if mask is None else tensor(mask)
        n = sel.sum()
        loss = (ce * sel).sum() / n if n > 0 else (ce * sel).sum()
        loss.backward()
        out.append({
            "rows": rows, "classes": classes, "logits": tolist(lt), "labels": labels.tolist(),
            "mask": mask, "loss": loss.item(), "dlogits": tolist(lt.grad),
        })
    return out


def main():
    rng = np.random.default_rng(20240607)
    kl_std, kl_normal = kl_cases(rng)
    fixture = {
        "generator": "scripts/make_loss_fixtures.py",
        "versions": {
            "scvi-tools": scvi.__version__, "torch": torch.__version__,
            "scipy": scipy.__version__, "numpy": np.__version__,
        },
        "zinb": [zinb_cases(1e-8), zinb_cases(1e-4)],
        "nb": nb_cases(),
        "special": special_values(),
        "bhattacharyya": bhattacharyya_cases(rng),
        "kl_std_normal": kl_std,
        "kl_normal": kl_normal,
        "cross_entropy": cross_entropy_cases(rng),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "losses_reference.json"
    path.write_text(json.dumps(fixture, indent=1, allow_nan=False) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
