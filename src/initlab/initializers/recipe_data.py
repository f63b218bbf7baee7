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

``hf_default`` is keyed by module instead of role, because Hugging Face's ``_init_weights``
dispatches on module classes: see :data:`HF_BASE` and :data:`HF_MODELS` for its key syntax and
symbols.

Sources: repository snapshots read for ``/work/shared/research/state_of_the_art.md`` section 1
(commit in each citation) and the installed ``transformers`` 5.24 wheel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Keyed = Literal["role", "module"]
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

    ``keyed="module"`` (``hf_default``): ``rules`` are keyed by module class and parameter path
    (:data:`HF_BASE`), and ``variants`` holds, per class that defines its own init function,
    the rules it adds in front of them (:data:`HF_MODELS`).

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
    keyed: Keyed = "role"
    variants: tuple[tuple[str, tuple[tuple[str, Rule], ...]], ...] = ()

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
_HF_NOW = "transformers 5.25.0 (PyPI wheel)"


# ---------------------------------------------------------------------- Hugging Face
def uniform(bound: str, note: str = "") -> Rule:
    return Rule("uniform", bound, note=note)


# What torch.nn.init draws, with fans as torch computes them from the stored shape
# (``size(1) * receptive field``, ``size(0) * receptive field``), which is what Hugging Face's
# calls into torch.nn.init see.
XAVIER_UNIFORM = uniform("sqrt(6 / (fan_in + fan_out))", "xavier_uniform_")
XAVIER_NORMAL = normal("sqrt(2 / (fan_in + fan_out))", "xavier_normal_")
TORCH_LINEAR = uniform("1 / sqrt(fan_in)", "kaiming_uniform_(a=sqrt(5)), PyTorch's default")
# Flax's lecun_normal, as transformers ports it: std sqrt(1 / fan_in) / 0.8796 (the std of a
# normal cut at 2 sigma) but cut at the absolute bounds -2, 2, so at small std nothing is cut.
LECUN_NORMAL = Rule("trunc_normal", "1 / sqrt(fan_in) / 0.87962566103423978", bounds=(-2.0, 2.0),
                    note="lecun_normal_ (absolute bounds -2, 2)")  # fmt: skip
FLAX_EMBED = normal("1 / sqrt(fan_in)", "default_flax_embed_init_")


def keep(note: str) -> Rule:
    return Rule("keep", note=note)


# PreTrainedModel._init_weights (transformers/modeling_utils.py L2306-2370), which every model
# runs first. Keys are ``Class.path``: the rule the module of class ``Class`` applies to the
# parameter at ``path`` below it. A plain class name matches subclasses too (``Linear`` is also
# Falcon's ``FalconLinear``), as ``isinstance`` does; a name with ``*`` is a glob over the
# module's own class name (``*LayerNorm*``), as Hugging Face finds its norms by name. A suffix
# ``[attr=value]`` makes the rule apply only when the model's config has that value.
#
# Symbols: ``sigma`` (``initializer_range``, else ``init_std``, else ``initializer_factor`` of
# the config of the model whose ``_init_weights`` runs), ``factor`` (its
# ``initializer_factor``), ``fan_in``/``fan_out`` (torch's, from the stored shape), ``L``/``i``,
# and any number of the config nearest to the module (``hidden_size``, ``d_model``,
# ``num_hidden_layers``, ...), then of the model's config.
#
# How the rules combine, as Hugging Face applies them: modules are visited children first
# (post-order), each once; for each parameter below a module the first rule that names it
# (the model's own rules, then these) is the module's write; the last write wins, so a block's
# rule for its ``q_proj`` overrides the ``Linear`` rule of the ``q_proj`` itself.
HF_BASE: tuple[tuple[str, Rule], ...] = (
    *((f"{conv}.{p}", normal("sigma") if p == "weight" else ZEROS)
      for conv in ("Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d")
      for p in ("weight", "bias")),
    ("LSTM.weight_*", XAVIER_UNIFORM), ("LSTM.bias_*", ZEROS),
    ("Embedding.weight", normal("sigma")),
    # MultiheadAttention: PyTorch's own _reset_parameters (its out_proj is a Linear above)
    ("MultiheadAttention.in_proj_weight", XAVIER_UNIFORM),
    ("MultiheadAttention.q_proj_weight", XAVIER_UNIFORM),
    ("MultiheadAttention.k_proj_weight", XAVIER_UNIFORM),
    ("MultiheadAttention.v_proj_weight", XAVIER_UNIFORM),
    ("MultiheadAttention.in_proj_bias", ZEROS), ("MultiheadAttention.out_proj.bias", ZEROS),
    ("MultiheadAttention.bias_k", XAVIER_NORMAL), ("MultiheadAttention.bias_v", XAVIER_NORMAL),
    *((f"{norm}.{p}", ONES if p == "weight" else ZEROS)
      for norm in ("GroupNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "*LayerNorm*",
                   "*RMSNorm*")
      for p in ("weight", "bias")),
)  # fmt: skip

_SINUSOIDAL = keep("sinusoidal table written by _init_weights (structured, kept)")


def _t5_rules(prefix: str) -> tuple[tuple[str, Rule], ...]:
    """T5 and mT5 (the same _init_weights, class names prefixed ``T5``/``MT5``)."""
    model = f"{prefix}Model|{prefix}ForConditionalGeneration|{prefix}EncoderModel|" \
            f"{prefix}ForQuestionAnswering"  # fmt: skip
    per_model = tuple((f"{m}.{path}", rule) for m in model.split("|") for path, rule in (
        ("shared.weight", normal("factor")),
        ("lm_head.weight[tie_word_embeddings=False]", normal("factor")),
        ("qa_outputs.weight", normal("factor / sqrt(d_model)")), ("qa_outputs.bias", ZEROS),
    ))  # fmt: skip
    dense = "factor / sqrt(d_model)"
    return (
        (f"{prefix}LayerNorm.weight", const("factor")),
        *per_model,
        (f"{prefix}ForTokenClassification.classifier.weight", normal("factor")),
        (f"{prefix}ForTokenClassification.classifier.bias", ZEROS),
        (f"{prefix}ClassificationHead.dense.weight", normal(dense)),
        (f"{prefix}ClassificationHead.dense.bias", ZEROS),
        (f"{prefix}ClassificationHead.out_proj.weight", normal(dense)),
        (f"{prefix}ClassificationHead.out_proj.bias", ZEROS),
        (f"{prefix}DenseActDense.wi.weight", normal(dense)),
        (f"{prefix}DenseActDense.wo.weight", normal("factor / sqrt(d_ff)")),
        (f"{prefix}DenseGatedActDense.wi_0.weight", normal(dense)),
        (f"{prefix}DenseGatedActDense.wi_1.weight", normal(dense)),
        (f"{prefix}DenseGatedActDense.wo.weight", normal("factor / sqrt(d_ff)")),
        *((f"{prefix}Dense{kind}.{lin}.bias", ZEROS) for kind in ("ActDense", "GatedActDense")
          for lin in ("wi", "wi_0", "wi_1", "wo")),
        (f"{prefix}Attention.q.weight", normal("factor / sqrt(d_model * d_kv)")),
        (f"{prefix}Attention.k.weight", normal("factor / sqrt(d_model)")),
        (f"{prefix}Attention.v.weight", normal("factor / sqrt(d_model)")),
        (f"{prefix}Attention.o.weight", normal("factor / sqrt(num_heads * d_kv)")),
        (f"{prefix}Attention.relative_attention_bias.weight", normal("factor / sqrt(d_model)")),
    )  # fmt: skip


def _lm_head_bias(*heads: str) -> tuple[tuple[str, Rule], ...]:
    """BERT-style masked-LM heads own a bias outside their decoder Linear; it starts at 0."""
    return tuple((f"{head}.bias", ZEROS) for head in heads)


def _experts(prefix: str) -> tuple[tuple[str, Rule], ...]:
    """Mixture-of-experts layers store the experts' weights as 3-D parameters and the router
    as a bare parameter: all N(0, sigma^2)."""
    return (
        (f"{prefix}Experts.gate_up_proj", normal("sigma")),
        (f"{prefix}Experts.down_proj", normal("sigma")),
        (f"{prefix}TopKRouter.weight", normal("sigma")),
    )


_CLIP_IN = "factor / sqrt(hidden_size * 2 * num_hidden_layers)"
_SIGLIP_ATTENTION = tuple(
    (f"SiglipAttention.{p}_proj.{kind}", XAVIER_UNIFORM if kind == "weight" else ZEROS)
    for p in ("q", "k", "v", "out") for kind in ("weight", "bias")
)  # fmt: skip

# Per class that defines its own _init_weights (transformers/models/<name>/modeling_<name>.py),
# the rules it applies after calling the base one; in the order of its if/elif chain. A class
# listed with no rules sets only buffers (position ids, causal masks, rotary tables).
HF_MODELS: dict[str, tuple[tuple[str, Rule], ...]] = {
    "GPT2PreTrainedModel": (
        ("Conv1D.weight", normal("sigma")), ("Conv1D.bias", ZEROS),
        # GPT-2's depth scaling of the two residual writers of each block
        ("GPT2Attention.c_proj.weight", normal("sigma / sqrt(2 * n_layer)")),
        ("GPT2MLP.c_proj.weight", normal("sigma / sqrt(2 * n_layer)")),
    ),
    "GPTBigCodePreTrainedModel": (
        ("GPTBigCodeMLP.c_proj.weight", normal("sigma / sqrt(2 * n_layer)")),
        ("GPTBigCodeAttention.c_proj.weight", normal("sigma / sqrt(2 * n_layer)")),
    ),
    # Gemma's RMSNorm computes x * (1 + w): 0 is the neutral scale.
    "GemmaPreTrainedModel": (("*RMSNorm*.weight", ZEROS),),
    "Gemma2PreTrainedModel": (("*RMSNorm*.weight", ZEROS),),
    "FalconPreTrainedModel": (("FalconLinear.weight", normal("sigma")),
                              ("FalconLinear.bias", ZEROS)),
    "GPTJPreTrainedModel": (),
    "GPTNeoPreTrainedModel": (),
    "CodeGenPreTrainedModel": (),
    "ElectraPreTrainedModel": (),
    "BartPreTrainedModel": (),
    "MBartPreTrainedModel": (),
    "BlenderbotPreTrainedModel": (),
    "PegasusPreTrainedModel": (("PegasusSinusoidalPositionalEmbedding.weight", _SINUSOIDAL),),
    "MarianPreTrainedModel": (("MarianSinusoidalPositionalEmbedding.weight", _SINUSOIDAL),),
    "WhisperPreTrainedModel": (
        ("WhisperEncoder.embed_positions.weight", _SINUSOIDAL),
        ("WhisperForAudioClassification.layer_weights[use_weighted_layer_sum=True]",
         const("1 / (num_hidden_layers + 1)")),
    ),
    "MixtralPreTrainedModel": _experts("Mixtral"),
    "Qwen2MoePreTrainedModel": _experts("Qwen2Moe"),
    "BertPreTrainedModel": _lm_head_bias("BertLMPredictionHead"),
    "RobertaPreTrainedModel": _lm_head_bias("RobertaLMHead"),
    "XLMRobertaPreTrainedModel": _lm_head_bias("XLMRobertaLMHead"),
    "AlbertPreTrainedModel": _lm_head_bias("AlbertMLMHead"),
    "DebertaV2PreTrainedModel": _lm_head_bias("LegacyDebertaV2LMPredictionHead",
                                              "DebertaV2LMPredictionHead"),
    "DistilBertPreTrainedModel": (
        ("Embeddings.position_embeddings.weight[sinusoidal_pos_embds=True]", _SINUSOIDAL),
    ),
    "ViTPreTrainedModel": (
        # trunc_normal_(std=initializer_range) keeps PyTorch's absolute bounds -2, 2
        ("ViTEmbeddings.position_embeddings", Rule("trunc_normal", "sigma", bounds=(-2.0, 2.0))),
        ("ViTEmbeddings.cls_token", Rule("trunc_normal", "sigma", bounds=(-2.0, 2.0))),
        ("ViTEmbeddings.mask_token", ZEROS),
    ),
    "T5PreTrainedModel": _t5_rules("T5"),
    "MT5PreTrainedModel": _t5_rules("MT5"),
    # CLIP scales each tower by its own width and depth (the tower's config) and the model's
    # initializer_factor; text embeddings use a fixed 0.02.
    "CLIPPreTrainedModel": (
        ("CLIPTextEmbeddings.token_embedding.weight", normal("0.02 * factor")),
        ("CLIPTextEmbeddings.position_embedding.weight", normal("0.02 * factor")),
        ("CLIPVisionEmbeddings.class_embedding", normal("factor / sqrt(hidden_size)")),
        ("CLIPVisionEmbeddings.patch_embedding.weight", normal("initializer_range * factor")),
        ("CLIPVisionEmbeddings.position_embedding.weight", normal("initializer_range * factor")),
        ("CLIPAttention.q_proj.weight", normal(_CLIP_IN)),
        ("CLIPAttention.k_proj.weight", normal(_CLIP_IN)),
        ("CLIPAttention.v_proj.weight", normal(_CLIP_IN)),
        ("CLIPAttention.out_proj.weight", normal("factor / sqrt(hidden_size)")),
        ("CLIPMLP.fc1.weight", normal("factor / sqrt(2 * hidden_size)")),
        ("CLIPMLP.fc2.weight", normal(_CLIP_IN)),
        # projections and classifier: factor / sqrt(their input width)
        ("CLIPModel.text_projection.weight", normal("factor / sqrt(fan_in)")),
        ("CLIPModel.visual_projection.weight", normal("factor / sqrt(fan_in)")),
        ("CLIPVisionModelWithProjection.visual_projection.weight",
         normal("factor / sqrt(fan_in)")),
        ("CLIPTextModelWithProjection.text_projection.weight", normal("factor / sqrt(fan_in)")),
        ("CLIPForImageClassification.classifier.weight", normal("factor / sqrt(fan_in)")),
    ),
    # SigLIP ports big_vision's Flax init: lecun_normal linears, xavier_uniform attention and
    # MLP, Flax's default embedding init, 1e-6 MLP biases.
    "SiglipPreTrainedModel": (
        ("SiglipVisionEmbeddings.position_embedding.weight", normal("1 / sqrt(fan_in)")),
        ("Embedding.weight", FLAX_EMBED),
        *_SIGLIP_ATTENTION,
        ("SiglipMLP.fc1.weight", XAVIER_UNIFORM), ("SiglipMLP.fc2.weight", XAVIER_UNIFORM),
        ("SiglipMLP.fc1.bias", normal("1e-6")), ("SiglipMLP.fc2.bias", normal("1e-6")),
        ("SiglipMultiheadAttentionPoolingHead.probe", XAVIER_UNIFORM),
        ("SiglipMultiheadAttentionPoolingHead.attention.in_proj_weight", XAVIER_UNIFORM),
        ("SiglipMultiheadAttentionPoolingHead.attention.in_proj_bias", ZEROS),
        ("SiglipModel.logit_scale", ZEROS), ("SiglipModel.logit_bias", ZEROS),
        ("SiglipForImageClassification.classifier.weight", normal("factor / sqrt(fan_in)")),
        ("Linear.weight", LECUN_NORMAL), ("Linear.bias", ZEROS),
        ("Conv2d.weight", LECUN_NORMAL), ("Conv2d.bias", ZEROS),
    ),
    # Mamba: S4D-real A, D = 1, dt's projection and bias, PyTorch's default for conv1d and
    # out_proj (divided by sqrt(num_hidden_layers) with rescale_prenorm_residual).
    "MambaPreTrainedModel": (
        ("MambaMixer.A_log", keep("S4D-real log(1..N) written by _init_weights (structured)")),
        ("MambaMixer.D", ONES),
        ("MambaMixer.dt_proj.weight[time_step_init_scheme=constant]",
         const("time_step_scale / sqrt(time_step_rank)")),
        ("MambaMixer.dt_proj.weight[time_step_init_scheme=random]",
         uniform("time_step_scale / sqrt(time_step_rank)")),
        ("MambaMixer.dt_proj.bias", keep("inverse softplus of dt ~ logU(time_step_min, "
                                         "time_step_max), drawn by _init_weights (kept)")),
        ("MambaMixer.conv1d.weight", TORCH_LINEAR), ("MambaMixer.conv1d.bias", ZEROS),
        ("MambaMixer.out_proj.weight[rescale_prenorm_residual=True]",
         uniform("1 / sqrt(fan_in * num_hidden_layers)")),
        ("MambaMixer.out_proj.weight", TORCH_LINEAR),
    ),
}  # fmt: skip


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
        "hf_default", "Hugging Face PreTrainedModel._init_weights and the models' own overrides",
        rules=HF_BASE, variants=tuple(HF_MODELS.items()), keyed="module",
        source=Citation("huggingface/transformers", "src/transformers/modeling_utils.py "
                        "L2306-2370 (_init_weights); models/*/modeling_*.py (overrides)", _HF_NOW),
        defaults=(("sigma", 0.02), ("factor", 1.0)), zero_padding_row=True,
        notes=("sigma = config.initializer_range, else init_std, else initializer_factor "
               "(as Hugging Face's base _init_weights picks it); padding_idx rows are zero",
               "rules are keyed by module class, as _init_weights dispatches; a parameter that "
               "no rule sets keeps its constructor value"),
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
