"""The ELECTRA model: a BERT-style post-LayerNorm encoder, a small MLM generator and a discriminator.

Read top to bottom: Embeddings -> SelfAttention -> Layer -> ElectraModel (the encoder) -> Generator and
Discriminator heads -> ELECTRA, the pretraining model whose `forward` is the paper's replaced-token detection.
Parameter names mirror `transformers`' ELECTRA classes, so converting is (nearly) the identity key map.
Details and sources: docs/faithfulness.md §3 (objective) and §4 (model). Single-device code: DDP, autocast and
`torch.compile` wrap it from the outside.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from electra import objective as obj
from electra.config import ModelConfig, PretrainConfig
from electra.objective import LossTotals, PretrainOutput  # (defined there, the loss records; also importable here)

# ---------------------------------------------------------------------------------------------- encoder


class Embeddings(nn.Module):
    """word + position + token type, then LayerNorm and dropout. Shared by generator and discriminator.

    With `base` (gradient-disentangled embedding sharing, He et al. 2021, DeBERTaV3 §3.2) the three tables hold
    only a delta: the table used is stop_gradient(base table) + delta, so this module's loss trains the delta and
    never the base (the generator's). `merge_base` folds the base in, leaving a plain module."""

    def __init__(self, cfg: ModelConfig, base: Embeddings | None = None):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.embedding_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.embedding_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.embedding_size)
        self.LayerNorm = nn.LayerNorm(cfg.embedding_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self._base = (base,)  # a tuple: not a submodule, so its tables are neither saved nor trained through here

    def _lookup(self, name: str, ids: Tensor) -> Tensor:
        out = getattr(self, name)(ids)
        base = self._base[0]
        return out if base is None else out + getattr(base, name)(ids).detach()

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        L = input_ids.shape[1]
        positions = torch.arange(L, device=input_ids.device)
        x = self._lookup("word_embeddings", input_ids) + self._lookup("token_type_embeddings", token_type_ids)
        x = x + self._lookup("position_embeddings", positions)  # (B, L, E)
        return self.dropout(self.LayerNorm(x))

    @property
    def base(self) -> Embeddings | None:
        """The module whose tables this one adds its deltas to (gdes), or None."""
        return self._base[0]

    @torch.no_grad()
    def merge_base(self) -> None:
        """delta += base for each table, and forget the base: the same outputs from a plain Embeddings."""
        base = self._base[0]
        if base is None:
            return
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            getattr(self, name).weight += getattr(base, name).weight
        self._base = (None,)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout_p = cfg.attention_probs_dropout_prob

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B, L, H = x.shape
        # one matmul for q, k and v (the parameters stay separate, as transformers names them)
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        qkv = F.linear(x, weight, bias).view(B, L, 3, self.num_heads, H // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, nh, L, hs)
        # mask: (B, 1, 1, L) boolean, True = attend; None = no padding anywhere
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout_p if self.training else 0.0)
        return y.transpose(1, 2).reshape(B, L, H)


class DenseLayerNorm(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual): the output half of both sublayers of a post-LN block."""

    def __init__(self, d_in: int, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(d_in, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self = SelfAttention(cfg)  # attribute names match transformers' state-dict keys
        self.output = DenseLayerNorm(cfg.hidden_size, cfg)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU


class Layer(nn.Module):
    """Post-LN BERT block: a = LN(x + Attn(x)); y = LN(a + FFN(a))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.intermediate = Intermediate(cfg)
        self.output = DenseLayerNorm(cfg.intermediate_size, cfg)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        for layer in self.layer:
            x = layer(x, mask)
        return x


class ElectraModel(nn.Module):
    """Embeddings (+ a projection when embedding size != hidden size) and the transformer encoder."""

    def __init__(self, cfg: ModelConfig, embeddings: Embeddings | None = None):
        super().__init__()
        self.config = cfg
        self.embeddings = embeddings if embeddings is not None else Embeddings(cfg)
        # (the identity when the sizes agree: the same parameter names as transformers either way)
        same = cfg.embedding_size == cfg.hidden_size
        self.embeddings_project = nn.Identity() if same else nn.Linear(cfg.embedding_size, cfg.hidden_size)
        self.encoder = Encoder(cfg)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings_project(self.embeddings(input_ids, token_type_ids))  # (B, L, H)
        return self.encoder(x, attention_bias(attention_mask))


def attention_bias(attention_mask: Tensor | None) -> Tensor | None:
    """(B, L) 0/1 padding mask -> (B, 1, 1, L) boolean key mask for SDPA; None when nothing is padded.

    Padded keys get probability exactly 0 (the official code adds -10000, which is 0 after softmax in fp32).
    """
    if attention_mask is None:
        return None
    if not torch.compiler.is_compiling() and bool(attention_mask.all()):  # (a data-dependent branch breaks graphs)
        return None
    return attention_mask.bool()[:, None, None, :]


# ---------------------------------------------------------------------------------------------- heads


class GeneratorPredictions(nn.Module):
    """dense(H_g -> E) -> GELU -> LayerNorm; the output layer is the shared word embedding matrix."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.embedding_size)
        self.LayerNorm = nn.LayerNorm(cfg.embedding_size, eps=cfg.layer_norm_eps)

    def forward(self, h: Tensor) -> Tensor:
        return self.LayerNorm(F.gelu(self.dense(h)))


class Generator(nn.Module):
    """Masked-LM generator: encoder + MLM head, with its output layer tied to the word embeddings."""

    def __init__(self, cfg: ModelConfig, embeddings: Embeddings | None = None):
        super().__init__()
        self.config = cfg
        self.electra = ElectraModel(cfg, embeddings)
        self.generator_predictions = GeneratorPredictions(cfg)
        self.generator_lm_head = nn.Linear(cfg.embedding_size, cfg.vocab_size)
        self.generator_lm_head.weight = self.electra.embeddings.word_embeddings.weight

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Vocabulary logits (B, N, V) at `positions` (B, N) only, or (B, L, V) everywhere if None; always fp32,
        also under autocast (they feed the Gumbel sampling and the cross-entropy, as in the official fp32 code)."""
        return self.logits(self.electra(input_ids, attention_mask, token_type_ids), positions)

    def logits(self, h: Tensor, positions: Tensor | None = None) -> Tensor:
        """The MLM head on encoder outputs `h` (B, L, H_g), as `forward`."""
        if positions is not None:
            h = h.gather(1, positions[:, :, None].expand(-1, -1, h.shape[-1]))  # (B, N, H_g)
        h = self.generator_predictions(h)
        head = self.generator_lm_head
        with torch.autocast(h.device.type, enabled=False):
            return F.linear(h.float(), head.weight.float(), head.bias.float())


class DiscriminatorPredictions(nn.Module):
    """dense(H -> H) -> GELU -> dense(H -> 1): one replaced/original logit per token."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dense_prediction = nn.Linear(cfg.hidden_size, 1)

    def forward(self, h: Tensor) -> Tensor:
        return self.dense_prediction(F.gelu(self.dense(h))).squeeze(-1)


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig, embeddings: Embeddings | None = None):
        super().__init__()
        self.config = cfg
        self.electra = ElectraModel(cfg, embeddings)
        self.discriminator_predictions = DiscriminatorPredictions(cfg)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Replaced-token logits (B, L)."""
        return self.discriminator_predictions(self.electra(input_ids, attention_mask, token_type_ids))


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """As the official code (docs/faithfulness.md §4): truncated normal (cut at +-2 std, absolute bounds) for
    embeddings and dense kernels, zero biases, LayerNorm 1/0; Glorot-uniform for `embeddings_project` and the
    discriminator's final dense."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            if name.endswith(("embeddings_project", "dense_prediction")):
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------- ELECTRA


class ELECTRA(nn.Module):
    """Generator + discriminator trained jointly with replaced-token detection (or, with objective="mlm",
    the masked-LM baseline alone; replace-mlm and all-tokens-mlm train a full-size masked LM, `masked_lm`, on the
    generator's samples instead of a discriminator). `forward` takes a batch of real tokens and does masking,
    generation, sampling and both losses, so one DDP wrapper covers everything."""

    generator_class: type[nn.Module] = Generator  # (Electric's subclass: its two-tower cloze model)

    def __init__(self, cfg: PretrainConfig, special_ids: obj.SpecialIds):
        super().__init__()
        self.cfg = cfg
        self.special = special_ids
        learner = cfg.objective != "mlm"  # a full-size model learns from the generator's samples
        kind, name = (Discriminator, "discriminator") if cfg.objective in obj.RTD else (Generator, "masked_lm")
        if learner and cfg.embedding_sharing == "official":
            setattr(self, name, kind(cfg.model))
            shared = getattr(self, name).electra.embeddings  # word/pos/type tables + embedding LayerNorm
            self.generator = self.generator_class(cfg.generator_model, shared)
        else:
            self.generator = self.generator_class(cfg.generator_model)
        if learner and cfg.embedding_sharing != "official":
            # "none": the discriminator's own tables; "gdes": stop_gradient(generator's tables) + its own deltas
            base = self.generator.electra.embeddings if cfg.embedding_sharing == "gdes" else None
            setattr(self, name, kind(cfg.model, Embeddings(cfg.model, base)))
        if cfg.objective == "all-tokens-mlm":  # the copy probability D: a sigmoid layer (faithfulness §3.5)
            self.copy_predictions = DiscriminatorPredictions(cfg.model)
        if cfg.tie_all_weights:  # official untied_generator=False: one encoder, two heads (faithfulness §4)
            self.generator.electra = self.discriminator.electra
        init_weights(self, cfg.model.initializer_range)
        if learner and cfg.embedding_sharing == "gdes":
            for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
                nn.init.zeros_(getattr(self.delivered().embeddings, table).weight)  # zero deltas

    def delivered(self) -> ElectraModel:
        """The full-size encoder the run delivers (finetuning, probing): the discriminator's, the masked LM's
        (replace-mlm, all-tokens-mlm), or the generator's (mlm)."""
        return next(getattr(self, n) for n in ("discriminator", "masked_lm", "generator") if hasattr(self, n)).electra

    def mask(self, input_ids: Tensor, attention_mask: Tensor, rng: torch.Generator | None = None) -> obj.Masked:
        """Choose the positions to predict and corrupt them (dynamic masking, anew each step)."""
        cfg = self.cfg
        corrupt = dict(mask_token_prob=cfg.mask_token_prob, random_token_prob=cfg.random_token_prob, rng=rng)
        corrupt.update(vocab_size=cfg.model.vocab_size)
        if cfg.masking == "official":
            return obj.mask_tokens(
                input_ids, attention_mask, cfg.mask_prob, cfg.max_predictions, self.special, **corrupt
            )
        return obj.mask_tokens_bernoulli(input_ids, attention_mask, cfg.mask_prob, self.special, **corrupt)

    def generate(
        self, masked: obj.Masked, mask: Tensor, types: Tensor, rng: torch.Generator | None, total: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """The generator's loss, argmax and samples (None for mlm) at the masked slots, from their logits (B, N, V)
        (`electra.fused.fuse_generator_head` swaps in a version that never holds them all at once)."""
        cfg, (B, N), V = self.cfg, masked.positions.shape, self.cfg.model.vocab_size
        noise = None
        if cfg.objective != "mlm" and cfg.sampling == "gumbel":
            # the noise first (the stream is not used in between): a draw ends a compiled graph, the rest is one
            noise = torch.rand((B, N, V), generator=rng, device=mask.device)
        if cfg.uniform_generator:
            logits = torch.zeros(B, N, V, device=mask.device, requires_grad=True)
        else:
            logits = self.generator(masked.input_ids, mask, types, masked.positions)
        loss = obj.generator_loss(logits, masked.targets, masked.weights, cfg.gen_label_smoothing, total)
        with torch.no_grad():
            disallow, argmax = (masked.targets if cfg.disallow_correct else None), logits.argmax(-1)
            if cfg.objective == "mlm":
                return loss, argmax, None
            return loss, argmax, obj.sample_replacements(logits, cfg.temperature, cfg.sampling, rng, disallow, noise)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor,
        rng: torch.Generator | None = None,
        masked: obj.Masked | None = None,
        totals: LossTotals | None = None,
    ) -> PretrainOutput:
        """The loss of this batch. `masked`: the result of `self.mask` if already drawn (then `rng` continues
        from that draw); `totals`: the loss denominators of the global batch this micro-batch belongs to."""
        cfg = self.cfg
        # 1. choose positions and corrupt them
        if masked is None:
            masked = self.mask(input_ids, attention_mask, rng)
        gen_total, disc_total = (None, None) if totals is None else totals
        # 2. and 3. the generator's loss, argmax and samples (fp32, no gradient) at the masked slots only
        gen_loss, predicted, sampled = self.generate(masked, attention_mask, token_type_ids, rng, gen_total)
        if sampled is None:  # mlm
            zero = gen_loss.new_zeros(())
            accuracy = obj.weighted_accuracy(predicted, masked.targets, masked.weights)
            return PretrainOutput(cfg.gen_weight * gen_loss, gen_loss.detach(), zero, accuracy, zero, zero, zero)
        with torch.no_grad():  # the discriminator's input and labels
            fake_ids, labels = obj.replace_tokens(input_ids, attention_mask, masked.positions, masked.weights, sampled)
        # 4. the discriminator's loss over every real token (electra-15: the masked-out ones), or a full-size masked
        # LM on the fake input, at the masked slots (replace-mlm) or with its copy head at every token (all-tokens-mlm)
        disc_logits = scored = None
        if cfg.objective in obj.RTD:
            disc_logits = self.discriminator(fake_ids, attention_mask, token_type_ids)  # (B, L)
            scored = obj.scored_positions(cfg.objective, masked, attention_mask)
            disc_loss = obj.discriminator_loss(disc_logits, labels, scored, cfg.disc_label_smoothing, disc_total)
            loss = cfg.gen_weight * gen_loss + cfg.disc_weight * disc_loss
        else:
            everywhere = cfg.objective == "all-tokens-mlm"
            h = self.masked_lm.electra(fake_ids, attention_mask, token_type_ids)
            lm_logits = self.masked_lm.logits(h, None if everywhere else masked.positions)
            copy_logits = self.copy_predictions(h) if everywhere else None
            disc_loss, d = obj.masked_lm_on_samples(
                lm_logits, copy_logits, masked, fake_ids, input_ids, labels, attention_mask, disc_total
            )
            loss = cfg.gen_weight * gen_loss + disc_loss  # (the paper gives no weight: 1, as an MLM's)
        with torch.no_grad():
            if disc_logits is not None:
                d = obj.discriminator_metrics(disc_logits, labels, scored)
            return PretrainOutput(
                loss=loss,
                gen_loss=gen_loss.detach(),
                disc_loss=disc_loss.detach(),
                gen_accuracy=obj.weighted_accuracy(predicted, masked.targets, masked.weights),
                sampled_accuracy=obj.weighted_accuracy(sampled, masked.targets, masked.weights),
                disc_accuracy=d["accuracy"],
                replaced_fraction=d["replaced_fraction"],
                disc_logits=None if disc_logits is None else disc_logits.detach(),
                disc_labels=labels,
                disc_input_ids=fake_ids,
                disc_mask=scored,
            )
