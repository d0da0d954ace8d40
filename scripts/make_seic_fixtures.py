#!/usr/bin/env python3
"""make_seic_fixtures.py — goldens for tests/train/test_seic.c (SEIC, SPEC §9.3).

The reference is written here in PyTorch from SPEC §9.3, which follows V4C
(hyw1008/VLM4Cluster@4f6cd92 vlm4cluster/methods/seic/{core,losses}.py): heads, the four
stage-1 losses, the EMA balance histogram, Adam; the stage-2 confidence weights and loss.
Everything is computed in float64 from float32 inputs (upcast), like the other goldens.

Writes tests/fixtures/seic/, per stage-1 case c (s1_<c>_*.npy):
  x, t (b,E)              image and text features (L2-normalised, float32)
  p0 (n)                  head parameters before the step, float32, in laic's order:
                          image projection W (E,E), b (E); image cluster W (K,E), b (K);
                          text projection W, b; text cluster W, b; log-scale (1)
  h0 (K)                  balance histogram before the step (float32)
  terms (5)               total, L_ins, L_ass, L_ctr, L_bal
  dz_i, dz_t (b,E)        dL/dz of the projected (normalised) features
  dl_i, dl_t (b,K)        dL/dlogits
  g (n)                   dL/dparameters, same order as p0
  h1 (K)                  histogram after the step's update
  p1 (n)                  parameters after one torch.optim.Adam(lr, wd 0) step
  cfg (12)                b, E, K, lr, tau_a, tau_c, w_ins, w_ass, w_ctr, w_bal, floor, max_w
                          (momentum 0.9 and the scale cap 100 are fixed)
the stage-2 loss cases (s2_<c>_*.npy), see below, and one stage-2 step (s2step_*.npy) through
the tiny CLIP of tests/fixtures/clip/tiny_f16.safetensors (rebuilt exactly by
make_backward_fixtures.tiny_model) with PEFT-style LoRA on q and v of both vision blocks
(make_vit_fixtures.LoRA, laic's arena order: per block q_down (r,C), q_up (C,r), v_down, v_up),
the SEIC image heads, fixed weak and strong pixels, in float64:
  cfg (7)                 B, K, r, alpha, lr, weight decay, confidence momentum
  weak, strong (B,3,32,32)
  lora0 (n_lora), heads0 (n_img)  trainable parameters before (heads: Wp, bp, Wc, bc)
  w (B), y (B), loss (1)  confidence weights, pseudo-labels, L2 (first batch: the EMA starts
                          from the batch's own mean and variance)
  glora, gheads           dL2/dθ
  lora1, heads1           after one torch.optim.AdamW step over both groups (float32)
  st1 (3)                 the confidence EMA after the step
The stage-2 loss cases (s2_<c>_*.npy):
  lw, ls (b,K)            weak and strong cluster logits (float32)
  st0 (3)                 confidence EMA before: mean, var, initialised (0/1)
  w (b), y (b)            confidence weights and pseudo-labels
  loss (1), dls (b,K)     L2 and dL2/dls
  st1 (3)                 confidence EMA after

Run from the repository root:  python3 scripts/make_seic_fixtures.py
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = "tests/fixtures/seic"
D = torch.float64


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), a)


def f32(a):
    return np.asarray(a, np.float32)


# --- stage 1 ---------------------------------------------------------------------------------

def cl(a, b, scale):
    """½[CE(â b̂ᵀ·scale, diag) + CE(b̂ âᵀ·scale, diag)] on row-normalised a, b (0 if < 2 rows)."""
    if a.shape[0] < 2:
        return a.sum() * 0.0
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = scale * (a @ b.t())
    lab = torch.arange(a.shape[0])
    return (F.cross_entropy(logits, lab) + F.cross_entropy(logits.t(), lab)) / 2.0


def centres(z, p):
    a = p.argmax(1)
    w = p * F.one_hot(a, p.shape[1]).to(p.dtype)
    return w.t() @ z, w.sum(0) > 1e-8


def stage1_loss(zi, zt, pi, pt, logs, h, cfg):
    tau_a, tau_c, wi, wa, wc, wb, floor, maxw = cfg
    ins = cl(zi, zt, torch.clamp(logs.exp(), max=100.0))
    ass = cl(F.normalize(pi.t(), dim=1), F.normalize(pt.t(), dim=1), 1.0 / max(tau_a, 1e-6))
    ci, vi = centres(zi, pi)
    ct, vt = centres(zt, pt)
    v = vi & vt
    ctr = cl(ci[v], ct[v], 1.0 / max(tau_c, 1e-6)) if int(v.sum()) >= 2 else zi.sum() * 0.0
    eps = 1e-8
    mi, mt = torch.clamp(pi.mean(0), min=eps), torch.clamp(pt.mean(0), min=eps)
    hh = torch.clamp(h, min=max(floor, eps))
    hh = hh / torch.clamp(hh.sum(), min=eps)
    w = torch.clamp((1.0 / h.numel()) / hh, max=maxw)
    w = w / torch.clamp(w.mean(), min=eps)
    bal = (w * mi * torch.log(mi)).sum() + (w * mt * torch.log(mt)).sum()
    total = wi * ins + wa * ass + wc * ctr + wb * bal
    return total, ins, ass, ctr, bal


def stage1_case(c, b, E, K, seed, logs0=math.log(1 / 0.07), collapse=None, h0=None):
    g = np.random.default_rng(seed)
    cfg = (0.5, 0.5, 0.5, 1.0, 1.0, 2.0, 0.01, 5.0)
    lr = 5e-3
    # features: K loose groups so the heads see structure; text = noisy copies
    cen = g.standard_normal((K, E))
    lab = g.integers(0, K, b)
    x = cen[lab] + 0.8 * g.standard_normal((b, E))
    t = cen[lab] + 0.8 * g.standard_normal((b, E))
    x = f32(x / np.linalg.norm(x, axis=1, keepdims=True))
    t = f32(t / np.linalg.norm(t, axis=1, keepdims=True))
    # heads: trunc_normal(0.02) weights as V4C, then scaled up (×10) so the softmaxes are not
    # flat and argmaxes are clear; biases non-zero so a dropped bias shows
    def lin(o, i):
        return (f32(np.clip(g.standard_normal((o, i)), -2, 2) * 0.2),
                f32(0.05 * g.standard_normal(o)))
    Wpi, bpi = lin(E, E)
    Wci, bci = lin(K, E)
    Wpt, bpt = lin(E, E)
    Wct, bct = lin(K, E)
    if collapse == "image":   # every image row to cluster 0: fewer than 2 valid centres
        bci = bci.copy()
        bci[0] = 10.0   # p^I ≈ one-hot (1 − 1e-4), gradients still well above float noise
    if collapse == "some":    # clusters 1 and 2 never win for images, 3 never for text
        bci = bci.copy()
        bci[1] = bci[2] = -10.0
        bct = bct.copy()
        bct[3] = -10.0
    p0 = [Wpi, bpi, Wci, bci, Wpt, bpt, Wct, bct, f32([logs0])]
    if h0 is None:
        h0 = g.uniform(0.2, 1.0, K)
        h0[0] = 0.001    # below the floor: weight capped at max_w
        h0 = h0 / h0.sum()
    h0 = f32(h0)

    P = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in p0]
    X, T = torch.tensor(x, dtype=D), torch.tensor(t, dtype=D)
    ui = X @ P[0].t() + P[1]
    zi = F.normalize(ui, dim=1)
    li = zi @ P[2].t() + P[3]
    ut = T @ P[4].t() + P[5]
    zt = F.normalize(ut, dim=1)
    lt = zt @ P[6].t() + P[7]
    for v in (zi, zt, li, lt):
        v.retain_grad()
    pi, pt = torch.softmax(li, 1), torch.softmax(lt, 1)
    h = torch.tensor(h0, dtype=D)
    total, ins, ass, ctr, bal = stage1_loss(zi, zt, pi, pt, P[8][0], h, cfg)
    total.backward()
    # histogram update from the pre-step argmax of p^I
    cnt = torch.bincount(pi.detach().argmax(1), minlength=K).to(D)
    cnt = cnt / torch.clamp(cnt.sum(), min=1.0)
    h1 = 0.9 * h + 0.1 * cnt
    h1 = h1 / torch.clamp(h1.sum(), min=1e-8)
    # one Adam step (float64 arithmetic of torch.optim.Adam, wd 0)
    opt = torch.optim.Adam(P, lr=lr, weight_decay=0.0)
    opt.step()

    pre = f"s1_{c}_"
    save(pre + "x", x)
    save(pre + "t", t)
    save(pre + "p0", np.concatenate([a.reshape(-1) for a in p0]))
    save(pre + "h0", h0)
    save(pre + "terms", np.array([v.item() for v in (total, ins, ass, ctr, bal)]))
    save(pre + "dz_i", zi.grad.numpy())
    save(pre + "dz_t", zt.grad.numpy())
    save(pre + "dl_i", li.grad.numpy())
    save(pre + "dl_t", lt.grad.numpy())
    # the parameters' gradients were consumed by the step only in value: p.grad is still there
    save(pre + "g", np.concatenate([p.grad.numpy().reshape(-1) for p in P]))
    save(pre + "h1", h1.numpy())
    save(pre + "p1", np.concatenate([p.detach().numpy().reshape(-1) for p in P]))
    save(pre + "cfg", np.array([b, E, K, lr] + list(cfg), np.float64))
    nv = int((centres(zi, pi)[1] & centres(zt, pt)[1]).sum())
    print(f"stage1 case {c}: b={b} E={E} K={K} terms {[round(v.item(), 6) for v in (total, ins, ass, ctr, bal)]}"
          f" valid centres {nv} scale {min(math.exp(logs0), 100.0):.3f}")


# --- stage 2 loss ------------------------------------------------------------------------------

def stage2_case(c, b, K, seed, st0, momentum=0.999):
    g = np.random.default_rng(seed)
    lw = f32(2.0 * g.standard_normal((b, K)))
    lw[0, :] = 0.0            # a flat row: confidence 1/K, far below the mean
    lw[1, 2] = lw[1, 3] = 9.0 # a tie in the argmax: the lowest index wins
    ls = f32(2.0 * g.standard_normal((b, K)))
    pw = torch.softmax(torch.tensor(lw, dtype=D), 1)
    conf, y = pw.max(1)
    # torch.max on a tie: PyTorch returns the first index on CPU; check it
    assert int(y[1]) == 2, "tie broken toward the lower index"
    mean, var, init = st0
    bm, bv = conf.mean().item(), max(conf.var(unbiased=False).item(), 1e-6)
    if not init:
        mean, var = bm, bv
    else:
        mean = momentum * mean + (1 - momentum) * bm
        var = momentum * var + (1 - momentum) * bv
    v = max(var, 1e-6)
    w = torch.where(conf < mean, torch.exp(-(conf - mean) ** 2 / (2 * v)), torch.ones_like(conf))
    S = torch.tensor(ls, dtype=D, requires_grad=True)
    loss = (F.cross_entropy(S, y, reduction="none") * w).mean()
    loss.backward()
    pre = f"s2_{c}_"
    save(pre + "lw", lw)
    save(pre + "ls", ls)
    save(pre + "st0", np.array(st0, np.float64))
    save(pre + "w", w.numpy())
    save(pre + "y", y.numpy().astype(np.int32))
    save(pre + "loss", np.array([loss.item()]))
    save(pre + "dls", S.grad.numpy())
    save(pre + "st1", np.array([mean, var, 1.0]))
    print(f"stage2 case {c}: loss {loss.item():.6f} mean w {w.mean().item():.4f} EMA {mean:.5f} {var:.3e}")


# --- one stage-2 step through the tiny ViT with LoRA ------------------------------------------

def stage2_step(seed=6):
    import copy
    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import make_backward_fixtures as mb
    import make_fixtures as mf
    import make_vit_fixtures as mv
    g = torch.Generator().manual_seed(seed)
    md = mb.tiny_model()
    C, E = md.config.vision_config.hidden_size, md.config.projection_dim
    nl = md.config.vision_config.num_hidden_layers
    B, K, r, alpha, lr, wd, mo = 6, 5, 4, 8.0, 1e-3, 1e-2, 0.999
    weak = mf.f32(B, 3, 32, 32, gen=g)
    strong = mf.f32(B, 3, 32, 32, gen=g)
    bound = 1.0 / np.sqrt(C)
    arena = []
    for _ in range(nl):
        for _ in "qv":
            arena.append(((torch.rand(r, C, generator=g, dtype=torch.float64) * 2 - 1) * bound).float())
            arena.append(mf.f32(C, r, scale=0.05, gen=g))   # U != 0 so dD is not 0
    # heads scaled so the random-init encoder's features (all alike) spread over the clusters
    heads = [mf.f32(E, E, scale=2.0, gen=g), mf.f32(E, scale=0.05, gen=g),
             mf.f32(K, E, scale=4.0, gen=g), mf.f32(K, scale=0.05, gen=g)]
    m64 = copy.deepcopy(md)
    ad = []
    for i in range(nl):
        at = m64.vision_model.encoder.layers[i].self_attn
        for j, name in enumerate(("q_proj", "v_proj")):
            lo = mv.LoRA(getattr(at, name), arena[4 * i + 2 * j].double().clone(),
                         arena[4 * i + 2 * j + 1].double().clone(), alpha / r)
            setattr(at, name, lo)
            ad += [lo.down, lo.up]
    for p_ in m64.parameters():
        p_.requires_grad_(False)
    H = [torch.nn.Parameter(h.double().clone()) for h in heads]
    for p_ in ad + H:
        p_.requires_grad_(True)

    def logits(pix):
        f = F.normalize(mv.image_features(m64, pix.double()), dim=1)
        z = F.normalize(f @ H[0].t() + H[1], dim=1)
        return z @ H[2].t() + H[3]

    with torch.no_grad():
        pw = torch.softmax(logits(weak), 1)
        conf, y = pw.max(1)
    top2 = torch.topk(pw, 2, dim=1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 1e-4, "near-tie in a pseudo-label"
    mean, var = conf.mean().item(), max(conf.var(unbiased=False).item(), 1e-6)   # first batch
    w = torch.where(conf < mean, torch.exp(-(conf - mean) ** 2 / (2 * var)), torch.ones_like(conf))
    loss = (F.cross_entropy(logits(strong), y, reduction="none") * w).mean()
    loss.backward()
    glora = torch.cat([p_.grad.reshape(-1) for p_ in ad])
    gheads = torch.cat([p_.grad.reshape(-1) for p_ in H])
    # one AdamW step in float32 from the float64 gradients (one parameter group, as V4C)
    ps = [a.clone().requires_grad_(True) for a in arena] + [h.clone().requires_grad_(True) for h in heads]
    for p_, q in zip(ps, ad + H):
        p_.grad = q.grad.float()
    torch.optim.AdamW(ps, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, foreach=False).step()
    na = len(arena)
    save("s2step_cfg", np.array([B, K, r, alpha, lr, wd, mo], np.float64))
    save("s2step_weak", weak.numpy())
    save("s2step_strong", strong.numpy())
    save("s2step_lora0", torch.cat([a.reshape(-1) for a in arena]).numpy())
    save("s2step_heads0", torch.cat([h.reshape(-1) for h in heads]).numpy())
    save("s2step_w", w.numpy())
    save("s2step_y", y.numpy().astype(np.int32))
    save("s2step_loss", np.array([loss.item()]))
    save("s2step_glora", glora.numpy())
    save("s2step_gheads", gheads.numpy())
    save("s2step_lora1", torch.cat([p_.detach().reshape(-1) for p_ in ps[:na]]).numpy())
    save("s2step_heads1", torch.cat([p_.detach().reshape(-1) for p_ in ps[na:]]).numpy())
    save("s2step_st1", np.array([mean, var, 1.0]))
    print(f"stage2 step: loss {loss.item():.6f}, w {np.round(w.numpy(), 4)}, y {y.numpy()}, "
          f"|g_lora| {glora.norm().item():.3g}, |g_heads| {gheads.norm().item():.3g}")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    stage1_case(0, 40, 24, 6, seed=1)
    stage1_case(1, 33, 16, 8, seed=2, collapse="some")
    stage1_case(2, 20, 12, 4, seed=3, collapse="image", logs0=math.log(200.0))
    stage2_case(0, 24, 5, seed=4, st0=(0.0, 0.0, 0.0))          # first batch initialises
    stage2_case(1, 24, 5, seed=5, st0=(0.62, 0.031, 1.0))       # EMA from an earlier state
    stage2_step()
