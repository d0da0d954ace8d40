#!/usr/bin/env python3
"""
make_fixtures.py — goldens for the CPU ops and the CLIP forward (tests/cpu/test_ops_cpu.c,
tests/model/test_clip.c). Run from the repository root:

    python3 scripts/make_fixtures.py            # writes tests/fixtures/ops/ and tests/fixtures/clip/

Promises:
- Deterministic (fixed seeds); every file is a small .npy (float32 / int32, C order) or the tiny
  weights file; the whole output stays under 8 MB (the tiny model's 49408x32 token table
  dominates, which is why the weights are stored as F16).
- ops/: per-op inputs and PyTorch outputs on tiny shapes, computed in float64 from the float32
  inputs and rounded once to float32, so the golden carries no fp32 rounding of its own:
  matmul (with and without bias), layernorm (+ mean, rstd), l2norm (incl. a zero row),
  quickgelu (incl. |x| up to 100), attention (causal and not, + probabilities),
  im2col and the patch conv (F.conv2d), vision / token embeddings, pos_add, gather_rows.
- clip/: a random-init transformers.CLIPModel in laic's "tiny" preset (image 32, patch 8, vision
  64x2 layers x4 heads, mlp 256; text 77 ctx, vocab 49408, 32 wide x2 layers x4 heads, mlp 128;
  projection 32; quick_gelu; LN eps 1e-5). Every 1-D parameter (LayerNorm weights/biases, Linear
  biases, class embedding) is perturbed so that a swapped or dropped parameter changes the result.
  The model is rounded to fp16 and back, converted with scripts/convert_weights.py --from hf
  --dtype f16 (so the file holds exactly the weights the goldens use), and the goldens are HF's
  get_image_features / get_text_features in float64; the embeddings entry point is checked with a
  manual forward through HF's text-model modules (embeddings + positions -> encoder with the
  causal mask -> final_layer_norm -> EOT row -> text_projection).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS = os.path.join(ROOT, "tests", "fixtures", "ops")
CLIPD = os.path.join(ROOT, "tests", "fixtures", "clip")


def save(d, name, a):
    a = np.ascontiguousarray(a)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    if a.dtype == np.int64:
        a = a.astype(np.int32)
    np.save(os.path.join(d, name + ".npy"), a)


def f32(*shape, scale=1.0, gen=None):
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).float()


# --- per-op goldens ----------------------------------------------------------------------------

def make_ops():
    os.makedirs(OPS, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    d = lambda t: t.double()  # noqa: E731  (goldens in float64 from the float32 inputs)

    # matmul: out (M,N) = inp (M,K) @ w(N,K)^T + b ; odd sizes so no blocking hides a bug
    M, K, N = 7, 13, 11
    inp, w, b = f32(M, K, gen=g), f32(N, K, gen=g), f32(N, gen=g)
    save(OPS, "matmul_inp", inp); save(OPS, "matmul_weight", w); save(OPS, "matmul_bias", b)
    save(OPS, "matmul_out", F.linear(d(inp), d(w), d(b)))
    save(OPS, "matmul_out_nobias", F.linear(d(inp), d(w)))

    # layernorm: rows with a large mean offset (a naive one-pass variance would lose digits)
    N, C = 6, 24
    x = f32(N, C, scale=2.0, gen=g) + 3.0
    lw, lb = 1 + f32(C, scale=0.3, gen=g), f32(C, scale=0.3, gen=g)
    save(OPS, "layernorm_inp", x); save(OPS, "layernorm_weight", lw); save(OPS, "layernorm_bias", lb)
    xd = d(x)
    save(OPS, "layernorm_out", F.layer_norm(xd, (C,), d(lw), d(lb), 1e-5))
    save(OPS, "layernorm_mean", xd.mean(-1))
    save(OPS, "layernorm_rstd", 1.0 / torch.sqrt(xd.var(-1, unbiased=False) + 1e-5))

    # l2norm, with an all-zero row (F.normalize gives zeros, not NaN)
    x = f32(5, 10, gen=g)
    x[2] = 0
    save(OPS, "l2norm_inp", x)
    save(OPS, "l2norm_out", F.normalize(d(x), dim=-1, eps=1e-12))

    # quickgelu over a wide range, including where exp(-1.702x) overflows in float32
    x = torch.cat([f32(64, scale=3.0, gen=g), torch.tensor([-100.0, -60.0, -20.0, 0.0, 20.0, 60.0, 100.0])])
    save(OPS, "quickgelu_inp", x)
    xd = d(x)
    save(OPS, "quickgelu_out", xd * torch.sigmoid(1.702 * xd))

    # attention: qkv (B,T,3C), NH heads, vs scaled_dot_product_attention in float64
    B, T, C, NH = 2, 7, 12, 3
    hs = C // NH
    qkv = f32(B, T, 3 * C, gen=g)
    save(OPS, "attention_qkv", qkv)
    q, k, v = d(qkv).split(C, dim=-1)
    heads = lambda t: t.view(B, T, NH, hs).transpose(1, 2)  # noqa: E731  (B,NH,T,hs)
    for causal in (0, 1):
        s = heads(q) @ heads(k).transpose(-1, -2) / hs ** 0.5
        if causal:
            s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        p = torch.softmax(s, -1)
        o = (p @ heads(v)).transpose(1, 2).reshape(B, T, C)
        o2 = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=bool(causal))
        assert torch.allclose(o, o2.transpose(1, 2).reshape(B, T, C), atol=1e-12)
        tag = "causal" if causal else "full"
        save(OPS, f"attention_out_{tag}", o)
        save(OPS, f"attention_att_{tag}", p)

    # im2col and the patch conv: pixels (B,3,H,H), P; conv weight (OC,3,P,P), no bias
    B, H, P, OC = 2, 12, 4, 5
    G = H // P
    pix, cw = f32(B, 3, H, H, gen=g), f32(OC, 3, P, P, gen=g)
    save(OPS, "im2col_pixels", pix); save(OPS, "conv_weight", cw)
    # unfold gives (B, 3*P*P, G*G) with columns ordered (c,py,px) and patches (gy,gx)
    save(OPS, "im2col_patches", F.unfold(d(pix), P, stride=P).transpose(1, 2).reshape(B * G * G, -1))
    conv = F.conv2d(d(pix), d(cw), stride=P)  # (B,OC,G,G)
    save(OPS, "conv_out", conv.permute(0, 2, 3, 1).reshape(B * G * G, OC))

    # embeddings: vision (class token + patches + positions), tokens, pos_add, gather_rows
    B, NP, C, V, T = 2, 4, 6, 9, 5
    pe, ce, pos = f32(B, NP, C, gen=g), f32(C, gen=g), f32(NP + 1, C, gen=g)
    save(OPS, "vembed_patch", pe); save(OPS, "vembed_class", ce); save(OPS, "vembed_pos", pos)
    save(OPS, "vembed_out", torch.cat([d(ce).expand(B, 1, C), d(pe)], 1) + d(pos))
    tok = torch.randint(0, V, (B, T), generator=g)
    te, tp = f32(V, C, gen=g), f32(T, C, gen=g)
    save(OPS, "tembed_tokens", tok); save(OPS, "tembed_table", te); save(OPS, "tembed_pos", tp)
    save(OPS, "tembed_out", F.embedding(tok, d(te)) + d(tp))
    emb = f32(B, T, C, gen=g)
    save(OPS, "posadd_embeds", emb)
    save(OPS, "posadd_out", d(emb) + d(tp))
    idx = torch.tensor([3, 0])
    save(OPS, "gather_idx", idx)
    save(OPS, "gather_out", d(emb)[torch.arange(B), idx])


# --- tiny CLIP ---------------------------------------------------------------------------------

def tiny_config():
    from transformers import CLIPConfig
    return CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                         hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=49406,
                         eos_token_id=49407),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                           num_attention_heads=4, image_size=32, patch_size=8,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=32)


def features(r):
    # transformers >= 5 returns a ModelOutput whose pooler_output holds the projected features
    return r if torch.is_tensor(r) else r.pooler_output


def manual_text_embeds(model, embeds, eot):
    """HF text model from prompt embeddings: + positions -> causal encoder -> ln -> EOT -> proj."""
    from transformers.masking_utils import create_causal_mask
    tm = model.text_model
    T = embeds.shape[1]
    h = embeds + tm.embeddings.position_embedding.weight[:T]
    mask = create_causal_mask(config=tm.config, inputs_embeds=h, attention_mask=None,
                              past_key_values=None)
    h = tm.encoder(inputs_embeds=h, attention_mask=mask, is_causal=True).last_hidden_state
    h = tm.final_layer_norm(h)
    return model.text_projection(h[torch.arange(h.shape[0]), eot])


def make_clip():
    from transformers import CLIPModel
    os.makedirs(CLIPD, exist_ok=True)
    torch.manual_seed(0)
    model = CLIPModel(tiny_config()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:   # LN weights/biases, Linear biases, class embedding
                p.add_(0.1 * torch.randn_like(p))
        model.half().float()   # the weights file is F16: both sides use the rounded values
    g = torch.Generator().manual_seed(99)

    with tempfile.TemporaryDirectory() as td:
        model.save_pretrained(td, safe_serialization=True)
        out = os.path.join(CLIPD, "tiny_f16.safetensors")
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert_weights.py"),
                        "--from", "hf", td, out, "--dtype", "f16"], check=True)

    md = model.double()
    # images: normalised pixels (B,3,32,32)
    pix = f32(4, 3, 32, 32, gen=g)
    save(CLIPD, "pixels", pix)
    with torch.no_grad():
        save(CLIPD, "image_features", features(md.get_image_features(pixel_values=pix.double())))

    # tokens (B,77): SOT, random ids, EOT at varied positions (1 = empty text, 76 = full context),
    # zero padding after, as the tokenizer writes them
    eots = [5, 1, 20, 76, 9]
    tok = torch.zeros(len(eots), 77, dtype=torch.int64)
    for i, e in enumerate(eots):
        tok[i, 0] = 49406
        tok[i, 1:e] = torch.randint(1, 49406, (e - 1,), generator=g)
        tok[i, e] = 49407
    save(CLIPD, "tokens", tok)
    with torch.no_grad():
        tf = features(md.get_text_features(input_ids=tok))
    save(CLIPD, "text_features", tf)
    # a batch whose longest EOT is short: exercises the truncated path on its own
    short = tok[[0, 4, 1]]
    with torch.no_grad():
        save(CLIPD, "tokens_short", short)
        save(CLIPD, "text_features_short", features(md.get_text_features(input_ids=short)))

    # prompt-learning entry point: embeds (B,T,Ct) before positions, EOT positions (B)
    T = 12
    emb = f32(3, T, 32, scale=0.05, gen=g)
    eot = torch.tensor([11, 4, 8])
    save(CLIPD, "embeds", emb)
    save(CLIPD, "embeds_eot", eot)
    with torch.no_grad():
        ef = manual_text_embeds(md, emb.double(), eot)
        # the manual path must agree with HF's own on token embeddings
        te = md.text_model.embeddings.token_embedding(tok)
        chk = manual_text_embeds(md, te, tok.argmax(-1))
        assert torch.allclose(chk, tf, atol=1e-10), "manual text forward disagrees with HF"
    save(CLIPD, "embeds_features", ef)


def main():
    torch.set_num_threads(2)
    make_ops()
    make_clip()
    total = 0
    for d in (OPS, CLIPD):
        for f in os.listdir(d):
            total += os.path.getsize(os.path.join(d, f))
    print(f"fixtures written: {total / 1e6:.2f} MB in tests/fixtures/ops and tests/fixtures/clip")
    if total > 8e6:
        sys.exit("fixture budget (8 MB) exceeded")


if __name__ == "__main__":
    main()
