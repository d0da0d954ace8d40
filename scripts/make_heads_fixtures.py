#!/usr/bin/env python3
"""make_heads_fixtures.py — goldens for the clustering-head ops and the SIC / TAC (trained)
one-step oracles (tests/cpu/test_heads_ops.c, tests/train/test_heads.c).

Writes tests/fixtures/heads/:
  bn_*        BatchNorm1d (7,13): training forward (out, batch mean, rstd, running stats after,
              momentum 0.1, eps 1e-5), evaluation forward, and autograd's dinp / dweight / dbias
              of sum(out * dout) in float64 (inputs are float32 values, upcast)
  sm_*        row softmax (9,5) in float64
  sic_*       SIC's loss (SIC losses/losses.py:44-83, written as the authors do) on logits
              (13,5): terms {L, L_I, H, CE} and autograd's dL/dla, dL/dln in float64
  tac_*       TAC's loss (TAC loss_utils.py + train_head.py:119-124) on four softmax outputs:
              two cases (b=13, K=5, tau 0.5) and (b=8, K=3, tau 5.0); terms
              {L, D(Ia,Tn), D(Ta,In), Cons(Ta,Ia), H(Ta)+H(Ia)} and dL/dlogits (float64)
  sico_*      SIC one-step oracle (SPEC §9.1, test oracle): raw X (2000,32), raw semantic space
              S (300,32), K = 10, a seeded Linear head. Step 7 (compute_center.py): the logits Z,
              the top int((N//K)·0.9) row index sets per centre (sorted), V, the top-30 noun index
              sets (sorted) and H. Step 8 (losses.py, train_utils.py): fixed anchor / neighbour
              lists of 128, pseudo-labels, the three terms and L, dW, db, then W, b after one
              torch.optim.Adam(lr 1e-4, weight_decay 1e-4) step — in float32, as the authors run
  sicf_*      SIC's semantic-space filters (semantic_filters.py) on a synthetic bank of 300 raw
              noun features (batches of 128: the last has 44 rows): image centres C0 (4,32),
              gamma_r 20, gamma_u 0.1; the mean of the per-batch means t̄ (float64), and the
              sorted index lists R, U and S = R ∩ U
  taco_*      TAC trained one-step oracle (SPEC §9.2): b = 64, D = H = 32, K = 10, two MLP heads
              in training mode, anchors then neighbours (two forwards per head, as
              train_head.py:116-117); terms, every parameter gradient of both heads, the
              BatchNorm running statistics after the two forwards, and every parameter after one
              torch.optim.Adam(lr 1e-3, betas (0.9, 0.99)) step — float32, as the authors run

Run from the repository root:  python3 scripts/make_heads_fixtures.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = "tests/fixtures/heads"


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), a)


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


# --- ops -------------------------------------------------------------------------------------

def make_bn():
    g = np.random.default_rng(21)
    B, C = 7, 13
    x = f32(g.standard_normal((B, C)) * 2 + 0.5)
    w = f32(g.standard_normal(C))
    b = f32(g.standard_normal(C))
    rm = f32(g.standard_normal(C) * 0.1)
    rv = f32(g.uniform(0.5, 2.0, C))
    dout = f32(g.standard_normal((B, C)))
    bn = torch.nn.BatchNorm1d(C, momentum=0.1, eps=1e-5).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(w, dtype=torch.float64))
        bn.bias.copy_(torch.tensor(b, dtype=torch.float64))
        bn.running_mean.copy_(torch.tensor(rm, dtype=torch.float64))
        bn.running_var.copy_(torch.tensor(rv, dtype=torch.float64))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    bn.train()
    out = bn(xt)
    (out * torch.tensor(dout, dtype=torch.float64)).sum().backward()
    x64 = x.astype(np.float64)
    mean = x64.mean(0)
    rstd = 1.0 / np.sqrt(x64.var(0) + 1e-5)
    save("bn_x", x)
    save("bn_w", w)
    save("bn_b", b)
    save("bn_rm0", rm)
    save("bn_rv0", rv)
    save("bn_dout", dout)
    save("bn_out", out.detach().numpy())
    save("bn_mean", mean)
    save("bn_rstd", rstd)
    save("bn_rm", bn.running_mean.numpy())
    save("bn_rv", bn.running_var.numpy())
    save("bn_dx", xt.grad.numpy())
    save("bn_dw", bn.weight.grad.numpy())
    save("bn_db", bn.bias.grad.numpy())
    bn.eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor(rm, dtype=torch.float64))
        bn.running_var.copy_(torch.tensor(rv, dtype=torch.float64))
        save("bn_out_eval", bn(torch.tensor(x, dtype=torch.float64)).numpy())


def make_softmax():
    g = np.random.default_rng(22)
    x = f32(g.standard_normal((9, 5)) * 3)
    x[0] = [50.0, -50.0, 0.0, 1.0, 50.0]   # large logits: max subtraction matters
    save("sm_x", x)
    save("sm_p", torch.softmax(torch.tensor(x, dtype=torch.float64), 1).numpy())


def sic_loss(la, ln, feats, H, entropy_weight=5.0, ce_weight=0.1):
    """SICLoss.forward with epoch > 0 (losses.py:57-83)."""
    b, c = ln.size()
    p = torch.softmax(la, dim=-1)
    pn = torch.softmax(ln, dim=-1)
    sim = torch.bmm(p.view(b, 1, c), pn.view(b, c, 1)).squeeze()
    cons = -torch.sum(torch.log(sim), dim=0) / b
    x_ = torch.clamp(torch.mean(p, 0), min=1e-8)
    ent = -(x_ * torch.log(x_)).sum()
    y = torch.max(torch.mm(feats, H.T).softmax(dim=-1), dim=1)[1]
    ce = F.cross_entropy(la, y)
    return cons - entropy_weight * ent + ce_weight * ce, cons, ent, ce, y


def make_sic_loss():
    g = np.random.default_rng(23)
    b, K = 13, 5
    la = f32(g.standard_normal((b, K)) * 2)
    ln = f32(g.standard_normal((b, K)) * 2)
    y = g.integers(0, K, b).astype(np.int32)
    lat = torch.tensor(la, dtype=torch.float64, requires_grad=True)
    lnt = torch.tensor(ln, dtype=torch.float64, requires_grad=True)
    # pseudo-labels given directly: feats = one-hot rows, H = identity
    feats = torch.nn.functional.one_hot(torch.tensor(y, dtype=torch.int64), K).double()
    L, li, H, ce, yy = sic_loss(lat, lnt, feats, torch.eye(K, dtype=torch.float64))
    assert (yy.numpy() == y).all()
    L.backward()
    save("sic_la", la)
    save("sic_ln", ln)
    save("sic_y", y)
    save("sic_terms", np.array([L.item(), li.item(), H.item(), ce.item()]))
    save("sic_dla", lat.grad.numpy())
    save("sic_dln", lnt.grad.numpy())


class DistillLoss(torch.nn.Module):
    """TAC loss_utils.py:22-58, dtype-generic."""

    def __init__(self, class_num, temperature):
        super().__init__()
        self.class_num = class_num
        self.temperature = temperature
        N = 2 * class_num
        mask = torch.ones((N, N)).fill_diagonal_(0)
        for i in range(class_num):
            mask[i, class_num + i] = 0
            mask[class_num + i, i] = 0
        self.mask = mask.bool()
        self.criterion = torch.nn.CrossEntropyLoss(reduction="sum")

    def forward(self, c_i, c_j):
        c_i = c_i.t()
        c_j = c_j.t()
        N = 2 * self.class_num
        c = torch.cat((c_i, c_j), dim=0)
        c = F.normalize(c, dim=1)
        sim = c @ c.T / self.temperature
        sim_i_j = torch.diag(sim, self.class_num)
        sim_j_i = torch.diag(sim, -self.class_num)
        positive_clusters = torch.cat((sim_i_j, sim_j_i), dim=0).reshape(N, 1)
        negative_clusters = sim[self.mask].reshape(N, -1)
        labels = torch.zeros(N).long()
        logits = torch.cat((positive_clusters, negative_clusters), dim=1)
        return self.criterion(logits, labels) / N


def tac_entropy(p):
    p = p.mean(dim=0)
    p_ = torch.clamp(p, min=1e-9)
    return -(p_ * torch.log(p_)).sum()


def tac_consistency(a, n):
    b, k = a.size()
    s = torch.bmm(a.view(b, 1, k), n.view(b, k, 1)).squeeze()
    return F.binary_cross_entropy(s, torch.ones_like(s))


def tac_loss(PIa, PTa, PIn, PTn, K, tau):
    d = DistillLoss(K, tau)
    d1 = d(PIa, PTn)
    d2 = d(PTa, PIn)
    cons = tac_consistency(PTa, PIa)
    ent = tac_entropy(PTa) + tac_entropy(PIa)
    return d1 + d2 + cons - 5 * ent, d1, d2, cons, ent


def make_tac_loss():
    g = np.random.default_rng(24)
    for case, (b, K, tau) in enumerate([(13, 5, 0.5), (8, 3, 5.0)]):
        logits = [torch.tensor(f32(g.standard_normal((b, K)) * 2), dtype=torch.float64,
                               requires_grad=True) for _ in range(4)]
        P = [torch.softmax(l, 1) for l in logits]
        L, d1, d2, cons, ent = tac_loss(*P, K, tau)
        L.backward()
        for q, nm in enumerate(["Ia", "Ta", "In", "Tn"]):
            save(f"tac{case}_P{nm}", f32(P[q].detach().numpy()))
            save(f"tac{case}_d{nm}", logits[q].grad.numpy())
        save(f"tac{case}_terms", np.array([L.item(), d1.item(), d2.item(), cons.item(), ent.item()]))
        save(f"tac{case}_cfg", np.array([b, K, tau]))


# --- SIC one step ----------------------------------------------------------------------------

def make_sic_oracle():
    g = np.random.default_rng(31)
    N, E, K, M = 2000, 32, 10, 300
    centres = g.standard_normal((K, E)) * 2
    X = f32(centres[g.integers(0, K, N)] + g.standard_normal((N, E)) + 1.0)   # raw, off-centre
    S = f32(g.standard_normal((M, E)) + 0.5)
    torch.manual_seed(5)
    head = torch.nn.Linear(E, K)
    with torch.no_grad():
        head.weight.mul_(3.0)    # spread the initial logits
    W0 = f32(head.weight.detach().numpy())
    b0 = f32(head.bias.detach().numpy())
    Xt = torch.tensor(X)
    St = torch.tensor(S)
    # step 7: compute_center.py get_centers / get_image_centers / search_sim_texts
    with torch.no_grad():
        Z = head(Xt)
    _, idx = torch.sort(Z, dim=0, descending=True, stable=True)
    topk = int((N // K) * 0.9)
    I = idx[:topk, :]
    V = torch.cat([Xt[I[:, c], :].mean(axis=0, keepdim=True) for c in range(K)])
    V = F.normalize(V, dim=1)
    sim = torch.cosine_similarity(V.unsqueeze(1), St.unsqueeze(0), dim=2)
    J = torch.topk(sim, 30).indices
    Hc = torch.cat([St[J[c]].sum(0, keepdim=True) / 30 for c in range(K)])
    Hc = F.normalize(Hc, dim=1)
    # check no near-ties at the cuts (the C side must be able to reproduce the sets exactly)
    for c in range(K):
        zs = torch.sort(Z[:, c], descending=True).values
        assert zs[topk - 1] - zs[topk] > 1e-5, "logit tie at the cut"
        ss = torch.sort(sim[c], descending=True).values
        assert ss[29] - ss[30] > 1e-5, "cosine tie at the cut"
    save("sico_X", X)
    save("sico_S", S)
    save("sico_W0", W0)
    save("sico_b0", b0)
    save("sico_Z", f32(Z.numpy()))
    save("sico_I", np.ascontiguousarray(np.sort(I.numpy().T, axis=1), dtype=np.int64))     # (K, topk)
    save("sico_V", f32(V.numpy()))
    save("sico_J", np.ascontiguousarray(np.sort(J.numpy(), axis=1), dtype=np.int64))       # (K, 30)
    save("sico_H", f32(Hc.numpy()))
    # step 8: one batch with fixed anchor / neighbour lists
    b = 128
    ia = g.permutation(N)[:b].astype(np.int64)
    jn = g.integers(0, N, b).astype(np.int64)
    opt = torch.optim.Adam(head.parameters(), lr=1e-4, weight_decay=1e-4, foreach=False)
    la = head(Xt[ia])
    ln = head(Xt[jn])
    L, li, H, ce, y = sic_loss(la, ln, Xt[ia], Hc)
    opt.zero_grad()
    L.backward()
    save("sico_ia", ia)
    save("sico_jn", jn)
    save("sico_y", y.numpy().astype(np.int32))
    save("sico_terms", np.array([L.item(), li.item(), H.item(), ce.item()]))
    save("sico_dW", f32(head.weight.grad.numpy()))
    save("sico_db", f32(head.bias.grad.numpy()))
    opt.step()
    save("sico_W1", f32(head.weight.detach().numpy()))
    save("sico_b1", f32(head.bias.detach().numpy()))


def make_sic_filters():
    g = np.random.default_rng(32)
    M, E, K, gamma_r, gamma_u, bs = 300, 32, 4, 20, 0.1, 128
    while True:
        common = g.standard_normal(E) * 3
        T0 = f32(common + g.standard_normal((M, E)) * g.uniform(0.5, 3.0, (M, 1)))
        C0 = f32(g.standard_normal((K, E)) * 2)
        # semantic_filters.py: image_centers_filter (top gamma_r per centre by cosine)
        sim = torch.cosine_similarity(torch.tensor(C0).unsqueeze(1), torch.tensor(T0).unsqueeze(0), dim=2)
        R = torch.topk(sim, gamma_r).indices.reshape(-1).numpy()
        # uniqueness_filter: the mean of the per-batch means (numpy float32, batches of 128)
        means = [np.mean(T0[i:i + bs], axis=0) for i in range(0, M, bs)]
        tbar = np.array(means).mean(axis=0)
        cos = torch.cosine_similarity(torch.tensor(T0), torch.tensor(tbar).unsqueeze(0).float())
        U = np.nonzero((cos < 1 - gamma_u).numpy())[0]
        cs = np.sort(sim.numpy(), axis=1)[:, ::-1]
        plain = T0.astype(np.float64).mean(0)
        cos_plain = (T0 @ plain) / np.linalg.norm(T0, axis=1) / np.linalg.norm(plain)
        ok = (np.min(np.abs(cos.numpy() - (1 - gamma_u))) > 1e-4 and
              np.min(cs[:, gamma_r - 1] - cs[:, gamma_r]) > 1e-5 and
              0 < len(U) < M and
              (cos_plain < 1 - gamma_u).sum() != len(U))   # the quirk must change U here
        if ok:
            break
    S = np.intersect1d(R, U)
    save("sicf_T0", T0)
    save("sicf_C0", C0)
    save("sicf_cfg", np.array([gamma_r, gamma_u, bs], dtype=np.float64))
    save("sicf_tbar", tbar.astype(np.float64))
    save("sicf_R", np.unique(R).astype(np.int64))
    save("sicf_U", U.astype(np.int64))
    save("sicf_S", S.astype(np.int64))


# --- TAC one step ----------------------------------------------------------------------------

class ClusterHead(torch.nn.Module):
    """TAC models.py:36-62 (init done below, by the fixture's own draws)."""

    def __init__(self, in_dim, num_clusters):
        super().__init__()
        mk = lambda: torch.nn.Sequential(torch.nn.Linear(in_dim, in_dim), torch.nn.BatchNorm1d(in_dim),
                                         torch.nn.ReLU(), torch.nn.Linear(in_dim, num_clusters),
                                         torch.nn.Softmax(dim=1))
        self.cluster_head_text = mk()
        self.cluster_head_image = mk()

    def forward(self, text, image):
        return self.cluster_head_text(text), self.cluster_head_image(image)


def make_tac_oracle():
    g = np.random.default_rng(41)
    b, D, K = 64, 32, 10
    torch.manual_seed(6)
    model = ClusterHead(D, K)
    with torch.no_grad():
        for seq in (model.cluster_head_text, model.cluster_head_image):
            seq[0].weight.normal_(0, 0.2)    # larger than TAC's 0.02: non-trivial gradients
            seq[3].weight.normal_(0, 0.3)
            seq[1].weight.uniform_(0.5, 1.5)
            seq[1].bias.normal_(0, 0.1)
    names = ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]

    def params(seq):
        sd = seq.state_dict()
        return np.concatenate([sd[n].numpy().ravel() for n in names]).astype(np.float32)

    def grads(seq):
        ps = dict(seq.named_parameters())
        return np.concatenate([ps[n].grad.numpy().ravel() for n in names]).astype(np.float32)

    def unit(a):
        return f32(a / np.linalg.norm(a, axis=1, keepdims=True))

    xa, ta, xn, tn = (unit(g.standard_normal((b, D)) + g.standard_normal(D)) for _ in range(4))
    save("taco_xa", xa)
    save("taco_ta", ta)
    save("taco_xn", xn)
    save("taco_tn", tn)
    save("taco_pT0", params(model.cluster_head_text))
    save("taco_pI0", params(model.cluster_head_image))
    opt = torch.optim.Adam(model.parameters(), betas=(0.9, 0.99), foreach=False)
    model.train()
    PTa, PIa = model(torch.tensor(ta), torch.tensor(xa))
    PTn, PIn = model(torch.tensor(tn), torch.tensor(xn))
    L, d1, d2, cons, ent = tac_loss(PIa, PTa, PIn, PTn, K, 0.5)
    opt.zero_grad()
    L.backward()
    save("taco_terms", np.array([L.item(), d1.item(), d2.item(), cons.item(), ent.item()]))
    save("taco_gT", grads(model.cluster_head_text))
    save("taco_gI", grads(model.cluster_head_image))
    for nm, seq in (("T", model.cluster_head_text), ("I", model.cluster_head_image)):
        save(f"taco_rm{nm}", f32(seq[1].running_mean.numpy()))
        save(f"taco_rv{nm}", f32(seq[1].running_var.numpy()))
    opt.step()
    save("taco_pT1", params(model.cluster_head_text))
    save("taco_pI1", params(model.cluster_head_image))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_bn()
    make_softmax()
    make_sic_loss()
    make_tac_loss()
    make_sic_oracle()
    make_sic_filters()
    make_tac_oracle()
    print("wrote", OUT)
