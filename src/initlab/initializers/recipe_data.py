"""Every training codebase's init, as data: one :class:`Recipe` per codebase, cited.

A recipe maps parameter roles (:data:`initlab.initializers.roles.ROLES`) to a :class:`Rule`:
a distribution, a std written as a formula, a truncation and, for the few codebases that use
absolute truncation bounds, those bounds. Formulas use these symbols, read from the model
(``recipe_options`` override any of them):

``sigma``  the recipe's base std (``initializer_range`` of a Hugging Face config if it has one)
``d``      model width (hidden size); ``d_ff`` MLP width; ``d_kv`` head width; ``n_heads``
``L``      blocks in the parameter's stack; ``i`` its block's 0-based index
``N``/``M`` encoder/decoder blocks (encoder-decoder models; both ``L`` in a decoder-only model)
``fan_in``/``fan_out``  the parameter's (or fused block's) logical fans
``m``      width multiplier ``d / base_width`` (muP); ``factor`` T5's ``initializer_factor``
``branch_layers``  weighted layers per residual branch (Fixup's ``m``)

Sources: repository snapshots read for ``/work/shared/research/state_of_the_art.md`` section 1
(commit in each citation) and the installed ``transformers`` 5.24 wheel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Distribution = Literal["normal", "trunc_normal", "uniform", "constant", "xavier_normal", "keep"]


@dataclass(frozen=True)
class Citation:
    """Where a recipe comes from: repository, file (with lines) and version or commit."""

    repository: str
    file: str
    version: str

    def __str__(self) -> str:
        return f"{self.repository} {self.file} @ {self.version}"


@dataclass(frozen=True)
class Rule:
    """How one role is drawn.

    ``dist``: ``normal`` (``N(0, std^2)``), ``trunc_normal`` (``N(0, std^2)`` truncated at
    ``+-trunc`` std, or at the absolute ``bounds`` when given, as ``torch.nn.init.
    trunc_normal_(a, b)`` takes them), ``uniform`` (``U(-bound, bound)`` with ``bound`` the
    formula in ``std``), ``xavier_normal`` (``N(0, gain^2 * 2 / (fan_in + fan_out))``, ``gain``
    the formula in ``std``), ``constant`` (every entry equals the formula in ``std``) or
    ``keep`` (the module's own values stay).
    """

    dist: Distribution
    std: str = "0"
    trunc: float | None = None
    bounds: tuple[float, float] | None = None
    note: str = ""

    def describe(self) -> str:
        """The rule in one line: ``normal(std=sigma / sqrt(2 * L))``, ``trunc_normal(std=
        sigma, +-3 sigma)``, ``trunc_normal(std=sigma, [-2, 2] absolute)``, ``1``, ``keep``."""
        if self.dist == "keep":
            return "keep"
        if self.dist == "constant":
            return self.std
        if self.dist == "uniform":
            return f"uniform(-{self.std}, {self.std})"
        if self.dist == "xavier_normal":
            return f"xavier_normal(gain={self.std})"
        if self.bounds is not None:
            low, high = self.bounds
            return f"trunc_normal(std={self.std}, [{low:g}, {high:g}] absolute)"
        if self.trunc is not None:
            return f"trunc_normal(std={self.std}, +-{self.trunc:g} sigma)"
        return f"normal(std={self.std})"


def normal(std: str, note: str = "") -> Rule:
    return Rule("normal", std, note=note)


def trunc(std: str, at: float = 3.0) -> Rule:
    return Rule("trunc_normal", std, trunc=at)


def const(value: str) -> Rule:
    return Rule("constant", value)


KEEP = Rule("keep")
ZEROS = const("0")
ONES = const("1")


@dataclass(frozen=True)
class Recipe:
    """A codebase's init: rules per role, default symbol values, source and notes.

    Roles a recipe does not name fall back along :data:`FALLBACK` (``attn_q`` -> ``attn_qkv``
    -> ``linear``); norms start neutral (scale 1 stored as 0 where the forward uses ``1 + w``),
    biases and scalar biases at zero, and anything else keeps its value.
    """

    name: str
    title: str
    rules: tuple[tuple[str, Rule], ...]
    source: Citation
    defaults: tuple[tuple[str, float], ...] = ()
    notes: tuple[str, ...] = ()
    zero_padding_row: bool = False
    aliases: tuple[str, ...] = ()
    family: str = "transformer"

    def rule_for(self, role: str, side: str | None = None) -> tuple[str, Rule]:
        """``(key the rule was written for, rule)`` for ``role``, following the fallbacks.

        ``side`` (``"enc"`` or ``"dec"``) first tries keys such as ``"enc:attn_v"``, for
        recipes that treat encoder and decoder blocks differently.
        """
        table = dict(self.rules)
        current: str | None = role
        while current is not None:
            if side is not None and f"{side}:{current}" in table:
                return f"{side}:{current}", table[f"{side}:{current}"]
            if current in table:
                return current, table[current]
            current = FALLBACK.get(current)
        return role, BASE_RULES.get(role, KEEP)

    def with_rules(self, name: str, title: str, **changes: Rule) -> Recipe:
        rules = dict(self.rules) | changes
        return replace(self, name=name, title=title, rules=tuple(rules.items()), aliases=())


FALLBACK: dict[str, str] = {
    "attn_q": "attn_qkv", "attn_k": "attn_qkv", "attn_v": "attn_qkv", "attn_qkv": "linear",
    "attn_out": "linear", "mlp_gate": "mlp_in", "mlp_up": "mlp_in", "mlp_in": "linear",
    "mlp_down": "linear", "head": "linear", "classifier": "linear",
    "position_embedding": "embedding", "conv_branch_out": "conv_body",
    "conv_shortcut": "conv_body", "conv_stem": "conv_body", "norm_branch_out": "norm_scale",
}  # fmt: skip

BASE_RULES: dict[str, Rule] = {
    "norm_scale": ONES,
    "norm_shift": ZEROS,
    "bias": ZEROS,
    "scalar_bias": ZEROS,
}

_HF = "transformers 5.24.0 (PyPI wheel)"


def _gpt_family() -> list[Recipe]:
    """Normal inits with GPT-2's depth scaling of the residual writers: Megatron, GPT-2/nanoGPT,
    Hugging Face's default, Pythia."""
    megatron = Recipe(
        "megatron", "Megatron-LM core default",
        rules=(("linear", normal("sigma")), ("attn_out", normal("sigma / sqrt(2 * L)")),
               ("mlp_down", normal("sigma / sqrt(2 * L)")), ("embedding", normal("sigma"))),
        source=Citation("NVIDIA/Megatron-LM", "megatron/core/utils.py L862-895; "
                        "transformer/transformer_config.py L386-475", "d98e8a6"),
        defaults=(("sigma", 0.02),),
        notes=("hybrid (Mamba) models use sigma / sqrt(L): pass L=2*L to reproduce",
               "zero-centred norms (--apply-layernorm-1p) start at 0"),
    )  # fmt: skip
    megatron_mup = Recipe(
        "megatron_mup", "Megatron-LM core with use_mup",
        rules=(("linear", normal("sigma / sqrt(m)")),
               ("attn_out", normal("sigma / (sqrt(2 * L) * sqrt(m))")),
               ("mlp_down", normal("sigma / (sqrt(2 * L) * sqrt(m))")),
               ("embedding", normal("sigma")), ("head", normal("sigma"))),
        source=Citation("NVIDIA/Megatron-LM", "megatron/core/transformer/transformer_config.py "
                        "L2528-2565; models/gpt/gpt_model.py L277-289", "d98e8a6"),
        defaults=(("sigma", 0.02), ("base_width", 256.0)),
        notes=("m = d / base_width (mup_base_hidden_size)",
               "forward: logits x 1/m (mup_output_mult) and softmax scale "
               "sqrt(base_head_dim) / d_head (1/d attention): init_model cannot change the "
               "forward, set them in your model"),
    )  # fmt: skip
    gpt2 = Recipe(
        "gpt2", "GPT-2 (nanoGPT and Hugging Face GPT2LMHeadModel)",
        rules=(("linear", normal("sigma")), ("embedding", normal("sigma")),
               ("attn_out", normal("sigma / sqrt(2 * L)")),
               ("mlp_down", normal("sigma / sqrt(2 * L)"))),
        source=Citation("karpathy/nanoGPT", "model.py L138-168 (c_proj: 0.02/sqrt(2*n_layer)); "
                        "HF models/gpt2/modeling_gpt2.py L432-449", "3adf61e; " + _HF),
        defaults=(("sigma", 0.02),), aliases=("nanogpt", "hf_gpt2"),
        notes=("the tied lm_head shares wte: one N(0, sigma^2) draw",),
    )  # fmt: skip
    hf_default = Recipe(
        "hf_default", "Hugging Face PreTrainedModel._init_weights (Llama, BERT, ...)",
        rules=(("linear", normal("sigma")), ("conv_body", normal("sigma")),
               ("embedding", normal("sigma")), ("rel_attn_bias", normal("sigma"))),
        source=Citation("huggingface/transformers", "src/transformers/modeling_utils.py "
                        "L2304-2350 (_init_weights)", _HF),
        defaults=(("sigma", 0.02),), zero_padding_row=True,
        notes=("sigma = config.initializer_range; padding_idx rows are zero",
               "models with their own _init_weights (GPT-2, T5, Gemma) have their own recipe"),
    )  # fmt: skip
    pythia = Recipe(
        "pythia", "GPT-NeoX Pythia configs: small_init + wang_init",
        rules=(("linear", normal("sqrt(2 / (5 * d))")),
               ("embedding", normal("sqrt(2 / (5 * d))")),
               ("attn_out", normal("2 / (L * sqrt(d))")),
               ("mlp_down", normal("2 / (L * sqrt(d))"))),
        source=Citation("EleutherAI/gpt-neox", "megatron/model/init_functions.py "
                        "(small_init, wang_init); configs/pythia/*.yml", "ea7aefd"),
    )  # fmt: skip
    return [megatron, megatron_mup, gpt2, hf_default, pythia]


def _truncated_family() -> list[Recipe]:
    """Truncated normals: OLMo 1/2, OLMo-core, torchtitan (absolute bounds)."""
    olmo1 = Recipe(
        "olmo1_mitchell", "OLMo-1 init_fn: mitchell",
        rules=(("linear", trunc("1 / sqrt(d)")), ("embedding", trunc("1 / sqrt(d)")),
               ("attn_out", trunc("1 / sqrt(2 * d * (i + 1))")),
               ("mlp_down", trunc("1 / sqrt(2 * fan_in * (i + 1))")),
               ("head", trunc("1 / sqrt(d)"))),
        source=Citation("allenai/OLMo", "olmo/model.py L483-506, L707-726, L1173-1230; "
                        "olmo/initialization.py", "59a53e3"),
        notes=("mlp_down uses d_ff = ff_out.in_features (its fan_in)", "cutoff 3 sigma"),
    )  # fmt: skip
    olmo_full = Recipe(
        "olmo_full_megatron", "OLMo init_fn: full_megatron ('the init used for Llama 2')",
        rules=(("linear", trunc("sigma")), ("embedding", trunc("sigma")),
               ("attn_out", trunc("sigma / sqrt(2 * L)")),
               ("mlp_down", trunc("sigma / sqrt(2 * L)")), ("head", trunc("1 / sqrt(d)"))),
        source=Citation("allenai/OLMo", "olmo/model.py L483-506; olmo/config.py L228-231",
                        "59a53e3"),
        defaults=(("sigma", 0.02),),
        notes=("scale_emb_init multiplies the embedding std by sqrt(d): pass sigma for it",),
    )  # fmt: skip
    olmo2 = Recipe(
        "olmo2", "OLMo-2 (init_fn: normal, init_std 0.02, init_cutoff_factor 3)",
        rules=(("linear", trunc("sigma")), ("embedding", trunc("sigma"))),
        source=Citation("allenai/OLMo", "configs/official-1124/*.yaml; olmo/model.py", "59a53e3"),
        defaults=(("sigma", 0.02),), notes=("no depth scaling",),
    )  # fmt: skip
    olmocore = Recipe(
        "olmocore_llama", "OLMo-core InitMethod.llama",
        rules=(("linear", trunc("sigma")), ("embedding", normal("1")),
               ("attn_out", trunc("sigma / sqrt(2 * L)")),
               ("mlp_down", trunc("sigma / sqrt(2 * L)")),
               ("mlp_up", trunc("sigma / sqrt(2 * L)")), ("head", trunc("1 / sqrt(d)"))),
        source=Citation("allenai/OLMo-core", "src/olmo_core/nn/transformer/init.py; "
                        "model.py L265-345", "fa6c501"),
        defaults=(("sigma", 0.02),),
        notes=("w1 (gate) 0.02; w3 (up), w2 (down) and wo depth-scaled",
               "embeddings N(0, 1) untruncated"),
    )  # fmt: skip
    olmocore_depth = olmocore.with_rules(
        "olmocore_llama_depth", "OLMo-core InitMethod.llama_depth",
        attn_out=trunc("sigma / sqrt(2 * (i + 1))"), mlp_down=trunc("sigma / sqrt(2 * (i + 1))"),
        mlp_up=trunc("sigma / sqrt(2 * (i + 1))"),
    )  # fmt: skip
    bounds = (-2.0, 2.0)
    titan = Recipe(
        "torchtitan_llama3", "torchtitan Llama 3 (param_init, depth_init)",
        rules=(("embedding", normal("1")),
               ("linear", Rule("trunc_normal", "sigma", bounds=bounds)),
               ("attn_out", Rule("trunc_normal", "sigma / sqrt(2 * (i + 1))", bounds=bounds)),
               ("mlp_down", Rule("trunc_normal", "sigma / sqrt(2 * (i + 1))", bounds=bounds)),
               ("mlp_up", Rule("trunc_normal", "sigma / sqrt(2 * (i + 1))", bounds=bounds)),
               ("head", trunc("1 / sqrt(d)"))),
        source=Citation("pytorch/torchtitan", "torchtitan/models/llama3/__init__.py L46-107; "
                        "models/common/param_init.py", "b5bcd76"),
        defaults=(("sigma", 0.02),),
        notes=("trunc_normal_(std=0.02) keeps PyTorch's absolute bounds a=-2, b=2: about "
               "+-100 sigma, so nothing is truncated (pytorch#155588)",
               "depth_init=False (before PR #2633) used sigma / sqrt(2 * L)"),
    )  # fmt: skip
    return [olmo1, olmo_full, olmo2, olmocore, olmocore_depth, titan]


def _encoder_decoder_family() -> list[Recipe]:
    """Per-sublayer scalings from the encoder-decoder literature: T5, DeepNet (decoder-only
    and the two published encoder-decoder betas), T-Fixup."""
    t5 = Recipe(
        "t5", "T5 (Hugging Face port of Mesh TensorFlow)",
        rules=(("embedding", normal("factor")), ("head", normal("factor")),
               ("attn_q", normal("factor / sqrt(d * d_kv)")),
               ("attn_k", normal("factor / sqrt(d)")),
               ("attn_v", normal("factor / sqrt(d)")),
               ("attn_out", normal("factor / sqrt(n_heads * d_kv)")),
               ("mlp_in", normal("factor / sqrt(d)")), ("mlp_down", normal("factor / sqrt(d_ff)")),
               ("rel_attn_bias", normal("factor / sqrt(d)")), ("linear", normal("factor")),
               ("norm_scale", const("factor"))),
        source=Citation("huggingface/transformers", "src/transformers/models/t5/modeling_t5.py "
                        "L567-620", _HF),
        defaults=(("factor", 1.0),),
        notes=("q carries T5's missing 1/sqrt(d_kv) attention scale",
               "the tied output is scaled by d^-1/2 in the forward"),
    )  # fmt: skip
    beta_dec = "(8 * L) ** (-1 / 4)"
    deepnet = Recipe(
        "deepnet", "DeepNet / DeepNorm, decoder-only (Wang et al. 2022, Fig. 2)",
        rules=(("linear", Rule("xavier_normal", "1")),
               ("attn_v", Rule("xavier_normal", beta_dec)),
               ("attn_out", Rule("xavier_normal", beta_dec)),
               ("mlp_in", Rule("xavier_normal", beta_dec)),
               ("mlp_down", Rule("xavier_normal", beta_dec))),
        source=Citation("microsoft/torchscale", "torchscale/architecture/decoder.py L89-95, "
                        "L286-298", "snapshot HEAD"),
        notes=("beta = (8L)^(-1/4); residual x_{l+1} = LN(alpha x + G(x)), alpha = (2L)^(1/4): "
               "set alpha in your model's forward",
               "torchscale draws xavier_uniform (gain 1/sqrt 2 for q/k/v) and divides by 1/beta; "
               "this follows the paper's xavier_normal pseudocode (same std for v and out)"),
    )  # fmt: skip
    beta_enc = "{c} * (N ** 4 * M) ** (-1 / 16)"
    beta_encdec_dec = "(12 * M) ** (-1 / 4)"

    def encdec(name: str, c: float, repo: str, file: str) -> Recipe:
        enc = Rule("xavier_normal", beta_enc.format(c=c))
        dec = Rule("xavier_normal", beta_encdec_dec)
        return Recipe(
            name, f"DeepNet encoder-decoder, encoder beta = {c} (N^4 M)^(-1/16)",
            rules=(("linear", Rule("xavier_normal", "1")), ("enc:attn_v", enc),
                   ("enc:attn_out", enc), ("enc:mlp_in", enc), ("enc:mlp_down", enc),
                   ("dec:attn_v", dec), ("dec:attn_out", dec), ("dec:mlp_in", dec),
                   ("dec:mlp_down", dec)),
            source=Citation(repo, file, "snapshot HEAD"),
            notes=(f"encoder alpha = 0.81 (N^4 M)^(1/16), beta = {c} (N^4 M)^(-1/16); decoder "
                   "alpha = (3M)^(1/4), beta = (12M)^(-1/4)",
                   "torchscale (1.15) and xFormers (0.87) publish different encoder betas "
                   "for the same method: a 1.32x std difference"),
        )  # fmt: skip

    deepnet_ts = encdec("deepnet_encdec_torchscale", 1.15, "microsoft/torchscale",
                        "torchscale/architecture/encoder.py L78-90, L234-252")  # fmt: skip
    deepnet_xf = encdec("deepnet_encdec_xformers", 0.87, "facebookresearch/xformers",
                        "xformers/factory/block_factory.py get_deepnorm_coefficients")  # fmt: skip
    tfixup = Recipe(
        "tfixup", "T-Fixup (Huang et al. 2020), no layer norm",
        rules=(("linear", Rule("xavier_normal", "1")),
               ("enc:attn_v", Rule("xavier_normal", "0.67 * N ** (-1 / 4)")),
               ("enc:attn_out", Rule("xavier_normal", "0.67 * N ** (-1 / 4)")),
               ("enc:mlp_in", Rule("xavier_normal", "0.67 * N ** (-1 / 4)")),
               ("enc:mlp_down", Rule("xavier_normal", "0.67 * N ** (-1 / 4)")),
               ("dec:attn_v", Rule("xavier_normal", "(9 * M) ** (-1 / 4)")),
               ("dec:attn_out", Rule("xavier_normal", "(9 * M) ** (-1 / 4)")),
               ("dec:mlp_in", Rule("xavier_normal", "(9 * M) ** (-1 / 4)")),
               ("dec:mlp_down", Rule("xavier_normal", "(9 * M) ** (-1 / 4)")),
               ("embedding", normal("d ** (-1 / 2) * (9 * M) ** (-1 / 4)"))),
        source=Citation("layer6ai-labs/T-Fixup", "paper Sec. 3.2 and public copies of "
                        "0.67 * (en_layers) ** (-1. / 4.)", "ICML 2020"),
        notes=("v uses per-block fans (E, E): the copies' extra sqrt(2) on a fused 3E x E "
               "in_proj only makes up for its larger Xavier fan",
               "decoder-only models are scaled as decoders (9L)^(-1/4)"),
    )  # fmt: skip
    return [t5, deepnet, deepnet_ts, deepnet_xf, tfixup]


def _residual_family() -> list[Recipe]:
    """Normalization-free residual inits: Fixup, SkipInit, ReZero."""
    fixup = Recipe(
        "fixup", "Fixup (Zhang, Dauphin & Ma 2019) for residual networks",
        rules=(("conv_body", normal("sqrt(2 / fan_out) * L ** (-1 / (2 * branch_layers - 2))")),
               ("conv_branch_out", ZEROS), ("conv_stem", KEEP),
               ("conv_shortcut", normal("sqrt(2 / fan_out)")),
               ("classifier", ZEROS), ("branch_scale", ONES), ("scalar_bias", ZEROS)),
        source=Citation("hongyi-zhang/Fixup", "cifar/models/fixup_resnet_cifar.py "
                        "(FixupResNet.__init__)", "e57b6c0"),
        family="resnet",
        notes=("He std with fan_out (shape[0] * kernel), as the code computes it",
               "the stem keeps PyTorch's default; scalar biases 0 and multipliers 1 where the "
               "model has them (add them for the full method); batch norms start at 1/0"),
    )  # fmt: skip
    skipinit = Recipe(
        "skipinit", "SkipInit (De & Smith 2020): residual branch multiplier alpha = 0",
        rules=(("conv_body", normal("sqrt(2 / fan_in)")), ("conv_stem", normal("sqrt(2 / fan_in)")),
               ("branch_scale", ZEROS), ("norm_branch_out", ZEROS), ("classifier", KEEP)),
        source=Citation("paper", "De & Smith 2020, 'Batch normalization biases residual blocks "
                        "towards the identity function', Sec. 4", "NeurIPS 2020"),
        family="resnet",
        notes=("a model without a scalar multiplier gets its branch's last norm scale at 0 "
               "(the zero-gamma trick), which also makes each block the identity",),
    )  # fmt: skip
    rezero = skipinit.with_rules(
        "rezero", "ReZero (Bachlechner et al. 2020): x + alpha F(x), alpha = 0",
        conv_body=KEEP, conv_stem=KEEP, linear=KEEP,
    )  # fmt: skip
    rezero = replace(rezero, source=Citation("majumderb/rezero", "README.md; paper Sec. 3",
                                             "04395b7"), family="any",
                     notes=("only alpha changes; other weights keep their init",))  # fmt: skip
    return [fixup, skipinit, rezero]


def _width_family() -> list[Recipe]:
    """Inits that scale with the width: SmallInit, SmallInitEmb, muP."""
    smallinit = Recipe(
        "smallinit", "SmallInit (Nguyen & Salazar 2019; GPT-NeoX small_init)",
        rules=(("linear", normal("sqrt(2 / (5 * d))")), ("embedding", normal("sqrt(2 / (5 * d))"))),
        source=Citation("EleutherAI/gpt-neox", "megatron/model/init_functions.py small_init",
                        "ea7aefd"),
        notes=("not SmallInitEmb: that is a tiny embedding plus an extra LayerNorm",),
    )  # fmt: skip
    smallinit_emb = Recipe(
        "smallinit_emb", "SmallInitEmb (BlinkDL): embedding U(-1e-4, 1e-4) + LayerNorm after it",
        rules=(("embedding", Rule("uniform", "1e-4")), ("position_embedding", normal("sigma")),
               ("linear", normal("sigma"))),
        source=Citation("BlinkDL/SmallInitEmb", "README.md", "snapshot HEAD"),
        defaults=(("sigma", 0.02),),
        notes=("needs a LayerNorm right after the embedding (the model's, not init's job)",
               "other weights: N(0, sigma^2) as hf_default"),
    )  # fmt: skip
    mup = Recipe(
        "mup", "muP (microsoft/mup, MuReadout) with a base width",
        rules=(("linear", normal("sigma / sqrt(m)")), ("embedding", normal("sigma")),
               ("head", ZEROS)),
        source=Citation("microsoft/mup", "mup/layer.py (MuReadout), mup/shape.py L159-195",
                        "1981497"),
        defaults=(("sigma", 0.02), ("base_width", 256.0)),
        notes=("hidden std sigma / sqrt(m), m = d / base_width; embeddings constant in width",
               "readout zero-initialised (readout_zero_init=True); forward must multiply logits "
               "by output_mult / m (MuReadout) and use 1/d_head attention scaling",
               "pass head=... via a rule override to keep a non-zero readout"),
    )  # fmt: skip
    return [smallinit, smallinit_emb, mup]


def _recipes() -> list[Recipe]:
    """Every recipe, family by family, in the order ``initlab recipes`` lists them."""
    return [*_gpt_family(), *_truncated_family(), *_encoder_decoder_family(),
            *_residual_family(), *_width_family()]  # fmt: skip


RECIPES: dict[str, Recipe] = {r.name: r for r in _recipes()}
ALIASES: dict[str, str] = {a: r.name for r in RECIPES.values() for a in r.aliases}
