/*
 * config_keys.c — every key of a laic run: section, key, type, default, range, source, doc.
 * Tags follow ../shared/SPEC.md: paper = RSC (seeds/003), TAC, CLIP, CoOp, ours = a choice of
 * this project where the sources are silent (configurable and documented).
 * `laic run --help-config` prints this table; every run directory's config.ini lists all keys.
 */
#include "run/config.h"

#define NOLIM 1, 0   /* min > max: unbounded */

const CfgKey laic_config_keys[] = {
    // --- [model] ------------------------------------------------------------------------
    {"model", "weights", CFG_STR, "", NULL, NOLIM, "ours",
     "converted CLIP weights (.safetensors); empty = search weights/, else random init with a warning"},
    {"model", "arch", CFG_ENUM, "vit-b-32", "vit-b-32|tiny", NOLIM, "CLIP",
     "architecture used when falling back to random-init weights"},
    {"model", "precision", CFG_ENUM, "fp32", "fp32|tf32|bf16", NOLIM, "ours",
     "encoder arithmetic (CUDA); the CPU backend is fp32"},
    {"model", "device", CFG_ENUM, "auto", "auto|cpu|cuda", NOLIM, "ours",
     "backend: auto = CUDA when a GPU is present, else CPU"},
    {"model", "batch", CFG_INT, "256", NULL, 1, 65536, "ours", "images or prompts per encoder batch"},

    // --- [data] -------------------------------------------------------------------------
    {"data", "kind", CFG_ENUM, "auto", "auto|imagefolder|cifar10|cifar100|stl10|idx|csv", NOLIM,
     "ours", "dataset format (auto: guessed from the path)"},
    {"data", "path", CFG_STR, "", NULL, NOLIM, "ours", "dataset directory or file"},
    {"data", "fit_split", CFG_ENUM, "train", "train|test|all", NOLIM, "paper",
     "split the method is fitted on (paper §4.1: train)"},
    {"data", "eval_split", CFG_ENUM, "test", "train|test|all", NOLIM, "paper",
     "split the metrics are computed on (paper §4.1: test)"},
    {"data", "subsample", CFG_INT, "0", NULL, 0, 1e9, "ours",
     "use a seeded random subset of this many images per split (0 = all)"},
    {"data", "skip_bad", CFG_BOOL, "false", NULL, NOLIM, "ours",
     "skip unreadable images and count them in the report instead of failing"},
    {"data", "image_features", CFG_STR, "", NULL, NOLIM, "ours",
     "precomputed image features (.npy [N,E]) instead of encoding; fit = eval = these rows"},
    {"data", "labels", CFG_STR, "", NULL, NOLIM, "ours",
     "labels (.npy int [N]) for data.image_features (-1 = unknown)"},

    // --- [nouns] ------------------------------------------------------------------------
    {"nouns", "wordnet", CFG_STR, "/usr/share/wordnet/data.noun", NULL, NOLIM, "TAC",
     "WordNet 3.0 data.noun (Debian wordnet-base): 146,347 (lemma, synset) rows"},
    {"nouns", "features", CFG_STR, "", NULL, NOLIM, "ours", "precomputed noun features (.npy [M,E])"},
    {"nouns", "names", CFG_STR, "", NULL, NOLIM, "ours", "noun names for `features`, one per line"},
    {"nouns", "subset", CFG_INT, "0", NULL, 0, 1e7, "ours",
     "encode only a seeded subset of this many nouns (0 = all; CPU demos)"},
    {"nouns", "gamma", CFG_INT, "5", NULL, 1, 1e6, "paper",
     "nouns kept per image centre (paper App. C: γ = 5)"},
    {"nouns", "rank", CFG_ENUM, "tac", "tac|cosine", NOLIM, "TAC",
     "which γ nouns a centre keeps among those assigned to it: tac = highest softmax confidence "
     "over the centres (TAC filter_nouns.py:56-68; drops generic nouns close to every centre), "
     "cosine = highest raw cosine (the paper's prose; [ours], for ablation)"},

    // --- [centers] ----------------------------------------------------------------------
    {"centers", "k", CFG_INT, "0", NULL, 0, 1e7, "paper",
     "image centres k_c; 0 = round(N/300) (TAC filter_nouns.py: 167 for CIFAR-10's 50,000), or 3K "
     "if a class of the fit split has < 300 samples (paper §3.1; TAC: 141 DTD, 303 UCF101)"},
    {"centers", "iters", CFG_INT, "300", NULL, 1, 1e6, "TAC", "k-means iterations"},
    {"centers", "restarts", CFG_INT, "10", NULL, 1, 1e4, "TAC", "k-means restarts"},
    {"centers", "sample_per_center", CFG_INT, "256", NULL, 0, 1e6, "TAC",
     "train k-means on 256·k_c sampled points (0 = all; faiss' max_points_per_centroid)"},
    {"centers", "init", CFG_ENUM, "random", "random|kmeans++", NOLIM, "TAC",
     "initialisation of each restart: k_c distinct random training rows (faiss.Kmeans, which "
     "TAC's filter_nouns.py uses) or k-means++ (scikit-learn's)"},

    // --- [ridge] ------------------------------------------------------------------------
    {"ridge", "lambda", CFG_FLOAT, "10", NULL, 1e-12, 1e12, "paper",
     "ridge λ of C = X Tᵀ (T Tᵀ + λI)⁻¹ (paper App. C: λ = 10)"},
    {"ridge", "form", CFG_ENUM, "auto", "auto|primal|dual|reduced", NOLIM, "ours",
     "M×M system, d×d push-through, or the exact N×d reduction of SPEC §5 (auto: the reduction "
     "when M >= d and C is not saved, else the smaller system)"},
    {"ridge", "save_c", CFG_BOOL, "false", NULL, NOLIM, "ours",
     "write C.npy (≤ 2,000 fit rows, evenly spaced after a stable sort by true class) and "
     "C_labels.npy into the run directory, for the heat map of scripts/plot.py (paper Fig. 3)"},

    // --- [kmeans] (clustering of the final representation) -------------------------------
    {"kmeans", "k", CFG_INT, "0", NULL, 0, 1e6, "paper", "clusters K (0 = number of classes)"},
    {"kmeans", "iters", CFG_INT, "300", NULL, 1, 1e6, "TAC", "Lloyd iterations per restart"},
    {"kmeans", "restarts", CFG_INT, "10", NULL, 1, 1e4, "ours",
     "restarts; the best objective wins (TAC's code: 10 for its image centres, 20 for its baseline)"},
    {"kmeans", "init", CFG_ENUM, "kmeans++", "kmeans++|random", NOLIM, "ours",
     "initialisation: k-means++ (scikit-learn's default) or K distinct random rows (faiss', "
     "which TAC uses; the tac method has its own [tac] settings)"},
    {"kmeans", "spherical", CFG_BOOL, "false", NULL, NOLIM, "ours",
     "cosine k-means (normalised rows and centres) instead of Euclidean"},

    // --- [knn] --------------------------------------------------------------------------
    {"knn", "k", CFG_INT, "0", NULL, 0, 10000, "paper",
     "neighbours for the consistency filter; 0 = 10 if K ≤ 15 else 5 (paper App. C; boundary ours)"},

    // --- [train] (semantic centres by prompt learning, SPEC §7) -------------------------
    {"train", "enabled", CFG_BOOL, "false", NULL, NOLIM, "ours", "run the prompt-learning stage"},
    {"train", "epochs", CFG_INT, "20", NULL, 1, 1e5, "CoOp", "epochs"},
    {"train", "batch", CFG_INT, "32", NULL, 1, 1e5, "paper", "images per step"},
    {"train", "lr", CFG_FLOAT, "0.002", NULL, 0, 1e3, "CoOp", "SGD learning rate"},
    {"train", "momentum", CFG_FLOAT, "0.9", NULL, 0, 1, "CoOp", "SGD momentum"},
    {"train", "weight_decay", CFG_FLOAT, "5e-4", NULL, 0, 1, "CoOp", "SGD weight decay"},
    {"train", "warmup_epochs", CFG_INT, "1", NULL, 0, 1e5, "CoOp", "constant-lr warm-up epochs"},
    {"train", "warmup_lr", CFG_FLOAT, "1e-5", NULL, 0, 1e3, "CoOp", "warm-up learning rate"},
    {"train", "prefix", CFG_STR, "a photo of a", NULL, NOLIM, "paper", "prompt prefix before the vectors"},
    {"train", "n_ctx", CFG_INT, "4", NULL, 1, 64, "CoOp", "learnable vectors per class"},
    {"train", "init_std", CFG_FLOAT, "0.02", NULL, 0, 10, "CoOp", "vector init N(0, std²)"},
    {"train", "loss", CFG_STR, "gce,mse,entropy", NULL, NOLIM, "paper",
     "loss terms (any of gce, mse, entropy; comma-separated)"},
    {"train", "gce_q", CFG_FLOAT, "0.7", NULL, 1e-6, 1, "paper", "GCE exponent q"},
    {"train", "alpha", CFG_FLOAT, "1", NULL, 0, 1e6, "ours", "weight of the MSE consistency term"},
    {"train", "beta", CFG_FLOAT, "1", NULL, 0, 1e6, "ours", "weight of the global entropy term"},
    {"train", "logit_scale", CFG_FLOAT, "100", NULL, 0, 1e6, "CLIP", "softmax scale on cosines"},
    {"train", "text_batch", CFG_INT, "0", NULL, 0, 1e5, "ours",
     "prompts per text-tower chunk (0 = min(K, 100)); ranks split the chunks, so ceil(K / ranks) "
     "balances them (a different chunk size changes the last bits)"},
    {"train", "stop_after", CFG_INT, "0", NULL, 0, 1e5, "ours",
     "stop after this many epochs, keeping <run.dir>.partial/train.ckpt (0 = train all epochs); "
     "continue with run.resume"},
    {"train", "text_precision", CFG_ENUM, "fp32", "fp32|tf32|bf16", NOLIM, "ours",
     "matmul precision of the text tower being trained (its forward; the backward is fp32); "
     "model.precision sets the frozen image encoder's (the issue: bf16 views, fp32 prompts)"},
    {"train", "cuda_graph", CFG_BOOL, "true", NULL, NOLIM, "ours",
     "capture the training step as a CUDA graph after one eager warm-up step per batch size, and "
     "replay it (no effect on the CPU; identical numbers either way)"},
    {"train", "recompute", CFG_BOOL, "false", NULL, NOLIM, "ours",
     "image-encoder training (SEIC stage 2, host/train/vit.h): keep only each block's input and "
     "recompute the block in the backward (ViT-B/32 LoRA batch 128: 3.7 -> 1.7 GiB, one extra "
     "forward; identical numbers)"},

    // --- [seic] (SEIC, SPEC §9.3; V4C = hyw1008/VLM4Cluster@4f6cd92, V4C←paper = values V4C
    // says follow the paper's appendix) -------------------------------------------------------
    {"seic", "k1", CFG_INT, "200", NULL, 1, 1e7, "V4C",
     "stage 0: nouns kept per initial image centre (their union is the candidate set)"},
    {"seic", "k2", CFG_INT, "50", NULL, 1, 1e7, "V4C",
     "stage 0: nearest candidates per image, mixed into its text counterpart"},
    {"seic", "text_tau", CFG_FLOAT, "0.01", NULL, 1e-9, 1e3, "V4C",
     "stage 0: temperature of the candidate weights softmax(cos/τ_t)"},
    {"seic", "noun_mean", CFG_ENUM, "normalized", "normalized|raw", NOLIM, "V4C",
     "stage 0 noun features: mean of the 7 normalised prompt features (V4C) or the run's bank "
     "(raw: TAC's mean of raw features); a precomputed bank is used as it is"},
    {"seic", "kmeans_iters", CFG_INT, "300", NULL, 1, 1e6, "V4C",
     "stage 0: spherical k-means iterations for the K initial centres"},
    {"seic", "kmeans_restarts", CFG_INT, "10", NULL, 1, 1e4, "V4C", "stage 0: k-means restarts"},
    {"seic", "kmeans_sample_per_center", CFG_INT, "256", NULL, 0, 1e6, "V4C",
     "stage 0: k-means trains on 256·K sampled rows (faiss's default; 0 = all)"},
    {"seic", "s1_epochs", CFG_INT, "200", NULL, 1, 1e6, "V4C", "stage 1: epochs"},
    {"seic", "s1_batch", CFG_INT, "1024", NULL, 1, 1e7, "V4C",
     "stage 1: pairs per step (clipped to N; the last batch is dropped only if it holds one row)"},
    {"seic", "s1_lr", CFG_FLOAT, "5e-3", NULL, 0, 1e3, "V4C", "stage 1: Adam learning rate"},
    {"seic", "s1_weight_decay", CFG_FLOAT, "0", NULL, 0, 1, "V4C",
     "stage 1: Adam weight decay (coupled L2, torch.optim.Adam)"},
    {"seic", "tau_ins", CFG_FLOAT, "0.07", NULL, 1e-6, 1e3, "V4C",
     "stage 1: initial instance temperature; log(1/τ) is learnt"},
    {"seic", "scale_max", CFG_FLOAT, "100", NULL, 1e-6, 1e9, "V4C",
     "stage 1: cap on the learnt instance scale exp(log s)"},
    {"seic", "tau_a", CFG_FLOAT, "0.5", NULL, 1e-9, 1e3, "V4C",
     "stage 1: temperature of the cluster-assignment contrastive loss L_ass"},
    {"seic", "tau_c", CFG_FLOAT, "0.5", NULL, 1e-9, 1e3, "V4C",
     "stage 1: temperature of the cluster-centre contrastive loss L_ctr"},
    {"seic", "w_ins", CFG_FLOAT, "0.5", NULL, 0, 1e6, "V4C←paper", "stage 1: weight α of L_ins"},
    {"seic", "w_ass", CFG_FLOAT, "1", NULL, 0, 1e6, "V4C←paper", "stage 1: weight β of L_ass"},
    {"seic", "w_ctr", CFG_FLOAT, "1", NULL, 0, 1e6, "V4C←paper", "stage 1: weight γ of L_ctr"},
    {"seic", "w_bal", CFG_FLOAT, "2", NULL, 0, 1e6, "V4C←paper", "stage 1: weight δ of L_bal"},
    {"seic", "bal_momentum", CFG_FLOAT, "0.9", NULL, 0, 1, "V4C",
     "stage 1: EMA momentum of the image hard-assignment histogram"},
    {"seic", "bal_floor", CFG_FLOAT, "0.01", NULL, 0, 1, "V4C",
     "stage 1: floor on the histogram before the balance weights 1/(K h)"},
    {"seic", "bal_max_w", CFG_FLOAT, "5", NULL, 0, 1e6, "V4C", "stage 1: largest balance weight"},
    {"seic", "s2_epochs", CFG_INT, "40", NULL, 1, 1e6, "V4C", "stage 2: epochs"},
    {"seic", "s2_batch", CFG_INT, "128", NULL, 1, 1e6, "V4C",
     "stage 2: images per step (clipped to N; the last, smaller batch is kept)"},
    {"seic", "s2_lr", CFG_FLOAT, "5e-5", NULL, 0, 1e3, "V4C",
     "stage 2: AdamW learning rate (LoRA and the image heads)"},
    {"seic", "s2_weight_decay", CFG_FLOAT, "0", NULL, 0, 1, "V4C", "stage 2: AdamW decoupled weight decay"},
    {"seic", "adapter", CFG_ENUM, "lora", "lora|full_last_k", NOLIM, "V4C",
     "stage 2: LoRA on q and v of every visual block (V4C), or full_last_k (blocks >= "
     "seic.full_last_k, ln_post and proj train in full; ours)"},
    {"seic", "lora_rank", CFG_INT, "128", NULL, 1, 4096, "V4C", "stage 2: LoRA rank r"},
    {"seic", "lora_alpha", CFG_FLOAT, "128", NULL, 1e-9, 1e9, "V4C", "stage 2: LoRA α (scale α/r)"},
    {"seic", "full_last_k", CFG_INT, "9", NULL, 0, 1024, "ours",
     "stage 2 with adapter=full_last_k: the first block that trains (ViT-B/32: 9, 10, 11)"},
    {"seic", "encoder_lr", CFG_FLOAT, "1e-5", NULL, 0, 1e3, "ours",
     "stage 2 with adapter=full_last_k: the encoder's AdamW learning rate (the heads keep s2_lr)"},
    {"seic", "train_visual_proj", CFG_BOOL, "false", NULL, NOLIM, "ours",
     "stage 2: train visual.proj too (V4C freezes every visual parameter but the adapters; its "
     "trained 'image projection' is the SEIC head's Linear)"},
    {"seic", "conf_momentum", CFG_FLOAT, "0.999", NULL, 0, 1, "V4C",
     "stage 2: EMA momentum of the confidence mean and variance (the first batch initialises)"},
    {"seic", "strong_scale_min", CFG_FLOAT, "0.5", NULL, 1e-6, 1, "V4C",
     "stage 2 strong view: RandomResizedCrop area scale (min, 1); bicubic as SPEC §3 (V4C's "
     "torchvision default is bilinear)"},
    {"seic", "flip_p", CFG_FLOAT, "0.5", NULL, 0, 1, "V4C", "stage 2 strong view: horizontal flip probability"},
    {"seic", "jitter_p", CFG_FLOAT, "0.8", NULL, 0, 1, "V4C", "stage 2 strong view: ColorJitter probability"},
    {"seic", "jitter_strength", CFG_FLOAT, "0.4", NULL, 0, 1.25, "V4C",
     "stage 2 strong view: ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s) = (0.32, 0.32, 0.32, 0.08)"},
    {"seic", "gray_p", CFG_FLOAT, "0.2", NULL, 0, 1, "V4C", "stage 2 strong view: RandomGrayscale probability"},
    {"seic", "s2_precision", CFG_ENUM, "fp32", "fp32|tf32|bf16", NOLIM, "ours",
     "stage 2: matmul precision of the image tower being trained (CUDA; the CPU is fp32)"},
    {"seic", "stop_after", CFG_INT, "0", NULL, 0, 1e7, "ours",
     "stop after this many epochs in all (stage-1 epochs first), keeping <run.dir>.partial/ "
     "with the checkpoints (0 = train to the end); continue with run.resume"},

    // --- [eval] -------------------------------------------------------------------------
    {"eval", "methods", CFG_STR, "clip-kmeans,tac,zeroshot,ours-notrain,ours", NULL, NOLIM, "paper",
     "methods reported side by side (paper Fig. 4)"},

    // --- [tac] (TAC no-train baseline, SPEC §8: TAC retrieve_text.py, concat_kmeans.py) --
    {"tac", "tau", CFG_FLOAT, "0.005", NULL, 1e-9, 1e3, "TAC",
     "softmax temperature of the text counterpart t_i = normalize(softmax(x_i Tᵀ/τ) T) "
     "(was eval.tac_tau, still accepted)"},
    {"tac", "fit_split", CFG_ENUM, "eval", "eval|fit", NOLIM, "TAC",
     "split TAC's k-means is fitted on: eval = cluster the evaluation features directly "
     "(concat_kmeans.py), fit = fit on data.fit_split and assign the eval rows ([ours])"},
    {"tac", "iters", CFG_INT, "300", NULL, 1, 1e6, "TAC", "Lloyd iterations per restart (niter)"},
    {"tac", "restarts", CFG_INT, "20", NULL, 1, 1e4, "TAC", "restarts, best objective kept (nredo)"},
    {"tac", "init", CFG_ENUM, "random", "random|kmeans++", NOLIM, "TAC",
     "initialisation: K distinct random training rows (faiss.Kmeans) or k-means++"},
    {"tac", "spherical", CFG_BOOL, "true", NULL, NOLIM, "TAC",
     "spherical k-means on [x_i | t_i] (faiss spherical=True; rows all have norm √2)"},
    {"tac", "sample_per_center", CFG_INT, "256", NULL, 0, 1e6, "TAC",
     "train k-means on 256·K sampled rows (faiss' max_points_per_centroid; 0 = all)"},

    // --- [sic] (SIC trained on cached features, SPEC §9.1: shaotiancai/SIC@a8969ac) --------
    {"sic", "epochs", CFG_INT, "100", NULL, 1, 1e5, "SIC", "epochs (sic.py:139; cifar10.yml:52)"},
    {"sic", "batch", CFG_INT, "128", NULL, 1, 1e6, "SIC",
     "batch size; the last partial batch is kept (cifar10.yml:53; drop_last False)"},
    {"sic", "lr", CFG_FLOAT, "1e-4", NULL, 0, 1e3, "SIC", "Adam learning rate, constant (sic.py:28)"},
    {"sic", "weight_decay", CFG_FLOAT, "1e-4", NULL, 0, 1e3, "SIC",
     "Adam's coupled L2 weight decay (cifar10.yml:48; imagenet_dog.yml:52 uses 0.009)"},
    {"sic", "entropy_weight", CFG_FLOAT, "5", NULL, 0, 1e6, "SIC", "λ of the batch entropy L_B (sic.py:34)"},
    {"sic", "ce_weight", CFG_FLOAT, "0.1", NULL, 0, 1e6, "SIC",
     "β of the image-semantic cross-entropy L_IS (sic.py:35)"},
    {"sic", "neighbors", CFG_INT, "20", NULL, 1, 10000, "SIC",
     "L2 neighbours on the raw features besides the image itself (sic.py:33; self is drawn too)"},
    {"sic", "gamma_r", CFG_INT, "500", NULL, 1, 1e7, "SIC",
     "nouns nearest each image centre kept for the semantic space (sic.py:30)"},
    {"sic", "gamma_u", CFG_FLOAT, "0.05", NULL, 0, 2, "SIC",
     "uniqueness: keep nouns with cos(noun, mean noun) < 1 − gamma_u (sic.py:29)"},
    {"sic", "xi_c", CFG_FLOAT, "0.9", NULL, 0, 1, "SIC",
     "fraction of N/K most confident images per centre in the centre mapping (sic.py:31)"},
    {"sic", "xi_a", CFG_INT, "30", NULL, 1, 1e6, "SIC",
     "nouns averaged into each semantic centre H_c (sic.py:32)"},
    {"sic", "kmeans_restarts", CFG_INT, "20", NULL, 1, 1e4, "SIC",
     "restarts of the K image centres' k-means on the raw features (sklearn n_init, "
     "evaluate_utils.py:99)"},
    {"sic", "center_init", CFG_BOOL, "false", NULL, NOLIM, "SIC",
     "initialise the head from the image centres, W = 0.1·C0, b = −0.05‖C0‖² (sic.py:122-128; "
     "off by default as in the code)"},
    {"sic", "select", CFG_ENUM, "last", "last|test_acc", NOLIM, "ours",
     "which epoch is reported: last = the last one; test_acc = the best test ACC with early stop "
     "after sic.patience epochs without gain, as SIC's code does (sic.py:148-167: it peeks at the "
     "test labels; report.json says so)"},
    {"sic", "patience", CFG_INT, "5", NULL, 1, 1e5, "SIC",
     "sic.select = test_acc stops after this many epochs without a gain (sic.py:165)"},
    {"sic", "bank", CFG_ENUM, "sic", "sic|synsets", NOLIM, "SIC",
     "noun bank: one head-word per WordNet synset in data.noun order; sic = as SIC's noun.csv "
     "reads (82,113: its last synset '9/11' is absent and pandas takes 'entity' as the header), "
     "synsets = all 82,115"},
    {"sic", "bank_batch", CFG_INT, "128", NULL, 1, 1e6, "SIC",
     "text-loader batch whose per-batch means are averaged into the uniqueness filter's mean noun "
     "(semantic_filters.py:25-35; not the plain mean)"},
    {"sic", "subset", CFG_INT, "0", NULL, 0, 1e7, "ours",
     "encode only a seeded subset of this many bank nouns (0 = all; CPU demos)"},
    {"sic", "noun_features", CFG_STR, "", NULL, NOLIM, "ours",
     "precomputed RAW (unnormalised) text features of the bank (.npy [M,E]) instead of encoding "
     "\"a photo of a {noun}\""},
    {"sic", "noun_names", CFG_STR, "", NULL, NOLIM, "ours", "noun names for sic.noun_features, one per line"},
    {"sic", "cuda_graph", CFG_BOOL, "true", NULL, NOLIM, "ours",
     "on CUDA, capture one epoch's batches as a graph after an eager epoch and replay it (no "
     "effect on the CPU; the same numbers either way)"},
    {"sic", "stop_after", CFG_INT, "0", NULL, 0, 1e5, "ours",
     "stop after this many epochs, keeping <run.dir>.partial/sic.ckpt (0 = train all); continue "
     "with run.resume"},

    // --- [tac_train] (TAC trained on cached features, SPEC §9.2: 2024-ICML-TAC@830e02c) -------
    {"tac_train", "epochs", CFG_INT, "0", NULL, 0, 1e5, "TAC",
     "epochs; 0 = 20 when K < 100, else 100 (train_head.py:27-35; [ours] K ≥ 100 takes the "
     "UCF101/ImageNet branch)"},
    {"tac_train", "batch", CFG_INT, "0", NULL, 0, 1e6, "TAC",
     "batch size, last partial batch dropped; 0 = 512 when K < 100, else 8192"},
    {"tac_train", "tau", CFG_FLOAT, "0", NULL, 0, 1e6, "TAC",
     "temperature of the cluster-contrastive term; 0 = 0.5 when K < 100, else 5.0"},
    {"tac_train", "lr", CFG_FLOAT, "1e-3", NULL, 0, 1e3, "TAC", "Adam learning rate (torch default)"},
    {"tac_train", "beta1", CFG_FLOAT, "0.9", NULL, 0, 1, "TAC", "Adam β1 (train_head.py:103)"},
    {"tac_train", "beta2", CFG_FLOAT, "0.99", NULL, 0, 1, "TAC", "Adam β2 (train_head.py:103)"},
    {"tac_train", "entropy_weight", CFG_FLOAT, "5", NULL, 0, 1e6, "TAC",
     "weight of the two entropy terms (train_head.py:124)"},
    {"tac_train", "neighbors", CFG_INT, "50", NULL, 1, 10000, "TAC",
     "inner-product neighbours per image and per text counterpart, self excluded "
     "(train_head.py:36)"},
    {"tac_train", "eval_every_epoch", CFG_BOOL, "true", NULL, NOLIM, "TAC",
     "predict the eval split after every epoch and log its ACC (train_head.py:154); the last "
     "epoch is reported either way"},
    {"tac_train", "cuda_graph", CFG_BOOL, "true", NULL, NOLIM, "ours",
     "on CUDA, capture one epoch's batches as a graph after an eager epoch and replay it"},
    {"tac_train", "stop_after", CFG_INT, "0", NULL, 0, 1e5, "ours",
     "stop after this many epochs, keeping <run.dir>.partial/tac-train.ckpt (0 = train all); "
     "continue with run.resume"},

    // --- [published] (numbers shown beside laic's in report.html; one key per method) ------
    {"published", "source", CFG_STR, "", NULL, NOLIM, "paper",
     "where the [published] numbers come from (e.g. RSC Table 1 via SPEC §11, ViT-B/32)"},
    {"published", "clip-kmeans", CFG_TRIPLE, "", NULL, 0, 100, "paper",
     "published NMI/ACC/ARI % of CLIP k-means on this dataset (empty = none)"},
    {"published", "tac", CFG_TRIPLE, "", NULL, 0, 100, "TAC",
     "published NMI/ACC/ARI % of TAC without training (empty = none)"},
    {"published", "tac-train", CFG_TRIPLE, "", NULL, 0, 100, "paper",
     "published NMI/ACC/ARI % of TAC (trained): SPEC §11's TAC column"},
    {"published", "zeroshot", CFG_TRIPLE, "", NULL, 0, 100, "paper",
     "published NMI/ACC/ARI % of zero-shot CLIP: SPEC §11's ZS-CLIP column"},
    {"published", "sic", CFG_TRIPLE, "", NULL, 0, 100, "paper",
     "published NMI/ACC/ARI % of SIC (empty = none)"},
    {"published", "ours-notrain", CFG_TRIPLE, "", NULL, 0, 100, "paper",
     "published NMI/ACC/ARI % of RSC without prompt learning (empty = none)"},
    {"published", "ours", CFG_TRIPLE, "", NULL, 0, 100, "paper",
     "published NMI/ACC/ARI % of RSC (Ours): SPEC §11's Ours column"},

    // --- [run] --------------------------------------------------------------------------
    {"run", "name", CFG_STR, "run", NULL, NOLIM, "ours", "run name (directory prefix)"},
    {"run", "dir", CFG_STR, "", NULL, NOLIM, "ours",
     "run directory (empty = runs/<name>-<UTC timestamp>)"},
    {"run", "seed", CFG_INT, "1234", NULL, 0, 4294967295.0, "TAC", "master seed for every stage"},
    {"run", "threads", CFG_INT, "0", NULL, 0, 1024, "ours", "CPU threads (0 = all cores)"},
    {"run", "cache_dir", CFG_STR, "cache", NULL, NOLIM, "ours", "feature cache directory"},
    {"run", "resume", CFG_STR, "", NULL, NOLIM, "ours", "run directory to resume"},
};

const int laic_config_nkeys = (int)(sizeof laic_config_keys / sizeof laic_config_keys[0]);
