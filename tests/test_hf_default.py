"""``recipe="hf_default"`` against the reference implementation: Hugging Face's own
``_init_weights``, which a model built from a config has already run.

Per architecture (small configs, nothing downloaded): record every parameter as the model's
constructor left it, plan and apply ``hf_default`` to the same model, and compare parameter by
parameter. A constant (norms, biases, ``D``) must come out equal, exactly; a random parameter
must follow the planned distribution both as Hugging Face drew it and as initlab drew it (KS
test against the exact distribution, std within 5/sqrt(2n) relative, kurtosis, which tells a
uniform from a normal); a parameter initlab keeps must have a reason, and equals Hugging
Face's value. Padding rows of embeddings are compared exactly and left out of the statistics.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from functools import partial

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import initlab
from initlab.initializers.recipe_plan import PlanRow, plan

transformers = pytest.importorskip("transformers")

P_MIN = 1e-4
D, F, V, L, H = 64, 128, 128, 2, 4
IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
DEC = dict(vocab_size=V, hidden_size=D, intermediate_size=F, num_hidden_layers=L,
           num_attention_heads=H, max_position_embeddings=64, **IDS)  # fmt: skip
ENC = dict(DEC, type_vocab_size=2)
SEQ = dict(vocab_size=V, d_model=D, encoder_layers=L, decoder_layers=3, encoder_ffn_dim=F,
           decoder_ffn_dim=F, encoder_attention_heads=H, decoder_attention_heads=H,
           max_position_embeddings=64, decoder_start_token_id=2, **IDS)  # fmt: skip
GPT = dict(vocab_size=V, n_embd=D, n_layer=L, n_head=H, n_positions=64, bos_token_id=1,
           eos_token_id=2)  # fmt: skip
TOWERS = dict(
    text_config=dict(vocab_size=V, hidden_size=D, intermediate_size=F, num_hidden_layers=L,
                     num_attention_heads=H, max_position_embeddings=32, **IDS),
    vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                       num_attention_heads=4, image_size=32, patch_size=8),
)  # fmt: skip

# name -> (model class, config class, config) in transformers; configs set init_std,
# initializer_range or initializer_factor away from their defaults where the model reads them,
# so that a rule reading the wrong one fails.
ARCHS: dict[str, tuple[str, str, dict]] = {
    "gpt2": ("GPT2LMHeadModel", "GPT2Config", GPT),
    "gpt_bigcode": ("GPTBigCodeForCausalLM", "GPTBigCodeConfig", GPT),
    "gptj": ("GPTJForCausalLM", "GPTJConfig", dict(GPT, rotary_dim=8)),
    "codegen": ("CodeGenForCausalLM", "CodeGenConfig", dict(GPT, rotary_dim=8)),
    "gpt_neo": ("GPTNeoForCausalLM", "GPTNeoConfig",
                dict(vocab_size=V, hidden_size=D, num_layers=L, num_heads=H,
                     attention_types=[[["global", "local"], 1]], max_position_embeddings=64,
                     bos_token_id=1, eos_token_id=2)),
    "gpt_neox": ("GPTNeoXForCausalLM", "GPTNeoXConfig", dict(DEC, initializer_range=0.03)),
    "llama": ("LlamaForCausalLM", "LlamaConfig", dict(DEC, initializer_range=0.03)),
    "mistral": ("MistralForCausalLM", "MistralConfig", dict(DEC, num_key_value_heads=2)),
    "mixtral": ("MixtralForCausalLM", "MixtralConfig",
                dict(DEC, num_local_experts=4, num_experts_per_tok=2)),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Config", dict(DEC, num_key_value_heads=2)),
    "qwen2_moe": ("Qwen2MoeForCausalLM", "Qwen2MoeConfig",
                  dict(DEC, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                       moe_intermediate_size=64, shared_expert_intermediate_size=64)),
    "qwen3": ("Qwen3ForCausalLM", "Qwen3Config", dict(DEC, head_dim=16, num_key_value_heads=2)),
    "gemma": ("GemmaForCausalLM", "GemmaConfig", dict(DEC, head_dim=16, num_key_value_heads=2)),
    "gemma2": ("Gemma2ForCausalLM", "Gemma2Config",
               dict(DEC, head_dim=16, num_key_value_heads=2)),
    "olmo": ("OlmoForCausalLM", "OlmoConfig", DEC),
    "olmo2": ("Olmo2ForCausalLM", "Olmo2Config", DEC),
    "stablelm": ("StableLmForCausalLM", "StableLmConfig", dict(DEC, num_key_value_heads=2)),
    "starcoder2": ("Starcoder2ForCausalLM", "Starcoder2Config", dict(DEC, num_key_value_heads=2)),
    "phi": ("PhiForCausalLM", "PhiConfig", DEC),
    "phi3": ("Phi3ForCausalLM", "Phi3Config", DEC),
    "falcon": ("FalconForCausalLM", "FalconConfig",
               dict(vocab_size=V, hidden_size=D, num_hidden_layers=L, num_attention_heads=H,
                    bos_token_id=1, eos_token_id=2)),
    "bloom": ("BloomForCausalLM", "BloomConfig",
              dict(vocab_size=V, hidden_size=D, n_layer=L, n_head=H, **IDS)),
    "opt": ("OPTForCausalLM", "OPTConfig",
            dict(vocab_size=V, hidden_size=D, ffn_dim=F, num_hidden_layers=L,
                 num_attention_heads=H, max_position_embeddings=64, word_embed_proj_dim=D,
                 init_std=0.05, **IDS)),
    "bert": ("BertForMaskedLM", "BertConfig", ENC),
    "roberta": ("RobertaForMaskedLM", "RobertaConfig", dict(ENC, initializer_range=0.04)),
    "xlm_roberta": ("XLMRobertaForMaskedLM", "XLMRobertaConfig", ENC),
    "distilbert": ("DistilBertForMaskedLM", "DistilBertConfig",
                   dict(vocab_size=V, dim=D, hidden_dim=F, n_layers=L, n_heads=H,
                        max_position_embeddings=64, pad_token_id=0)),
    "albert": ("AlbertForMaskedLM", "AlbertConfig", dict(ENC, embedding_size=32)),
    "electra": ("ElectraForPreTraining", "ElectraConfig", dict(ENC, embedding_size=32)),
    "deberta_v2": ("DebertaV2ForMaskedLM", "DebertaV2Config", ENC),
    "t5": ("T5ForConditionalGeneration", "T5Config",
           dict(vocab_size=V, d_model=D, d_kv=16, d_ff=F, num_layers=L, num_decoder_layers=3,
                num_heads=H, initializer_factor=0.5, **IDS)),
    "mt5": ("MT5ForConditionalGeneration", "MT5Config",
            dict(vocab_size=V, d_model=D, d_kv=16, d_ff=F, num_layers=L, num_heads=H,
                 tie_word_embeddings=False, **IDS)),
    "bart": ("BartForConditionalGeneration", "BartConfig", dict(SEQ, init_std=0.05)),
    "mbart": ("MBartForConditionalGeneration", "MBartConfig", SEQ),
    "pegasus": ("PegasusForConditionalGeneration", "PegasusConfig", SEQ),
    "marian": ("MarianMTModel", "MarianConfig", dict(SEQ, decoder_vocab_size=V)),
    "whisper": ("WhisperForConditionalGeneration", "WhisperConfig",
                dict(SEQ, num_mel_bins=16, max_source_positions=32, max_target_positions=32,
                     init_std=0.05)),
    "vit": ("ViTForImageClassification", "ViTConfig",
            dict(hidden_size=D, intermediate_size=F, num_hidden_layers=L, num_attention_heads=H,
                 image_size=32, patch_size=8, num_labels=10)),
    "clip": ("CLIPModel", "CLIPConfig",
             dict(TOWERS, projection_dim=32, initializer_factor=0.5,
                  vision_config=dict(TOWERS["vision_config"], initializer_range=0.05))),
    "siglip": ("SiglipModel", "SiglipConfig", TOWERS),
    "mamba": ("MambaForCausalLM", "MambaConfig",
              dict(vocab_size=V, hidden_size=D, state_size=16, num_hidden_layers=L, **IDS)),
    "mamba_rescaled": ("MambaForCausalLM", "MambaConfig",
                       dict(vocab_size=V, hidden_size=D, state_size=16, num_hidden_layers=3,
                            rescale_prenorm_residual=True, time_step_init_scheme="constant",
                            **IDS)),
}  # fmt: skip


def build(name: str, seed: int = 0) -> nn.Module:
    """The model ``name`` of :data:`ARCHS`, built (and so initialized by Hugging Face) with a
    fixed seed, leaving the global RNG as it was."""
    model_cls, config_cls, kwargs = ARCHS[name]
    config = getattr(transformers, config_cls)(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return getattr(transformers, model_cls)(config)


def _target(row: PlanRow) -> tuple[Callable, float, float]:
    """The CDF, std and kurtosis of the distribution ``row`` plans (SciPy, not initlab)."""
    if row.dist == "uniform":
        return (
            partial(stats.uniform.cdf, loc=-row.value, scale=2 * row.value),
            row.value / 3**0.5,
            1.8,
        )
    if row.dist == "trunc_normal":
        a, b = (bound / row.param_std for bound in row.bounds)
        kurtosis = float(stats.truncnorm.stats(a, b, moments="k")) + 3
        std = float(stats.truncnorm.std(a, b)) * row.param_std
        return partial(stats.truncnorm.cdf, a=a, b=b, scale=row.param_std), std, kurtosis
    return partial(stats.norm.cdf, scale=row.param_std), row.param_std, 3.0


def _follows(x: np.ndarray, row: PlanRow, who: str) -> None:
    """``x`` looks drawn from ``row``'s distribution: std, mean, KS test, kurtosis."""
    cdf, target, kurtosis = _target(row)
    n = x.size
    where = f"{row.parameter} ({who}, {row.dist}, target std {target:.4g})"
    assert abs(x.std() / target - 1) < 5 / math.sqrt(2 * n), (where, x.std())
    assert abs(x.mean()) < 5 * target / math.sqrt(n), (where, x.mean())
    if n >= 100:
        p = stats.kstest(x, cdf).pvalue
        assert p > P_MIN, (where, f"KS p = {p:.2e}")
    if n >= 1000:
        k = float(((x - x.mean()) ** 4).mean() / x.var() ** 2)
        assert abs(k - kurtosis) < 5 * math.sqrt(24 / n), (where, k, kurtosis)


def compare(name: str) -> Counter:
    """Apply ``hf_default`` to a fresh ``name`` and compare each parameter with the value
    Hugging Face gave it. Returns counts: ``exact``, ``statistical``, ``kept``."""
    model = build(name)
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    rows = {r.parameter: r for r in plan(model, "hf_default").rows}
    initlab.init_model(model, recipe="hf_default", seed=0)
    modules = dict(model.named_modules())
    counts: Counter = Counter()
    for pname, param in model.named_parameters():
        hf, ours, row = own[pname], param.detach(), rows[pname]
        module = modules[pname.rpartition(".")[0]]
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            pad = module.padding_idx
            assert torch.equal(ours[pad], hf[pad]), f"{name}: {pname} padding row"
            keep = torch.ones(hf.shape[0], dtype=torch.bool)
            keep[pad] = False
            hf, ours = hf[keep], ours[keep]
        if row.dist == "keep":
            assert row.note, f"{name}: {pname} kept without a reason"
            assert torch.equal(ours, hf)
            counts["kept"] += 1
        elif torch.all(hf == hf.reshape(-1)[0]):
            assert row.dist == "constant" and torch.equal(ours, hf), (
                f"{name}: {pname}: Hugging Face gives the constant {hf.reshape(-1)[0].item():g}, "
                f"initlab {row.dist} {row.formula}: {ours.reshape(-1)[:4].tolist()}"
            )
            counts["exact"] += 1
        else:
            assert row.dist in ("normal", "trunc_normal", "uniform"), (name, pname, row.dist)
            _follows(hf.double().numpy().reshape(-1), row, "Hugging Face")
            _follows(ours.double().numpy().reshape(-1), row, "initlab")
            counts["statistical"] += 1
    return counts


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: threads only add contention (2x slower on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ARCHS)
def test_hf_default_is_the_model_own_init(name):
    counts = compare(name)
    assert counts["exact"] + counts["statistical"] > 0


class _Custom(nn.Module):
    """A model of one's own: Hugging Face's base rules by module type, nothing else."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16, padding_idx=0)
        self.lstm = nn.LSTM(16, 32)
        self.gru = nn.GRU(16, 16)
        self.norm = nn.LayerNorm(16)
        self.scale = nn.Parameter(torch.full((16,), 0.5))
        self.head = nn.Linear(16, 50)


def test_a_model_of_ones_own_gets_the_base_rules_and_keeps_what_they_do_not_name():
    with torch.random.fork_rng(devices=[]):
        model = _Custom()
    gru = model.gru.weight_hh_l0.detach().clone()
    rows = {r.parameter: r for r in plan(model, "hf_default").rows}
    assert (rows["emb.weight"].dist, rows["emb.weight"].param_std) == ("normal", 0.02)
    assert (rows["head.weight"].rule, rows["head.bias"].value) == ("Linear.weight", 0.0)
    lstm = rows["lstm.weight_ih_l0"]  # (4 * 32, 16): xavier_uniform over the whole tensor
    assert (lstm.dist, lstm.value) == ("uniform", pytest.approx(math.sqrt(6 / (16 + 128))))
    assert rows["lstm.bias_hh_l0"].value == 0.0
    assert (rows["norm.weight"].value, rows["norm.bias"].value) == (1.0, 0.0)
    for name in ("gru.weight_hh_l0", "scale"):  # Hugging Face leaves GRUs and bare parameters
        assert rows[name].dist == "keep" and "constructor" in rows[name].note
    initlab.init_model(model, recipe="hf_default", seed=0)
    assert torch.all(model.emb.weight[0] == 0) and torch.all(model.scale == 0.5)
    assert torch.equal(model.gru.weight_hh_l0, gru)
    assert model.lstm.weight_ih_l0.abs().max() <= math.sqrt(6 / 144)


def test_an_init_initlab_has_not_read_is_named_in_the_notes():
    class MyLlama(transformers.LlamaForCausalLM):
        def _init_weights(self, module):
            super()._init_weights(module)

    with torch.random.fork_rng(devices=[]):
        model = MyLlama(transformers.LlamaConfig(**DEC))
    notes = plan(model, "hf_default").notes
    assert any(n.startswith("MyLlama has its own _init_weights") for n in notes)
    assert not any("has its own" in n for n in plan(build("llama"), "hf_default").notes)


def test_the_per_model_rules_are_listed():
    listed = next(r for r in initlab.list_recipes() if r["name"] == "hf_default")
    assert listed["rules"]["Linear.weight"] == "normal(std=sigma)"
    clip = listed["variants"]["CLIPPreTrainedModel"]
    assert (
        clip["CLIPMLP.fc2.weight"]
        == "normal(std=factor / sqrt(hidden_size * 2 * num_hidden_layers))"
    )
    assert {"T5PreTrainedModel", "SiglipPreTrainedModel", "MambaPreTrainedModel"} <= set(
        listed["variants"]
    )
