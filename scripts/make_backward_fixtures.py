#!/usr/bin/env python3
"""
make_backward_fixtures.py — PyTorch autograd goldens for the text-encoder backward
(tests/model/test_backward.c). Run from the repository root:

    python3 scripts/make_backward_fixtures.py      # writes tests/fixtures/backward/

Promises:
- Deterministic (fixed seeds); small .npy files only (float32 / int32, C order), < 3 MB in all.
- Per op (prefix op_): inputs and the input gradient of <dout, forward(inputs)> computed by
  autograd in float64 from the float32 inputs, rounded once to float32: matmul, layernorm,
  l2norm (incl. a zero row: the 1e-12 floor), quickgelu (incl. |x| up to 30), attention (causal
  and not), pos_add (d embeds and d pos), gather_rows.
- Model (prefix model_): the tiny CLIP of scripts/make_fixtures.py (the same seeds rebuild the
  exact weights of tests/fixtures/clip/tiny_f16.safetensors; checked below against that
  script's committed embeds_features.npy). For embeddings E (B,T,Ct), EOT positions P (B) and
  G (B,E): F = the projected EOT feature, dE = d<G,F>/dE and dE_norm = d<G,F/||F||>/dE, all
  through HF's own text-model modules in float64.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import make_fixtures as mf  # noqa: E402  (tiny_config, manual_text_embeds, save, f32)

OUT = os.path.join(ROOT, "tests", "fixtures", "backward")


def save(name, a):
    if torch.is_tensor(a):
        a = a.detach().numpy()
    mf.save(OUT, name, a)


def grad_of(fn, inputs, dout):
    """Input gradients of <dout, fn(*inputs)> in float64; inputs are float32 tensors."""
    xs = [x.double().requires_grad_(True) for x in inputs]
    y = fn(*xs)
    (y * dout.double()).sum().backward()
    return y.detach(), [x.grad for x in xs]


def attention(qkv, NH, causal):
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // NH
    q, k, v = qkv.split(C, dim=2)
    sh = lambda t: t.view(B, T, NH, hs).transpose(1, 2)  # noqa: E731
    q, k, v = sh(q), sh(k), sh(v)
    s = q @ k.transpose(-1, -2) / np.sqrt(hs)
    if causal:
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    o = torch.softmax(s, dim=-1) @ v
    return o.transpose(1, 2).reshape(B, T, C)


def make_ops(g):
    # matmul: dinp = dout @ weight
    inp, w, b = mf.f32(5, 7, gen=g), mf.f32(6, 7, gen=g), mf.f32(6, gen=g)
    dout = mf.f32(5, 6, gen=g)
    _, (dinp,) = grad_of(lambda x: x @ w.double().T + b.double(), [inp], dout)
    for n, a in [("inp", inp), ("weight", w), ("dout", dout), ("dinp", dinp)]:
        save("op_matmul_" + n, a)
    # layernorm: rows with an offset mean and varied scales
    N, C = 6, 40
    inp = mf.f32(N, C, gen=g) * torch.linspace(0.1, 3, N).float()[:, None] + 2.0
    w, b = 1 + 0.3 * mf.f32(C, gen=g), 0.2 * mf.f32(C, gen=g)
    dout = mf.f32(N, C, gen=g)
    _, (dinp,) = grad_of(lambda x: F.layer_norm(x, (C,), w.double(), b.double(), 1e-5), [inp],
                         dout)
    for n, a in [("inp", inp), ("weight", w), ("bias", b), ("dout", dout), ("dinp", dinp)]:
        save("op_layernorm_" + n, a)
    # l2norm: row 2 is zero (F.normalize's floor: dx = dout / 1e-12)
    inp = mf.f32(4, 10, gen=g)
    inp[2] = 0
    dout = mf.f32(4, 10, gen=g)
    _, (dinp,) = grad_of(lambda x: F.normalize(x, dim=1), [inp], dout)
    for n, a in [("inp", inp), ("dout", dout), ("dinp", dinp)]:
        save("op_l2norm_" + n, a)
    # quickgelu
    inp = torch.cat([mf.f32(200, scale=3, gen=g), torch.tensor([-30.0, -10.0, 0.0, 10.0, 30.0])])
    dout = mf.f32(inp.numel(), gen=g)
    _, (dinp,) = grad_of(lambda x: x * torch.sigmoid(1.702 * x), [inp], dout)
    for n, a in [("inp", inp), ("dout", dout), ("dinp", dinp)]:
        save("op_quickgelu_" + n, a)
    # attention (B,T,3C), NH heads, causal and not
    B, T, C, NH = 2, 7, 16, 2
    qkv = mf.f32(B, T, 3 * C, gen=g)
    dout = mf.f32(B, T, C, gen=g)
    save("op_attention_qkv", qkv)
    save("op_attention_dout", dout)
    for causal in (1, 0):
        _, (dq,) = grad_of(lambda x: attention(x, NH, causal), [qkv], dout)
        save("op_attention_dqkv_causal%d" % causal, dq)
    # pos_add: dembeds = dout, dpos = sum over the batch
    dout = mf.f32(3, 5, 8, gen=g)
    emb, pos = mf.f32(3, 5, 8, gen=g), mf.f32(5, 8, gen=g)
    _, (de, dp) = grad_of(lambda e, p: e + p, [emb, pos], dout)
    save("op_posadd_dout", dout)
    save("op_posadd_dembeds", de)
    save("op_posadd_dpos", dp)
    # gather_rows: inp (B,T,C), idx (B)
    inp, idx = mf.f32(3, 6, 4, gen=g), torch.tensor([5, 0, 2])
    dout = mf.f32(3, 4, gen=g)
    _, (dinp,) = grad_of(lambda x: x[torch.arange(3), idx], [inp], dout)
    save("op_gather_idx", idx)
    save("op_gather_dout", dout)
    save("op_gather_dinp", dinp)


def tiny_model():
    """The exact model of make_fixtures.make_clip (same seeds, same order of random draws)."""
    from transformers import CLIPModel
    torch.manual_seed(0)
    model = CLIPModel(mf.tiny_config()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
        model.half().float()
    md = model.double()
    # the weights must be those of tiny_f16.safetensors: reproduce a committed golden
    emb = torch.from_numpy(np.load(os.path.join(mf.CLIPD, "embeds.npy"))).double()
    eot = torch.from_numpy(np.load(os.path.join(mf.CLIPD, "embeds_eot.npy"))).long()
    ref = np.load(os.path.join(mf.CLIPD, "embeds_features.npy"))
    with torch.no_grad():
        got = mf.manual_text_embeds(md, emb, eot).numpy()
    err = np.abs(got - ref).max()
    assert err < 1e-6, f"rebuilt tiny model differs from the committed fixtures ({err})"
    return md


def make_model(g):
    md = tiny_model()
    B, T, C, E = 4, 14, 32, 32
    emb = mf.f32(B, T, C, scale=0.05, gen=g)   # token-embedding scale of the tiny model
    eot = torch.tensor([13, 3, 7, 0])          # full length, short, middle, the first position
    G = mf.f32(B, E, gen=g)
    x = emb.double().requires_grad_(True)
    feat = mf.manual_text_embeds(md, x, eot)
    (feat * G.double()).sum().backward()
    dE = x.grad.clone()
    x.grad = None
    featn = F.normalize(mf.manual_text_embeds(md, x, eot), dim=1)
    (featn * G.double()).sum().backward()
    save("model_embeds", emb)
    save("model_eot", eot)
    save("model_grad", G)
    save("model_features", feat.detach())
    save("model_dembeds", dE)
    save("model_dembeds_norm", x.grad)


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(4321)
    make_ops(g)
    make_model(g)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"backward fixtures written: {total / 1e6:.3f} MB in tests/fixtures/backward")
    if total > 3e6:
        sys.exit("fixture budget (3 MB) exceeded")


if __name__ == "__main__":
    main()
