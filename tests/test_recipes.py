"""Recipes: each one on a model of the kind its codebase trains, every parameter's realized std
against the formula written out by hand here (not read from the recipe), and against the
codebase's own init where it runs here (Hugging Face ``_init_weights``, nanoGPT's
``_init_weights`` ported below)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

import initlab
import zoo
from initlab.initializers.recipe_data import RECIPES
from initlab.initializers.recipes import TruncationWarning, init_with_recipe, plan, recipe_diff

T3 = float(stats.truncnorm.std(-3, 3))  # std of a normal truncated at +-3 sigma, per sigma


# ---------------------------------------------------------------------- models
class NanoBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(d, 3 * d)
        self.attn.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(d, 4 * d)
        self.mlp.c_proj = nn.Linear(4 * d, d)
        self.n_head = 4

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, -1).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn.c_proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x))))


class NanoGPT(nn.Module):
    """karpathy/nanoGPT's GPT, compact: wte/wpe, blocks, ln_f, tied lm_head."""

    def __init__(self, vocab=96, d=64, n_layer=3, block_size=32):
        super().__init__()
        self.n_layer = n_layer
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, d), wpe=nn.Embedding(block_size, d),
            h=nn.ModuleList([NanoBlock(d) for _ in range(n_layer)]), ln_f=nn.LayerNorm(d),
        ))  # fmt: skip
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        pos = torch.arange(idx.shape[1])
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def nanogpt_init_(self):
        """A port of nanoGPT's model.py L138-168 (uses the global RNG, as nanoGPT does)."""

        def _init_weights(module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        self.apply(_init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.n_layer))


def nano(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = NanoGPT()
    ids = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(seed))
    return model, ids


class FixupBlock(nn.Module):
    """hongyi-zhang/Fixup's FixupBasicBlock: scalar biases, a scalar multiplier, no norm."""

    def __init__(self, c):
        super().__init__()
        self.bias1a = nn.Parameter(torch.zeros(1))
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bias1b = nn.Parameter(torch.zeros(1))
        self.bias2a = nn.Parameter(torch.zeros(1))
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.scale = nn.Parameter(torch.ones(1))
        self.bias2b = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
        out = self.conv2(out + self.bias2a) * self.scale + self.bias2b
        return F.relu(out + x)


class FixupResNet(nn.Module):
    def __init__(self, c=16, blocks=6):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.bias1 = nn.Parameter(torch.zeros(1))
        self.layer1 = nn.Sequential(*[FixupBlock(c) for _ in range(blocks)])
        self.bias2 = nn.Parameter(torch.zeros(1))
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.layer1(F.relu(self.conv1(x) + self.bias1))
        return self.fc(x.mean((2, 3)) + self.bias2)


def fixup_resnet():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FixupResNet()
    for p in model.parameters():  # start away from the recipe's values
        with torch.no_grad():
            p.add_(0.5)
    return model, torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------- checks
def _check_std(value: torch.Tensor, expected: float, name: str) -> None:
    n = value.numel()
    if expected == 0:
        assert torch.all(value == 0), name
        return
    realized = value.detach().double().std().item()
    assert abs(realized / expected - 1) < 5 / math.sqrt(2 * n), (name, realized, expected)


def _apply(model, recipe, example=None, **options):
    report = init_with_recipe(model, recipe, seed=0, example_input=example, **options)
    return report, dict(model.named_parameters())


def _check_all(model, recipe, expected, example=None, **options):
    """``expected(name, row) -> std or ('const', value) or None (kept)`` for every parameter."""
    report, params = _apply(model, recipe, example, **options)
    checked = 0
    for row in report.rows:
        if row.action == "tied":
            continue
        want = expected(row.parameter, row)
        name = row.parameter.split("[")[0]
        value = params[name]
        if "[" in row.parameter:  # a fused block
            chunk = {"attn_q": 0, "attn_k": 1, "attn_v": 2}[row.role]
            dim = 1 if type(value).__name__ != "Parameter" or value.shape[0] < value.shape[1] else 0
            value = value.chunk(3, dim=dim)[chunk]
        if want is None:
            assert row.action == "keep", row
            continue
        if isinstance(want, tuple):
            assert torch.all(value == want[1]), (row.parameter, want)
        else:
            _check_std(value, want, row.parameter)
        checked += 1
    assert checked > 0
    return report


def _is(name, *keys):
    return any(k in name for k in keys)


def _gpt2_expect(attn_out, mlp_down, hidden, emb, head=None):
    def expected(name, row):
        if _is(name, "ln_", ".bias") and name.endswith("bias"):
            return ("const", 0.0)
        if _is(name, "ln_"):
            return ("const", 1.0)
        if "wte" in name or "wpe" in name:
            return emb(row)
        if "attn.c_proj" in name:
            return attn_out(row)
        if "mlp.c_proj" in name:
            return mlp_down(row)
        if "lm_head" in name:
            return head(row)
        return hidden(row)

    return expected


D, L = 64, 2  # zoo.gpt2: n_embd 64, n_layer 2, d_ff 256


@pytest.mark.parametrize(
    "recipe, attn_out, mlp_down, hidden, emb",
    [
        ("megatron", lambda r: 0.02 / math.sqrt(2 * L), lambda r: 0.02 / math.sqrt(2 * L),
         lambda r: 0.02, lambda r: 0.02),
        ("gpt2", lambda r: 0.02 / math.sqrt(2 * L), lambda r: 0.02 / math.sqrt(2 * L),
         lambda r: 0.02, lambda r: 0.02),
        ("pythia", lambda r: 2 / (L * math.sqrt(D)), lambda r: 2 / (L * math.sqrt(D)),
         lambda r: math.sqrt(2 / (5 * D)), lambda r: math.sqrt(2 / (5 * D))),
        ("olmo1_mitchell", lambda r: T3 / math.sqrt(2 * D * (r.block + 1)),
         lambda r: T3 / math.sqrt(2 * 256 * (r.block + 1)), lambda r: T3 / math.sqrt(D),
         lambda r: T3 / math.sqrt(D)),
        ("olmo_full_megatron", lambda r: T3 * 0.02 / math.sqrt(2 * L),
         lambda r: T3 * 0.02 / math.sqrt(2 * L), lambda r: T3 * 0.02, lambda r: T3 * 0.02),
        ("olmo2", lambda r: T3 * 0.02, lambda r: T3 * 0.02, lambda r: T3 * 0.02,
         lambda r: T3 * 0.02),
        ("smallinit", lambda r: math.sqrt(2 / (5 * D)), lambda r: math.sqrt(2 / (5 * D)),
         lambda r: math.sqrt(2 / (5 * D)), lambda r: math.sqrt(2 / (5 * D))),
        ("megatron_mup", lambda r: 0.02 / math.sqrt(2 * L) / math.sqrt(D / 16),
         lambda r: 0.02 / math.sqrt(2 * L) / math.sqrt(D / 16),
         lambda r: 0.02 / math.sqrt(D / 16), lambda r: 0.02),
        ("mup", lambda r: 0.02 / math.sqrt(D / 16), lambda r: 0.02 / math.sqrt(D / 16),
         lambda r: 0.02 / math.sqrt(D / 16), lambda r: 0.02),
    ],
)  # fmt: skip
def test_gpt_style_recipes_on_hf_gpt2(recipe, attn_out, mlp_down, hidden, emb):
    z = zoo.gpt2(n_embd=D, n_layer=L)
    options = {"base_width": 16.0} if "mup" in recipe else {}
    _check_all(z.model, recipe, _gpt2_expect(attn_out, mlp_down, hidden, emb), **options)


def test_smallinit_emb_is_not_smallinit():
    z = zoo.gpt2()
    _, params = _apply(z.model, "smallinit_emb")
    wte = params["transformer.wte.weight"]
    assert wte.abs().max() <= 1e-4
    _check_std(wte, 1e-4 / math.sqrt(3), "wte")
    _check_std(params["transformer.h.0.mlp.c_fc.weight"], 0.02, "c_fc")
    _, small = _apply(zoo.gpt2().model, "smallinit")
    _check_std(small["transformer.wte.weight"], math.sqrt(2 / (5 * 64)), "wte")


def test_gpt2_recipe_matches_nanogpt_own_init_and_hf_gpt2_own_init():
    model, ids = nano()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model.nanogpt_init_()
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    report = init_with_recipe(model, "nanogpt", seed=0, example_input=ids)
    params = dict(model.named_parameters())
    for name, value in own.items():
        n = value.numel()
        if value.std() == 0 or n < 2:
            assert torch.equal(params[name], value), name  # LayerNorm 1/0 and zero biases
            continue
        ratio = params[name].std().item() / value.std().item()
        assert abs(ratio - 1) < 2 * 5 / math.sqrt(2 * n), (name, ratio)
    assert report["transformer.h.2.attn.c_proj.weight"].target_std == pytest.approx(
        0.02 / math.sqrt(6)
    )
    # Hugging Face GPT-2: a fresh model carries its _init_weights; the recipe targets it.
    z = zoo.gpt2(n_layer=3)
    hf = {n: p.detach().clone() for n, p in z.model.named_parameters()}
    report = init_with_recipe(z.model, "gpt2", seed=0)
    for row in report.rows:
        if row.target_std:
            _check_std(hf[row.parameter], row.target_std, row.parameter)


@pytest.mark.parametrize("name, recipe", [("llama", "hf_default"), ("bert", "hf_default"),
                                          ("t5", "t5"), ("gpt2", "gpt2")])  # fmt: skip
def test_recipe_targets_the_std_of_the_codebase_own_init(name, recipe):
    """A fresh Hugging Face model has run its own ``_init_weights``: each parameter's std is
    the recipe's target, constants equal."""
    z = zoo.ZOO[name](seed=3)
    own = {n: p.detach().clone() for n, p in z.model.named_parameters()}
    planned = plan(z.model, recipe)
    for row in planned.rows:
        if row.dist in ("keep", "tied"):
            continue
        if row.dist == "constant":
            assert torch.all(own[row.parameter] == row.value), row.parameter
        else:
            _check_std(own[row.parameter], row.target_std, row.parameter)


def test_llama_recipes_olmocore_and_torchtitan():
    z = zoo.llama()
    sigma = 0.02

    def olmocore(depth):
        def expected(name, row):
            scale = math.sqrt(2 * ((row.block or 0) + 1)) if depth else math.sqrt(2 * 2)
            if "norm" in name:
                return ("const", 1.0)
            if "embed_tokens" in name:
                return 1.0
            if "lm_head" in name:
                return T3 / math.sqrt(64)
            if _is(name, "o_proj", "down_proj", "up_proj"):
                return T3 * sigma / scale
            return T3 * sigma

        return expected

    _check_all(z.model, "olmocore_llama", olmocore(False))
    _check_all(zoo.llama().model, "olmocore_llama_depth", olmocore(True))

    def titan(name, row):
        if "norm" in name:
            return ("const", 1.0)
        if "embed_tokens" in name:
            return 1.0
        if "lm_head" in name:
            return T3 / math.sqrt(64)
        if _is(name, "o_proj", "down_proj", "up_proj"):
            return sigma / math.sqrt(2 * (row.block + 1))  # bounds +-2: untruncated
        return sigma

    with pytest.warns(TruncationWarning, match=r"\[-2, 2\].*sigma"):
        report = _check_all(zoo.llama().model, "torchtitan_llama3", titan)
    row = report["model.layers.1.self_attn.o_proj.weight"]
    assert row.trunc_sigma == pytest.approx(2 / (0.02 / 2))  # 200 sigma
    assert report["model.layers.0.self_attn.q_proj.weight"].trunc_sigma == pytest.approx(100)
    assert report["lm_head.weight"].trunc_sigma == pytest.approx(3)


def test_t5_recipe():
    z = zoo.t5()
    d, d_kv, h, d_ff = 64, 16, 4, 128

    def expected(name, row):
        if "layer_norm" in name:
            return ("const", 1.0)
        if "relative_attention_bias" in name:
            return d**-0.5
        if name == "shared.weight":
            return 1.0
        leaf = name.split(".")[-2]
        return {"q": (d * d_kv) ** -0.5, "k": d**-0.5, "v": d**-0.5, "o": (h * d_kv) ** -0.5,
                "wi": d**-0.5, "wo": d_ff**-0.5}[leaf]  # fmt: skip

    _check_all(z.model, "t5", expected)


@pytest.mark.parametrize("recipe, c", [("deepnet_encdec_torchscale", 1.15),
                                       ("deepnet_encdec_xformers", 0.87)])  # fmt: skip
def test_deepnet_encoder_decoder_betas_on_t5(recipe, c):
    z = zoo.t5()
    n = m = 2

    def xavier(shape, gain):
        fan_out, fan_in = shape
        return gain * math.sqrt(2 / (fan_in + fan_out))

    def expected(name, row):
        if "layer_norm" in name:
            return ("const", 1.0)
        if "relative_attention_bias" in name or name == "shared.weight":
            return None  # DeepNet says nothing about them: kept
        leaf = name.split(".")[-2]
        beta = c * (n**4 * m) ** (-1 / 16) if name.startswith("encoder") else (12 * m) ** -0.25
        gain = beta if leaf in ("v", "o", "wi", "wo") else 1.0
        return xavier(row.shape, gain)

    _check_all(z.model, recipe, expected)
    ts = plan(zoo.t5().model, "deepnet_encdec_torchscale")
    xf = plan(zoo.t5().model, "deepnet_encdec_xformers")
    name = "encoder.block.0.layer.0.SelfAttention.v.weight"
    ratio = (
        next(r for r in ts.rows if r.parameter == name).target_std
        / next(r for r in xf.rows if r.parameter == name).target_std
    )
    assert ratio == pytest.approx(1.15 / 0.87)


def test_deepnet_decoder_only_and_tfixup_on_nanogpt():
    model, ids = nano()
    beta = (8 * 3) ** -0.25
    report = init_with_recipe(model, "deepnet", seed=0, example_input=ids)
    params = dict(model.named_parameters())
    d = 64
    _check_std(params["transformer.h.1.mlp.c_fc.weight"], beta * math.sqrt(2 / (5 * d)), "fc")
    _check_std(params["transformer.h.1.attn.c_proj.weight"], beta * math.sqrt(1 / d), "out")
    qkv = params["transformer.h.1.attn.c_attn.weight"]  # Linear: (3d, d), blocks along dim 0
    _check_std(qkv[:d], math.sqrt(1 / d), "q")
    _check_std(qkv[2 * d :], beta * math.sqrt(1 / d), "v")
    assert report["transformer.h.1.attn.c_attn.weight[attn_v]"].role == "attn_v"
    model, ids = nano()
    init_with_recipe(model, "tfixup", seed=0, example_input=ids)
    params = dict(model.named_parameters())
    g = (9 * 3) ** -0.25
    _check_std(params["transformer.h.0.attn.c_attn.weight"][2 * d :], g * math.sqrt(1 / d), "v")
    _check_std(params["transformer.h.0.mlp.c_proj.weight"], g * math.sqrt(2 / (5 * d)), "fc2")
    _check_std(params["transformer.wte.weight"], d**-0.5 * g, "wte")


def test_tfixup_encoder_scaling_on_torch_transformer_encoder():
    z = zoo.transformer_encoder()
    init_with_recipe(z.model, "tfixup", seed=0, example_input=z.example)
    params = dict(z.model.named_parameters())
    g = 0.67 * 2 ** (-1 / 4)
    _check_std(params["layers.0.self_attn.in_proj_weight"][128:], g * math.sqrt(1 / 64), "v")
    _check_std(params["layers.0.self_attn.in_proj_weight"][:64], math.sqrt(1 / 64), "q")
    _check_std(params["layers.1.linear1.weight"], g * math.sqrt(2 / 192), "linear1")


def test_fixup_on_a_fixup_resnet():
    model, x = fixup_resnet()
    blocks = 6

    def expected(name, row):
        if name == "conv1.weight":
            return None  # the stem keeps PyTorch's default, as the Fixup code does
        if name.endswith("conv1.weight"):
            return math.sqrt(2 / (16 * 9)) * blocks ** (-0.5)  # fan_out, L^(-1/(2m-2)), m=2
        if name.endswith("conv2.weight") or name.startswith("fc."):
            return ("const", 0.0)
        if name.endswith("scale"):
            return ("const", 1.0)
        return ("const", 0.0)  # scalar biases

    _check_all(model, "fixup", expected, x)
    out = model(x)
    assert torch.all(out == 0)  # zero classifier: the network starts at zero


def test_skipinit_and_rezero_zero_the_branch_multiplier_or_the_last_bn():
    model, x = fixup_resnet()
    init_with_recipe(model, "skipinit", seed=0, example_input=x)
    assert all(b.scale.item() == 0 for b in model.layer1)
    _check_std(model.layer1[0].conv1.weight, math.sqrt(2 / (16 * 9)), "conv1")
    model, x = fixup_resnet()
    before = model.layer1[0].conv1.weight.detach().clone()
    init_with_recipe(model, "rezero", seed=0, example_input=x)
    assert all(b.scale.item() == 0 for b in model.layer1)
    assert torch.equal(model.layer1[0].conv1.weight, before)  # only alpha changes
    z = zoo.resnet_basic()
    init_with_recipe(z.model, "skipinit", seed=0, example_input=z.example)
    assert torch.all(z.model.layer2[0].bn2.weight == 0)  # no multiplier: zero-gamma
    assert torch.all(z.model.layer2[0].bn1.weight == 1)
    assert torch.all(z.model.layer2[0].downsample[1].weight == 1)


class _Gemma(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.layers = nn.ModuleList([_GemmaBlock() for _ in range(2)])
        self.head = nn.Linear(16, 50, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class _GemmaNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), 0.3))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1.0 + self.weight)


class _GemmaBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = _GemmaNorm(16)
        self.mlp = nn.Module()
        self.mlp.up_proj = nn.Linear(16, 32, bias=False)
        self.mlp.down_proj = nn.Linear(32, 16, bias=False)

    def forward(self, x):
        return x + self.mlp.down_proj(F.gelu(self.mlp.up_proj(self.norm(x))))


def test_a_one_plus_w_norm_never_gets_ones():
    with torch.random.fork_rng(devices=[]):
        model = _Gemma()
    report = init_with_recipe(model, "megatron", seed=0)
    assert torch.all(model.layers[0].norm.weight == 0)
    assert "1 + w" in report["layers.0.norm.weight"].note
    init_with_recipe(model, "t5", seed=0, factor=2.0)
    assert torch.all(model.layers[0].norm.weight == 1.0)  # scale factor 2 stored as 2 - 1


def test_init_model_recipe_hook_seeds_options_and_errors():
    z = zoo.gpt2()
    report = initlab.init_model(z.model, recipe="megatron", seed=5, sigma=0.01, L=8)
    first = z.model.transformer.h[0].mlp.c_fc.weight.detach().clone()
    assert report["transformer.h.0.attn.c_proj.weight"].target_std == pytest.approx(0.0025)
    assert report.seed == 5 and "role" in str(report).splitlines()[1]
    data = report.to_dict()
    assert data["recipe"] == "megatron" and data["rows"][0]["role"] == "embedding"
    initlab.init_model(z.model, recipe="megatron", seed=5, sigma=0.01, L=8)
    assert torch.equal(first, z.model.transformer.h[0].mlp.c_fc.weight)
    with pytest.raises(ValueError, match="did you mean 'megatron'"):
        initlab.init_model(z.model, recipe="megatrn")
    with pytest.raises(ValueError, match="unknown recipe option 'sigm'"):
        initlab.init_model(z.model, recipe="megatron", sigm=0.1)
    with pytest.raises(TypeError, match="only valid with recipe"):
        initlab.init_model(z.model, sigma=0.1)


def test_recipe_diff_megatron_vs_olmo2_and_ratio():
    z = zoo.gpt2()
    diff = initlab.recipe_diff(z.model, "megatron", "olmo2")
    row = next(r for r in diff.rows if r.parameter == "transformer.h.0.attn.c_proj.weight")
    assert row.std_a == pytest.approx(0.01) and row.trunc_a is None
    assert row.std_b == pytest.approx(0.02 * T3) and row.trunc_b == pytest.approx(3)
    assert row.ratio == pytest.approx(2 * T3)
    assert "olmo2/megatron" in str(diff)
    assert diff.to_dict()["rows"][0]["ratio"] is not None
    # A fused tensor split by one recipe and drawn whole by the other.
    model, ids = nano()
    split = recipe_diff(model, "gpt2", "deepnet", example_input=ids)
    v = next(r for r in split.rows if r.parameter.endswith("h.0.attn.c_attn.weight[attn_v]"))
    beta = (8 * 3) ** -0.25
    assert v.std_a == pytest.approx(0.02) and v.ratio == pytest.approx(beta / 8 / 0.02)
    q = next(r for r in split.rows if r.parameter.endswith("h.0.attn.c_attn.weight[attn_q]"))
    assert q.ratio == pytest.approx(1 / 8 / 0.02)


def test_every_recipe_is_cited_and_listed(capsys):
    from initlab.cli import main

    for recipe in RECIPES.values():
        assert recipe.source.repository and recipe.source.file and recipe.source.version
    names = {r["name"] for r in initlab.list_recipes()}
    assert {"megatron", "olmo2", "torchtitan_llama3", "deepnet_encdec_xformers", "fixup",
            "smallinit_emb", "mup"} <= names  # fmt: skip
    assert main(["recipes"]) == 0
    assert "torchtitan_llama3" in capsys.readouterr().out
    assert main(["recipes", "--show", "nanogpt"]) == 0
    assert "sigma / sqrt(2 * L)" in capsys.readouterr().out
    assert main(["recipes", "--diff", "megatron", "olmo2"]) == 2


def test_plan_formula_errors_are_value_errors():
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="needs 'd'"):
            plan(model, "pythia")
        assert plan(model, "pythia", d=4).rows[0].target_std == pytest.approx(math.sqrt(2 / 20))


def _hf_model(model_class, config_class, **config):
    transformers = pytest.importorskip("transformers")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return getattr(transformers, model_class)(getattr(transformers, config_class)(**config))


def test_depth_scaled_recipes_count_blocks_per_tower_and_per_side():
    """``L`` is the depth of the parameter's own stack: CLIP's text (2 blocks) and vision (3)
    towers apart, BART's encoder (2) and decoder (3) apart; ``N``/``M`` likewise."""
    tower = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4)
    clip = _hf_model("CLIPModel", "CLIPConfig", projection_dim=16,
                     text_config=dict(tower, vocab_size=99, num_hidden_layers=2,
                                      max_position_embeddings=16),
                     vision_config=dict(tower, num_hidden_layers=3, image_size=16,
                                        patch_size=8))  # fmt: skip
    rows = {r.parameter: r for r in plan(clip, "megatron").rows}
    for tower_name, depth in (("text_model", 2), ("vision_model", 3)):
        for layer in ("self_attn.out_proj", "mlp.fc2"):
            row = rows[f"{tower_name}.encoder.layers.1.{layer}.weight"]
            assert row.target_std == pytest.approx(0.02 / math.sqrt(2 * depth)), row.parameter
    assert rows["vision_model.encoder.layers.0.self_attn.q_proj.weight"].target_std == 0.02
    bart = _hf_model("BartForConditionalGeneration", "BartConfig", vocab_size=99, d_model=32,
                     encoder_layers=2, decoder_layers=3, encoder_ffn_dim=64,
                     decoder_ffn_dim=64, encoder_attention_heads=4, decoder_attention_heads=4,
                     pad_token_id=0, bos_token_id=1, eos_token_id=2,
                     decoder_start_token_id=2)  # fmt: skip
    rows = {r.parameter: r for r in plan(bart, "megatron").rows}
    for side, depth in (("encoder", 2), ("decoder", 3)):
        row = rows[f"model.{side}.layers.0.fc2.weight"]
        assert row.target_std == pytest.approx(0.02 / math.sqrt(2 * depth)), row.parameter
    # DeepNet encoder-decoder: encoder beta 0.87 (N^4 M)^(-1/16), decoder (12 M)^(-1/4)
    deepnet = plan(bart, "deepnet_encdec_xformers")
    assert deepnet.symbols["N"] == 2 and deepnet.symbols["M"] == 3
    rows = {r.parameter: r for r in deepnet.rows}
    v = rows["model.decoder.layers.2.self_attn.v_proj.weight"]
    assert v.target_std == pytest.approx((12 * 3) ** -0.25 * math.sqrt(2 / 64))
    v = rows["model.encoder.layers.1.self_attn.v_proj.weight"]
    assert v.target_std == pytest.approx(0.87 * (2**4 * 3) ** (-1 / 16) * math.sqrt(2 / 64))
    # Two encoder towers are not one deep encoder.
    assert plan(clip, "tfixup").symbols["N"] == 3
