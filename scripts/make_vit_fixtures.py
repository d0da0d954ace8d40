#!/usr/bin/env python3
"""
make_vit_fixtures.py — PyTorch autograd goldens for the image-encoder backward, LoRA and AdamW
(issue 16: tests/cpu/test_vit_ops.c, tests/model/test_vit_backward.c). Run from the repository
root:

    python3 scripts/make_vit_fixtures.py      # writes tests/fixtures/vit/

Promises:
- Deterministic (fixed seeds); small .npy files (float32 / int32, C order) and two F32
  safetensors files, < 1.5 MB in all.
- Per op (prefix op_), inputs and autograd's gradients in float64 from the float32 inputs,
  rounded once to float32: LayerNorm weight/bias gradients; the vision embedding's patch / class
  / position gradients; im2col's pixel gradient; LoRA on the v block of a fused qkv (forward
  output, and the down / up / input gradients); torch.nn.utils.clip_grad_norm_ on three tensors,
  clipping and not (in float32: the op reproduces torch's float arithmetic).
- Model (prefix model_): the tiny CLIP of scripts/make_fixtures.py (rebuilt exactly by
  make_backward_fixtures.tiny_model, which checks a committed golden), through HF's own vision
  modules in float64. For pixels P (3,3,32,32) and G (3,E): the features F, and the gradients of
  <G,F> w.r.t. every visual parameter, named and shaped as the weights file stores them
  (in_proj = the q, k, v gradients stacked; visual.proj = visual_projection's gradientᵀ (Cv,E)) in
  model_grads.safetensors, plus dP; dP of <G, F/||F||> too.
- LoRA (prefix lora_): r = 4, α = 8 on q_proj and v_proj of both vision layers (PEFT's
  lora_B(lora_A(x)) * α/r), the loss L = mean CE(s · normalize(F) Wᵀ, y) with fixed normalised
  class vectors W (5,E), s = 10, labels y. Two cases, each with the trainable arena in laic's
  layout (per block: q_down (r,C), q_up (C,r), v_down, v_up): "lora" with a random U (so dD is
  not 0) and clipping to max norm 0.05, "lora0" at the real init (U = 0: dD = 0 exactly) without
  clipping; each gives params0, the loss, the gradients, and the parameters after
  clip_grad_norm_ + one torch.optim.AdamW step (foreach=False, lr 1e-2, wd 0.1) in float32.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import make_fixtures as mf  # noqa: E402
import make_backward_fixtures as mb  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "vit")


def save(name, a):
    if torch.is_tensor(a):
        a = a.detach().numpy()
    mf.save(OUT, name, a)


def save_st(name, tensors):
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
              os.path.join(OUT, name + ".safetensors"), metadata={"format": "laic-vit-golden"})


def im2col(x, P):
    B, _, H, _ = x.shape
    G = H // P
    return x.reshape(B, 3, G, P, G, P).permute(0, 2, 4, 1, 3, 5).reshape(B * G * G, 3 * P * P)


# --- ops -------------------------------------------------------------------------------------

def make_ops(g):
    f32 = lambda *s, scale=1.0: mf.f32(*s, scale=scale, gen=g)  # noqa: E731
    # layernorm weight / bias gradients (mean and rstd come from laic's own forward)
    N, C = 9, 40
    inp = f32(N, C) * torch.linspace(0.2, 3, N).float()[:, None] + 1.5
    w, b, dout = 1 + 0.3 * f32(C), 0.2 * f32(C), f32(N, C)
    wd, bd = w.double().requires_grad_(True), b.double().requires_grad_(True)
    (F.layer_norm(inp.double(), (C,), wd, bd, 1e-5) * dout.double()).sum().backward()
    for n, a in [("inp", inp), ("weight", w), ("bias", b), ("dout", dout), ("dweight", wd.grad),
                 ("dbias", bd.grad)]:
        save("op_lnw_" + n, a)
    # vision embed: out (B,1+NP,C) = [class | patches] + pos
    B, NP, C = 3, 4, 8
    pe, ce, pos, dout = f32(B, NP, C), f32(C), f32(NP + 1, C), f32(B, NP + 1, C)
    xs = [t.double().requires_grad_(True) for t in (pe, ce, pos)]
    out = torch.cat([xs[1].expand(B, 1, C), xs[0]], 1) + xs[2]
    (out * dout.double()).sum().backward()
    save("op_vemb_dout", dout)
    for n, x in zip(("dpatch", "dclass", "dpos"), xs):
        save("op_vemb_" + n, x.grad)
    # im2col backward: pixels (2,3,12,12), P = 4
    pix = f32(2, 3, 12, 12).double().requires_grad_(True)
    dp = f32(2 * 9, 48)
    (im2col(pix, 4) * dp.double()).sum().backward()
    save("op_i2c_dpatches", dp)
    save("op_i2c_dpixels", pix.grad)
    # LoRA on the v block of qkv (M, 3N): out = qkv[:, 2N:] + scale · (x Dᵀ) Uᵀ
    M, K, Nn, r, scale = 7, 10, 6, 3, 2.5
    x, D, U, qkv, dqkv = f32(M, K), f32(r, K), f32(Nn, r), f32(M, 3 * Nn), f32(M, 3 * Nn)
    xd, Dd, Ud = (t.double().requires_grad_(True) for t in (x, D, U))
    y = qkv.double().clone()
    y[:, 2 * Nn:] = y[:, 2 * Nn:] + ((xd @ Dd.t()) @ Ud.t()) * scale
    (y * dqkv.double()).sum().backward()
    for n, a in [("inp", x), ("down", D), ("up", U), ("qkv", qkv), ("dqkv", dqkv),
                 ("out", y.detach()), ("dinp", xd.grad), ("ddown", Dd.grad), ("dup", Ud.grad)]:
        save("op_lora_" + n, a)
    save("op_lora_cfg", np.array([M, K, Nn, r, scale], dtype=np.float32))
    # clip_grad_norm_ (float32, as the op): three tensors, max norms that clip and that do not
    gs = [f32(5, 7), f32(33), f32(2, 3, 4, scale=3.0)]
    save("op_clip_g", torch.cat([t.reshape(-1) for t in gs]))
    norms, after = [], []
    for max_norm in (1.5, 1e3):
        ps = [torch.zeros_like(t, requires_grad=True) for t in gs]
        for p, t in zip(ps, gs):
            p.grad = t.clone()
        norms.append(float(torch.nn.utils.clip_grad_norm_(ps, max_norm)))
        after.append(torch.cat([p.grad.reshape(-1) for p in ps]))
    save("op_clip_cfg", np.array([1.5, 1e3] + norms, dtype=np.float32))
    save("op_clip_after", torch.stack(after))


# --- model -----------------------------------------------------------------------------------

def vision_names(md):
    """(OpenAI name, function of HF's parameter dict -> tensor in the file's orientation)."""
    v = "vision_model."
    out = [("visual.conv1.weight", lambda p: p[v + "embeddings.patch_embedding.weight"]),
           ("visual.class_embedding", lambda p: p[v + "embeddings.class_embedding"]),
           ("visual.positional_embedding", lambda p: p[v + "embeddings.position_embedding.weight"]),
           ("visual.ln_pre.weight", lambda p: p[v + "pre_layrnorm.weight"]),
           ("visual.ln_pre.bias", lambda p: p[v + "pre_layrnorm.bias"])]
    for i in range(md.config.vision_config.num_hidden_layers):
        s, o = f"{v}encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        out.append((o + "attn.in_proj_weight",
                    lambda p, s=s: torch.cat([p[s + f"self_attn.{q}_proj.weight"] for q in "qkv"])))
        out.append((o + "attn.in_proj_bias",
                    lambda p, s=s: torch.cat([p[s + f"self_attn.{q}_proj.bias"] for q in "qkv"])))
        for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                     ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            out.append((o + a + ".weight", lambda p, k=s + b + ".weight": p[k]))
            out.append((o + a + ".bias", lambda p, k=s + b + ".bias": p[k]))
    out += [("visual.ln_post.weight", lambda p: p[v + "post_layernorm.weight"]),
            ("visual.ln_post.bias", lambda p: p[v + "post_layernorm.bias"]),
            ("visual.proj", lambda p: p["visual_projection.weight"].t())]
    return out


def image_features(md, pix):
    return mf.features(md.get_image_features(pixel_values=pix))


def make_model(g, md):
    B, E = 3, md.config.projection_dim
    pix = mf.f32(B, 3, 32, 32, gen=g)
    G = mf.f32(B, E, gen=g)
    # the rebuilt model is the committed one: its image features match the forward golden
    ref = np.load(os.path.join(mf.CLIPD, "image_features.npy"))
    cp = torch.from_numpy(np.load(os.path.join(mf.CLIPD, "pixels.npy"))).double()
    with torch.no_grad():
        err = np.abs(image_features(md, cp).numpy() - ref).max()
    assert err < 1e-6, f"tiny model image features differ from the committed golden ({err})"
    names = vision_names(md)
    md.zero_grad()
    x = pix.double().requires_grad_(True)
    feat = image_features(md, x)
    (feat * G.double()).sum().backward()
    grads = {k: v.grad for k, v in md.named_parameters() if v.grad is not None}
    save_st("model_grads", {n: f(grads).numpy() for n, f in names})
    save("model_pixels", pix)
    save("model_grad", G)
    save("model_features", feat.detach())
    save("model_dpixels", x.grad)
    x.grad = None
    md.zero_grad()
    (F.normalize(image_features(md, x), dim=1) * G.double()).sum().backward()
    save("model_dpixels_norm", x.grad)
    md.zero_grad()
    return pix


class LoRA(torch.nn.Module):
    """PEFT's Linear LoRA without dropout: base(x) + lora_B(lora_A(x)) * scaling."""

    def __init__(self, base, down, up, scale):
        super().__init__()
        self.base, self.scale = base, scale
        self.down = torch.nn.Parameter(down)
        self.up = torch.nn.Parameter(up)

    def forward(self, x):
        return self.base(x) + (x @ self.down.t()) @ self.up.t() * self.scale


def make_lora(g, md, pix):
    import copy
    r, alpha, s, K, lr, wd = 4, 8.0, 10.0, 5, 1e-2, 0.1
    C = md.config.vision_config.hidden_size
    E = md.config.projection_dim
    W = F.normalize(mf.f32(K, E, gen=g).double(), dim=1).float()
    y = torch.tensor([3, 0, 4])
    save("lora_W", W)
    save("lora_y", y)
    save("lora_cfg", np.array([r, alpha, s, lr, wd], dtype=np.float32))
    nl = md.config.vision_config.num_hidden_layers
    bound = 1.0 / np.sqrt(C)   # kaiming_uniform_(a=√5) on (r, C): U(−1/√C, 1/√C)
    for case, u_scale, max_norm in (("lora", 0.05, 0.05), ("lora0", 0.0, 0.0)):
        arena = []
        for _ in range(nl):
            for _ in "qv":
                arena.append(((torch.rand(r, C, generator=g, dtype=torch.float64) * 2 - 1)
                              * bound).float())
                arena.append(mf.f32(C, r, scale=u_scale, gen=g))
        save(case + "_params0", torch.cat([a.reshape(-1) for a in arena]))
        # float64 model + adapters: the loss and the gradients
        m64 = copy.deepcopy(md)
        ad = []
        for i in range(nl):
            at = m64.vision_model.encoder.layers[i].self_attn
            for j, name in enumerate(("q_proj", "v_proj")):
                lo = LoRA(getattr(at, name), arena[4 * i + 2 * j].double().clone(),
                          arena[4 * i + 2 * j + 1].double().clone(), alpha / r)
                setattr(at, name, lo)
                ad += [lo.down, lo.up]
        for p in m64.parameters():
            p.requires_grad_(False)
        for p in ad:
            p.requires_grad_(True)
        feat = image_features(m64, pix.double())
        logits = s * F.normalize(feat, dim=1) @ W.double().t()
        loss = F.cross_entropy(logits, y)
        loss.backward()
        save(case + "_loss", np.array([loss.item()], dtype=np.float32))
        grads = torch.cat([p.grad.reshape(-1) for p in ad])
        save(case + "_grads", grads)
        # one step in float32 from the float64 gradients rounded once: clip, then AdamW
        ps = [a.clone().requires_grad_(True) for a in arena]
        for p, q in zip(ps, ad):
            p.grad = q.grad.float()
        norm = float("nan")
        if max_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(ps, max_norm))
        opt = torch.optim.AdamW(ps, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd,
                                foreach=False)
        opt.step()
        save(case + "_params1", torch.cat([p.detach().reshape(-1) for p in ps]))
        save(case + "_step", np.array([max_norm, norm], dtype=np.float32))
        print(f"{case}: loss {loss.item():.6f}, grad norm {grads.norm().item():.4g}, clip {max_norm}")


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(1616)
    make_ops(g)
    md = mb.tiny_model()
    pix = make_model(g, md)
    make_lora(g, md, pix)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"vit fixtures written: {total / 1e6:.3f} MB in tests/fixtures/vit")
    if total > 1.5e6:
        sys.exit("fixture budget (1.5 MB) exceeded")


if __name__ == "__main__":
    main()
