#!/usr/bin/env python3
"""
convert_weights.py — converts a CLIP checkpoint into laic's weights file (weights/FORMAT.md).

    python3 scripts/convert_weights.py --from openai    ViT-B-32.pt   W.safetensors [--dtype f32]
    python3 scripts/convert_weights.py --from hf        HF_MODEL_DIR  W.safetensors
    python3 scripts/convert_weights.py --from open_clip ckpt.pt       W.safetensors
    python3 scripts/convert_weights.py --self-test

Promises:
- The output is one safetensors file with OpenAI's tensor names, one storage dtype (f32, f16 or
  bf16; default f32) and every architecture number, the format name/version and the provenance
  (source kind, sha256 of the source file) in __metadata__. Tensors are laid out in the fixed
  order of FORMAT.md (the C loader's carve order), 8-byte aligned data section.
- The output is written atomically (temp file + rename); on any error nothing is left behind.
- Architecture numbers come from the tensors' shapes (OpenAI's build_model rules) or, for HF,
  from config.json; heads follow OpenAI's width/64 rule unless --vision-heads/--text-heads say
  otherwise (needed for small models such as laic's "tiny" preset, whose heads are not width/64).
- HF models must use hidden_act == quick_gelu (OpenAI's activation); anything else is refused.

--self-test builds a tiny random transformers CLIPModel, converts it via every route
(hf, openai plain state dict, open_clip with a `module.` prefix and a `state_dict` key), and checks
(a) the converted tensors against OpenAI-layout tensors taken from the HF modules, (b) an
independent OpenAI-style forward pass on the converted weights against HF's image/text features,
(c) that the three routes give identical files up to provenance, (d) f16/bf16 rounding, and
(e) the refusals (non-quick_gelu model, missing tensor).
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import tempfile

FORMAT_NAME = "laic-clip"
FORMAT_VERSION = "1"
OFFICIAL_VIT_B_32_SHA256 = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"

BLOCK_PARTS = [  # per residual block, in carve order: (suffix, shape as a function of (C, H))
    ("ln_1.weight", lambda C, H: [C]),
    ("ln_1.bias", lambda C, H: [C]),
    ("attn.in_proj_weight", lambda C, H: [3 * C, C]),
    ("attn.in_proj_bias", lambda C, H: [3 * C]),
    ("attn.out_proj.weight", lambda C, H: [C, C]),
    ("attn.out_proj.bias", lambda C, H: [C]),
    ("ln_2.weight", lambda C, H: [C]),
    ("ln_2.bias", lambda C, H: [C]),
    ("mlp.c_fc.weight", lambda C, H: [H, C]),
    ("mlp.c_fc.bias", lambda C, H: [H]),
    ("mlp.c_proj.weight", lambda C, H: [C, H]),
    ("mlp.c_proj.bias", lambda C, H: [C]),
]

ARCH_KEYS = ["image_size", "patch_size", "vision_width", "vision_layers", "vision_heads",
             "vision_mlp", "context_length", "vocab_size", "text_width", "text_layers",
             "text_heads", "text_mlp", "embed_dim"]


class ConvertError(Exception):
    pass


def tensor_layout(a):
    """[(name, shape)] in the fixed file/carve order of FORMAT.md for architecture dict a."""
    Cv, P, G = a["vision_width"], a["patch_size"], a["image_size"] // a["patch_size"]
    Ct, E = a["text_width"], a["embed_dim"]
    out = [("visual.conv1.weight", [Cv, 3, P, P]),
           ("visual.class_embedding", [Cv]),
           ("visual.positional_embedding", [G * G + 1, Cv]),
           ("visual.ln_pre.weight", [Cv]), ("visual.ln_pre.bias", [Cv])]
    for i in range(a["vision_layers"]):
        for suf, shp in BLOCK_PARTS:
            out.append((f"visual.transformer.resblocks.{i}.{suf}", shp(Cv, a["vision_mlp"])))
    out += [("visual.ln_post.weight", [Cv]), ("visual.ln_post.bias", [Cv]),
            ("visual.proj", [Cv, E]),
            ("token_embedding.weight", [a["vocab_size"], Ct]),
            ("positional_embedding", [a["context_length"], Ct])]
    for i in range(a["text_layers"]):
        for suf, shp in BLOCK_PARTS:
            out.append((f"transformer.resblocks.{i}.{suf}", shp(Ct, a["text_mlp"])))
    out += [("ln_final.weight", [Ct]), ("ln_final.bias", [Ct]),
            ("text_projection", [Ct, E]), ("logit_scale", [])]
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- sources ------------------------------------------------------------------------------------

def arch_from_openai_sd(sd, vision_heads=None, text_heads=None):
    """Architecture numbers from OpenAI-named tensors (the rules of OpenAI clip/model.py build_model)."""
    need = ["visual.conv1.weight", "visual.positional_embedding", "text_projection",
            "positional_embedding", "token_embedding.weight", "ln_final.weight"]
    for k in need:
        if k not in sd:
            raise ConvertError(f"missing tensor {k} (is this an OpenAI-layout CLIP ViT state dict?)")
    Cv = sd["visual.conv1.weight"].shape[0]
    P = sd["visual.conv1.weight"].shape[-1]
    G = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    Ct = sd["ln_final.weight"].shape[0]

    def nlayers(prefix):
        return len({k.split(".")[len(prefix.split("."))] for k in sd
                    if k.startswith(prefix + ".") and k.endswith(".ln_1.weight")})

    a = dict(image_size=P * G, patch_size=P, vision_width=Cv,
             vision_layers=nlayers("visual.transformer.resblocks"),
             vision_heads=vision_heads or Cv // 64,
             vision_mlp=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
             context_length=sd["positional_embedding"].shape[0],
             vocab_size=sd["token_embedding.weight"].shape[0], text_width=Ct,
             text_layers=nlayers("transformer.resblocks"),
             text_heads=text_heads or Ct // 64,
             text_mlp=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
             embed_dim=sd["text_projection"].shape[1])
    for k in ("vision_heads", "text_heads"):
        if a[k] <= 0:
            raise ConvertError(f"{k} = {a[k]}: width < 64, give --{k.replace('_', '-')}")
    return a


def load_openai(path, vision_heads=None, text_heads=None):
    import torch
    import warnings
    try:  # the official release is a TorchScript archive
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sd = torch.jit.load(path, map_location="cpu").state_dict()
    except Exception:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise ConvertError(f"{path}: not a state dict or TorchScript CLIP archive")
    sd = {k: v for k, v in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    return sd, arch_from_openai_sd(sd, vision_heads, text_heads)


def load_open_clip(path, vision_heads=None, text_heads=None):
    import torch
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(ck, dict) and "state_dict" in ck and isinstance(ck["state_dict"], dict):
        ck = ck["state_dict"]
    if not isinstance(ck, dict):
        raise ConvertError(f"{path}: not an open_clip checkpoint (no state dict)")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in ck.items()}
    sd = {k: v for k, v in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    if "visual.attnpool.c_proj.weight" in sd or "visual.layer1.0.conv1.weight" in sd:
        raise ConvertError(f"{path}: ResNet CLIP towers are not supported (ViT only)")
    return sd, arch_from_openai_sd(sd, vision_heads, text_heads)


def load_hf(d):
    import torch
    cfg_path = os.path.join(d, "config.json")
    if not os.path.isfile(cfg_path):
        raise ConvertError(f"{d}: no config.json (expected a transformers CLIPModel save_pretrained dir)")
    with open(cfg_path) as f:
        cfg = json.load(f)
    vc, tc = cfg.get("vision_config", {}), cfg.get("text_config", {})
    for name, c in (("vision_config", vc), ("text_config", tc)):
        act = c.get("hidden_act", "quick_gelu")
        if act != "quick_gelu":
            raise ConvertError(f"{cfg_path}: {name}.hidden_act is '{act}', laic implements OpenAI "
                               "CLIP's quick_gelu only ---> HINT: use a CLIP checkpoint with "
                               "hidden_act=quick_gelu")
        eps = c.get("layer_norm_eps", 1e-5)
        if abs(eps - 1e-5) > 1e-12:
            raise ConvertError(f"{cfg_path}: {name}.layer_norm_eps is {eps}, laic uses 1e-5")
    st = os.path.join(d, "model.safetensors")
    bn = os.path.join(d, "pytorch_model.bin")
    if os.path.isfile(st):
        from safetensors.torch import load_file
        hf, src = load_file(st), st
    elif os.path.isfile(bn):
        hf, src = torch.load(bn, map_location="cpu", weights_only=True), bn
    else:
        raise ConvertError(f"{d}: no model.safetensors or pytorch_model.bin (sharded checkpoints "
                           "are not supported)")

    def g(k):
        if k not in hf:
            raise ConvertError(f"{src}: missing tensor {k}")
        return hf[k]

    sd = {}
    sd["visual.conv1.weight"] = g("vision_model.embeddings.patch_embedding.weight")
    sd["visual.class_embedding"] = g("vision_model.embeddings.class_embedding")
    sd["visual.positional_embedding"] = g("vision_model.embeddings.position_embedding.weight")
    sd["visual.ln_pre.weight"] = g("vision_model.pre_layrnorm.weight")
    sd["visual.ln_pre.bias"] = g("vision_model.pre_layrnorm.bias")
    sd["visual.ln_post.weight"] = g("vision_model.post_layernorm.weight")
    sd["visual.ln_post.bias"] = g("vision_model.post_layernorm.bias")
    sd["visual.proj"] = g("visual_projection.weight").t()
    sd["token_embedding.weight"] = g("text_model.embeddings.token_embedding.weight")
    sd["positional_embedding"] = g("text_model.embeddings.position_embedding.weight")
    sd["ln_final.weight"] = g("text_model.final_layer_norm.weight")
    sd["ln_final.bias"] = g("text_model.final_layer_norm.bias")
    sd["text_projection"] = g("text_projection.weight").t()
    sd["logit_scale"] = g("logit_scale").reshape([])
    for tower, dst, c in (("vision_model", "visual.transformer", vc), ("text_model", "transformer", tc)):
        n = int(c.get("num_hidden_layers", 12))
        for i in range(n):
            s, o = f"{tower}.encoder.layers.{i}.", f"{dst}.resblocks.{i}."
            # nn.MultiheadAttention's in_proj = the q, k, v projections stacked as row blocks
            sd[o + "attn.in_proj_weight"] = torch.cat([g(s + f"self_attn.{p}_proj.weight") for p in "qkv"])
            sd[o + "attn.in_proj_bias"] = torch.cat([g(s + f"self_attn.{p}_proj.bias") for p in "qkv"])
            for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                         ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                sd[o + a + ".weight"] = g(s + b + ".weight")
                sd[o + a + ".bias"] = g(s + b + ".bias")
        extra = [k for k in hf if k.startswith(f"{tower}.encoder.layers.{n}.")]
        if extra:
            raise ConvertError(f"{src}: {tower} has more layers than config.json says ({n})")
    a = arch_from_openai_sd(sd, int(vc.get("num_attention_heads", 12)),
                            int(tc.get("num_attention_heads", 8)))
    if a["vision_width"] % a["vision_heads"] or a["text_width"] % a["text_heads"]:
        raise ConvertError(f"{cfg_path}: width not divisible by num_attention_heads")
    return sd, a, src


# --- writer -------------------------------------------------------------------------------------

DTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


def tensor_bytes(t, dtype):
    import torch
    tdt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    t = t.detach().to("cpu").to(torch.float32).to(tdt).contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes()  # little-endian on every platform we run on


def write_weights(sd, arch, out, dtype="F32", source="", source_sha256="", extra_meta=None):
    """Checks sd against arch and writes the laic weights file atomically."""
    layout = tensor_layout(arch)
    names = {n for n, _ in layout}
    missing = [n for n, _ in layout if n not in sd]
    if missing:
        raise ConvertError(f"missing tensor {missing[0]} ({len(missing)} missing)")
    extra = sorted(k for k in sd if k not in names)
    if extra:
        raise ConvertError(f"unexpected tensor {extra[0]} ({len(extra)} unexpected)")
    header, blobs, off = {}, [], 0
    for n, shape in layout:
        if list(sd[n].shape) != shape:
            raise ConvertError(f"tensor {n}: shape {list(sd[n].shape)}, expected {shape}")
        b = tensor_bytes(sd[n], dtype)
        header[n] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    meta.update({k: str(int(arch[k])) for k in ARCH_KEYS})
    meta["source"] = source
    meta["source_sha256"] = source_sha256
    meta.update(extra_meta or {})
    hdr = json.dumps({"__metadata__": meta, **header}, separators=(",", ":")).encode()
    hdr += b" " * ((8 - len(hdr) % 8) % 8)  # data section 8-byte aligned (safetensors allows padding)
    d = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(out) + ".tmp.", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hdr)))
            f.write(hdr)
            for b in blobs:
                f.write(b)
        um = os.umask(0)
        os.umask(um)
        os.chmod(tmp, 0o666 & ~um)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def convert(kind, src, out, dtype="f32", vision_heads=None, text_heads=None, quiet=False):
    if dtype not in DTYPES:
        raise ConvertError(f"--dtype {dtype}: expected f32, f16 or bf16")
    if kind == "hf":
        sd, arch, wfile = load_hf(src)
        sha = sha256_file(wfile)
    elif kind in ("openai", "open_clip"):
        if not os.path.isfile(src):
            raise ConvertError(f"{src}: no such file")
        sd, arch = (load_openai if kind == "openai" else load_open_clip)(src, vision_heads, text_heads)
        sha = sha256_file(src)
    else:
        raise ConvertError(f"--from {kind}: expected openai, hf or open_clip")
    write_weights(sd, arch, out, DTYPES[dtype], kind, sha)
    if not quiet:
        print(f"{out}: {', '.join(f'{k}={arch[k]}' for k in ARCH_KEYS)}, dtype={DTYPES[dtype]}")
        print(f"source {kind} sha256 {sha}")
        if kind == "openai" and sha == OFFICIAL_VIT_B_32_SHA256:
            print("source is OpenAI's official ViT-B-32.pt")
    return arch, sha


# --- self-test ----------------------------------------------------------------------------------

def read_weights(path):
    """Minimal independent reader: (metadata, {name: float32 tensor}) from a laic weights file."""
    import torch
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__")
    tdt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    out = {}
    for k, v in hdr.items():
        a, b = v["data_offsets"]
        buf = bytearray(raw[8 + n + a:8 + n + b])
        t = torch.frombuffer(buf, dtype=torch.uint8).view(tdt[v["dtype"]]).reshape(v["shape"])
        out[k] = t.to(torch.float32)
    return meta, out, list(hdr.keys())


def openai_forward(w, a, pixels, tokens):
    """OpenAI CLIP ViT encode_image / encode_text written from the paper's model (not HF)."""
    import torch
    import torch.nn.functional as F

    def block(x, p, heads, causal):
        B, T, C = x.shape
        h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], 1e-5)
        qkv = h @ w[p + "attn.in_proj_weight"].t() + w[p + "attn.in_proj_bias"]
        q, k, v = [t.reshape(B, T, heads, C // heads).transpose(1, 2) for t in qkv.split(C, -1)]
        s = q @ k.transpose(-1, -2) / (C // heads) ** 0.5
        if causal:
            s = s + torch.full((T, T), float("-inf")).triu(1)
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + o @ w[p + "attn.out_proj.weight"].t() + w[p + "attn.out_proj.bias"]
        h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], 1e-5)
        h = h @ w[p + "mlp.c_fc.weight"].t() + w[p + "mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h)
        return x + h @ w[p + "mlp.c_proj.weight"].t() + w[p + "mlp.c_proj.bias"]

    Cv = a["vision_width"]
    x = F.conv2d(pixels, w["visual.conv1.weight"], stride=a["patch_size"])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([w["visual.class_embedding"].expand(x.shape[0], 1, Cv), x], 1)
    x = x + w["visual.positional_embedding"]
    x = F.layer_norm(x, (Cv,), w["visual.ln_pre.weight"], w["visual.ln_pre.bias"], 1e-5)
    for i in range(a["vision_layers"]):
        x = block(x, f"visual.transformer.resblocks.{i}.", a["vision_heads"], False)
    x = F.layer_norm(x[:, 0], (Cv,), w["visual.ln_post.weight"], w["visual.ln_post.bias"], 1e-5)
    img = x @ w["visual.proj"]

    Ct = a["text_width"]
    x = w["token_embedding.weight"][tokens] + w["positional_embedding"]
    for i in range(a["text_layers"]):
        x = block(x, f"transformer.resblocks.{i}.", a["text_heads"], True)
    x = F.layer_norm(x, (Ct,), w["ln_final.weight"], w["ln_final.bias"], 1e-5)
    txt = x[torch.arange(x.shape[0]), tokens.argmax(-1)] @ w["text_projection"]
    return img, txt


def tiny_hf_config(act="quick_gelu"):
    from transformers import CLIPConfig
    return CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                         hidden_act=act, bos_token_id=49406, eos_token_id=49407),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                           num_attention_heads=4, image_size=32, patch_size=8, hidden_act=act),
        projection_dim=32)


def make_fixtures(outdir):
    """Goldens for tests/model/test_weights.c: a 'micro' CLIP (small vocab so files stay tiny, towers of
    different depth, no preset dims) converted from transformers, and the float32 arena the C
    loader must produce (FORMAT.md order, visual.proj / text_projection transposed)."""
    import numpy as np
    import torch
    from transformers import CLIPConfig, CLIPModel
    torch.manual_seed(1234)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=100, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=8, hidden_act="quick_gelu",
                         bos_token_id=98, eos_token_id=99, pad_token_id=0),
        vision_config=dict(hidden_size=12, intermediate_size=20, num_hidden_layers=1,
                           num_attention_heads=3, image_size=12, patch_size=4, hidden_act="quick_gelu"),
        projection_dim=8)
    model = CLIPModel(cfg)
    with torch.no_grad():  # every value distinct and non-trivial, so a misplaced tensor shows
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        model.save_pretrained(td)
        for dt in ("f32", "bf16"):
            convert("hf", td, os.path.join(outdir, f"micro_{dt}.safetensors"), dt, quiet=True)
    for dt, tdt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        path = os.path.join(outdir, f"micro_{dt}.safetensors")
        meta, w, order = read_weights(path)
        arch = {k: int(meta[k]) for k in ARCH_KEYS}
        parts = []
        for name, _ in tensor_layout(arch):
            t = w[name]
            if name in ("visual.proj", "text_projection"):
                t = t.t()
            parts.append(t.reshape(-1))
        arena = torch.cat(parts).numpy().astype(np.float32)
        np.save(os.path.join(outdir, f"micro_{dt}_arena.npy"), arena)
        with open(os.path.join(outdir, f"micro_{dt}.sha256"), "w") as f:
            f.write(sha256_file(path) + "\n")
        print(f"{path}: {arena.size} parameters, {os.path.getsize(path)} bytes")
    # independent counts: transformers' own parameter counts (micro, tiny preset, ViT-B/32)
    counts = {"micro": sum(p.numel() for p in model.parameters())}
    for name, c in (("tiny", tiny_hf_config()),
                    ("vit-b-32", CLIPConfig(text_config=dict(hidden_act="quick_gelu"),
                                            vision_config=dict(hidden_act="quick_gelu", image_size=224,
                                                               patch_size=32), projection_dim=512))):
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in CLIPModel(c).parameters())
    with open(os.path.join(outdir, "n_params.txt"), "w") as f:
        for k, v in counts.items():
            f.write(f"{k} {v}\n")


def self_test():
    import torch
    from transformers import CLIPModel
    torch.manual_seed(0)
    fails = []

    def check(ok, what):
        print(("OK     " if ok else "NOT OK ") + what)
        if not ok:
            fails.append(what)

    with tempfile.TemporaryDirectory() as td:
        model = CLIPModel(tiny_hf_config()).eval()
        with torch.no_grad():  # HF initialises LN to 1/0 and biases to 0: randomise to catch swaps
            for n, p in model.named_parameters():
                if n.endswith("bias") or "norm" in n:
                    p.add_(torch.randn_like(p) * 0.1)
        hfdir = os.path.join(td, "hf")
        model.save_pretrained(hfdir)
        out_hf = os.path.join(td, "hf.safetensors")
        arch, _ = convert("hf", hfdir, out_hf, quiet=True)
        meta, w, order = read_weights(out_hf)
        check(order == [n for n, _ in tensor_layout(arch)], "file order = FORMAT.md layout")
        check(meta["format"] == FORMAT_NAME and meta["format_version"] == FORMAT_VERSION
              and meta["source"] == "hf" and len(meta["source_sha256"]) == 64, "metadata")
        want = dict(image_size=32, patch_size=8, vision_width=64, vision_layers=2, vision_heads=4,
                    vision_mlp=256, context_length=77, vocab_size=49408, text_width=32,
                    text_layers=2, text_heads=4, text_mlp=128, embed_dim=32)
        check(all(meta[k] == str(v) for k, v in want.items()), "architecture numbers = tiny preset")

        # (a) tensors against the HF modules, mapped by hand here
        vm, tm = model.vision_model, model.text_model
        ref = {"visual.conv1.weight": vm.embeddings.patch_embedding.weight,
               "visual.class_embedding": vm.embeddings.class_embedding,
               "visual.positional_embedding": vm.embeddings.position_embedding.weight,
               "visual.ln_pre.weight": vm.pre_layrnorm.weight,
               "visual.ln_post.bias": vm.post_layernorm.bias,
               "visual.proj": model.visual_projection.weight.t(),
               "token_embedding.weight": tm.embeddings.token_embedding.weight,
               "positional_embedding": tm.embeddings.position_embedding.weight,
               "ln_final.weight": tm.final_layer_norm.weight,
               "text_projection": model.text_projection.weight.t(),
               "logit_scale": model.logit_scale}
        for i, (pre, layers) in enumerate((("visual.transformer", vm.encoder.layers),
                                           ("transformer", tm.encoder.layers))):
            L = layers[1]
            at = L.self_attn
            ref[f"{pre}.resblocks.1.attn.in_proj_weight"] = torch.cat(
                [at.q_proj.weight, at.k_proj.weight, at.v_proj.weight], 0)
            ref[f"{pre}.resblocks.1.attn.in_proj_bias"] = torch.cat(
                [at.q_proj.bias, at.k_proj.bias, at.v_proj.bias], 0)
            ref[f"{pre}.resblocks.1.mlp.c_proj.weight"] = L.mlp.fc2.weight
            ref[f"{pre}.resblocks.1.ln_2.bias"] = L.layer_norm2.bias
        for k, v in ref.items():
            check(torch.equal(w[k], v.detach().reshape(w[k].shape)), f"tensor {k} == HF module")
        check(abs(float(w["logit_scale"]) - 2.6592) < 1e-6, "logit_scale = HF's init 2.6592")

        # (b) an OpenAI-style forward on the converted weights matches HF's features
        pixels = torch.randn(3, 3, 32, 32)
        tokens = torch.zeros(3, 77, dtype=torch.long)
        for b, n in enumerate((5, 9, 77)):
            tokens[b, 0] = 49406
            tokens[b, 1:n - 1] = torch.randint(0, 49406, (n - 2,))
            tokens[b, n - 1] = 49407
        with torch.no_grad():
            img, txt = openai_forward(w, arch, pixels, tokens)
            hi = model.get_image_features(pixel_values=pixels)
            ht = model.get_text_features(input_ids=tokens)
            hi = getattr(hi, "pooler_output", hi)
            ht = getattr(ht, "pooler_output", ht)
        ei, et = (img - hi).abs().max().item(), (txt - ht).abs().max().item()
        check(ei < 1e-4 and et < 1e-4, f"OpenAI-style forward vs HF: max|diff| image {ei:.2e}, text "
              f"{et:.2e} (tol 1e-4; max|feature| {hi.abs().max():.3f}, {ht.abs().max():.3f})")

        # (c) --from openai (plain state dict with the scalar entries) and --from open_clip
        sd = {k: v.clone() for k, v in w.items()}
        sd["input_resolution"] = torch.tensor(32)
        sd["context_length"] = torch.tensor(77)
        sd["vocab_size"] = torch.tensor(49408)
        pt = os.path.join(td, "ViT-tiny.pt")
        torch.save(sd, pt)
        out_oa = os.path.join(td, "oa.safetensors")
        # width/64 gives the tiny text tower 0 heads: without --text-heads this must be refused
        try:
            convert("openai", pt, out_oa, quiet=True)
            check(False, "text width 32 without --text-heads refused")
        except ConvertError as e:
            check("text_heads" in str(e) and not os.path.exists(out_oa),
                  f"text width 32 without --text-heads refused: {e}")
        convert("openai", pt, out_oa, vision_heads=4, text_heads=4, quiet=True)
        m2, w2, _ = read_weights(out_oa)
        check(all(torch.equal(w2[k], w[k]) for k in w) and m2["source"] == "openai"
              and m2["source_sha256"] == sha256_file(pt), "--from openai == --from hf")
        oc = os.path.join(td, "oc.pt")
        torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in w.items()}}, oc)
        out_oc = os.path.join(td, "oc.safetensors")
        convert("open_clip", oc, out_oc, vision_heads=4, text_heads=4, quiet=True)
        m3, w3, _ = read_weights(out_oc)
        check(all(torch.equal(w3[k], w[k]) for k in w) and m3["source"] == "open_clip",
              "--from open_clip (module. prefix, state_dict key) == --from hf")
        with open(out_hf, "rb") as f1, open(out_oa, "rb") as f2:
            b1, b2 = f1.read(), f2.read()
        n1, n2 = struct.unpack("<Q", b1[:8])[0], struct.unpack("<Q", b2[:8])[0]
        check(b1[8 + n1:] == b2[8 + n2:], "hf and openai files have byte-identical data sections")

        # (d) f16 / bf16 storage = torch's rounding of the f32 values
        for dt, tdt in (("f16", torch.float16), ("bf16", torch.bfloat16)):
            o = os.path.join(td, dt + ".safetensors")
            convert("hf", hfdir, o, dtype=dt, quiet=True)
            m4, w4, _ = read_weights(o)
            check(all(torch.equal(w4[k], w[k].to(tdt).float()) for k in w), f"{dt} storage rounding")
            check(os.path.getsize(o) < os.path.getsize(out_hf) * 0.6, f"{dt} file is half size")

        # (e) refusals
        gd = os.path.join(td, "gelu")
        CLIPModel(tiny_hf_config("gelu")).save_pretrained(gd)
        try:
            convert("hf", gd, os.path.join(td, "gelu.safetensors"), quiet=True)
            check(False, "hidden_act=gelu refused")
        except ConvertError as e:
            check("quick_gelu" in str(e) and not os.path.exists(os.path.join(td, "gelu.safetensors")),
                  f"hidden_act=gelu refused: {e}")
        del sd["visual.ln_post.bias"]
        torch.save(sd, pt)
        try:
            convert("openai", pt, os.path.join(td, "x.safetensors"), "f32", 4, 4, quiet=True)
            check(False, "missing tensor refused")
        except ConvertError as e:
            check("visual.ln_post.bias" in str(e) and not os.path.exists(os.path.join(td, "x.safetensors")),
                  f"missing tensor refused: {e}")
        leftovers = [f for f in os.listdir(td) if ".tmp." in f]
        check(not leftovers, "no temp files left behind")
    print(f"{len(fails) == 0 and 'PASS' or 'FAIL'}: {len(fails)} failed")
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description="Convert a CLIP checkpoint to laic's weights file "
                                 "(weights/FORMAT.md).")
    ap.add_argument("--from", dest="kind", choices=["openai", "hf", "open_clip"])
    ap.add_argument("src", nargs="?", help="ViT-B-32.pt, HF CLIPModel dir, or open_clip checkpoint")
    ap.add_argument("out", nargs="?", help="output .safetensors")
    ap.add_argument("--dtype", default="f32", choices=list(DTYPES))
    ap.add_argument("--vision-heads", type=int, help="override width/64 (openai/open_clip sources)")
    ap.add_argument("--text-heads", type=int, help="override width/64 (openai/open_clip sources)")
    ap.add_argument("--self-test", action="store_true", help="run the round-trip checks and exit")
    ap.add_argument("--make-fixtures", metavar="DIR", help="write tests/model/test_weights.c goldens to DIR")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if args.make_fixtures:
        make_fixtures(args.make_fixtures)
        return 0
    if not (args.kind and args.src and args.out):
        ap.error("--from, SRC and OUT are required")
    try:
        convert(args.kind, args.src, args.out, args.dtype, args.vision_heads, args.text_heads)
    except ConvertError as e:
        print(f"convert_weights: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
