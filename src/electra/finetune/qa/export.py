"""Export a finetuned SQuAD run (`save_model=True`) as a `transformers` directory, loaded back and compared with
ours (docs/qa.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from electra.config import ModelConfig, from_dict
from electra.errors import ElectraError
from electra.finetune.qa.model import HeadOptions, QuestionAnswerer
from electra.finetune.results import read_record, saved_run
from electra.hf import copy_state, hf_config, load_weights, quiet_transformers, to_hf
from electra.io import write_dir, write_json
from electra.tokenizer import WordPiece, load_tokenizer

HEAD_FILE = "qa_head.safetensors"
VERIFY_TOLERANCE = 1e-4


def load_qa_run(run: str | os.PathLike) -> tuple[QuestionAnswerer, dict[str, Any], WordPiece]:
    """(the finetuned model in eval mode, the run's config.json, its tokenizer) from a `save_model` run."""

    run = Path(run)
    squad = lambda c: c.get("task") in ("squad11", "squad20") and "qa" in c  # noqa: E731
    config = saved_run(run, "SQuAD", squad, "its config.json names no SQuAD task")
    model_cfg = from_dict(ModelConfig, dict(config["model_config"]), str(run / "config.json"))
    options = HeadOptions(**{k: config["qa"][k] for k in HeadOptions.__dataclass_fields__})
    model = QuestionAnswerer(model_cfg, config["head"], options)
    load_weights(model, run / "model.safetensors", "the run's model")
    tok = load_tokenizer(run / "tokenizer", lowercase=config.get("tokenizer_lowercase"))
    if tok.fingerprint() != config.get("tokenizer_fingerprint"):
        raise ElectraError(f"SQuAD run {run}: its tokenizer/ is not the one the run used")
    return model.eval(), config, tok


def _probe(cfg: ModelConfig) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    L = min(16, cfg.max_position_embeddings)
    ids = torch.randint(cfg.vocab_size, (2, L), generator=g)
    mask = torch.ones_like(ids)
    mask[1, L // 2 :] = 0
    types = torch.zeros_like(ids)
    types[:, L // 4 :] = 1
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types * mask}


@torch.no_grad()
def _verify_transformers(directory: Path, model: QuestionAnswerer) -> float:
    from transformers import ElectraForQuestionAnswering

    with quiet_transformers():
        hf, info = ElectraForQuestionAnswering.from_pretrained(str(directory), output_loading_info=True)
    bad = {k: [n for n in v if not n.endswith("position_ids")] for k, v in info.items() if k != "error_msgs"}
    if any(bad.values()):
        raise ElectraError(f"export {directory}: transformers reports {bad}")
    batch = _probe(model.config)
    ours = model(**batch)
    theirs = hf.eval()(**batch)
    real = batch["attention_mask"].bool()
    diff = max((ours[k] - getattr(theirs, k)).abs()[real].max().item() for k in ("start_logits", "end_logits"))
    if not diff <= VERIFY_TOLERANCE:
        raise ElectraError(f"export {directory}: transformers computes logits that differ from ours by {diff:.3g}")
    return diff


@torch.no_grad()
def _verify_encoder(directory: Path, model: QuestionAnswerer) -> float:
    from transformers import ElectraModel

    with quiet_transformers():
        hf = ElectraModel.from_pretrained(str(directory)).eval()
    batch = _probe(model.config)
    real = batch["attention_mask"].bool()
    diff = (model.electra(**batch) - hf(**batch).last_hidden_state).abs()[real].max().item()
    if not diff <= VERIFY_TOLERANCE:
        raise ElectraError(f"export {directory}: transformers' encoder differs from ours by {diff:.3g}")
    return diff


def official_readme(head: dict[str, Any]) -> str:
    o = head["options"]
    return f"""# SQuAD {head["version"]} model with the official ELECTRA QA head (seed {head["seed"]})

This is the head of google-research/electra finetune/qa/qa_tasks.py, **not** transformers'
`ElectraForQuestionAnswering` (a single `Linear(H, 2)`), which cannot hold it. The encoder is a transformers
`ElectraModel` (this directory); the head's weights are `{HEAD_FILE}`; its options are in `qa_head.json`
(joint prediction {o["joint_prediction"]}, beam {o["beam_size"]}, answerable classifier {o["answerable_classifier"]},
using the start distribution {o["answerable_uses_start_logits"]}).

Inputs are `[CLS] question [SEP] context [SEP]` with token type 1 on the context and the final [SEP]. Positions
outside the context (except [CLS]) get -1000 added to the start and end logits. The answerable logit is the
"no answer" logit: large means unanswerable (the official SQuAD 2.0 threshold is -2.75).

```python
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoTokenizer, ElectraModel

tokenizer = AutoTokenizer.from_pretrained("DIR")
encoder = ElectraModel.from_pretrained("DIR").eval()
w = load_file("DIR/{HEAD_FILE}")
JOINT = {o["joint_prediction"]}
BEAM = {o["beam_size"]}
ANSWERABLE = {o["answerable_classifier"]}
USES_START = {o["answerable_uses_start_logits"]}


def dense(x, name):
    return x @ w[name + ".weight"].T + w[name + ".bias"]


@torch.no_grad()
def qa_head(batch):
    h = encoder(**batch).last_hidden_state  # (B, L, H)
    B, L, H = h.shape
    mask = (batch["attention_mask"] * batch["token_type_ids"]).float()
    mask[:, 0] += 1.0  # [CLS] stands for "no answer"
    penalty = 1000.0 * (mask - 1.0)
    start_logits = dense(h, "qa_start").squeeze(-1) + penalty
    out = {{"start_logits": start_logits}}
    if JOINT:  # end logits conditioned on each of the BEAM best starts
        k = min(BEAM, L)
        out["start_top_log_probs"], out["start_top_index"] = start_logits.log_softmax(-1).topk(k, -1)
        ends = []
        for j in range(k):
            h_start = h[torch.arange(B), out["start_top_index"][:, j]][:, None, :].expand(B, L, H)
            end = dense(F.gelu(dense(torch.cat([h_start, h], -1), "qa_end_hidden")), "qa_end").squeeze(-1)
            ends.append((end + penalty).log_softmax(-1).topk(k, -1))
        out["end_top_log_probs"] = torch.stack([e[0] for e in ends], 1)  # (B, k, k)
        out["end_top_index"] = torch.stack([e[1] for e in ends], 1)
    else:
        out["end_logits"] = dense(h, "qa_end").squeeze(-1) + penalty
    if ANSWERABLE:
        x = h[:, 0]
        if USES_START:
            pooled = (start_logits.softmax(-1)[:, :, None] * h).sum(1)
            x = F.gelu(dense(torch.cat([x, pooled], -1), "qa_answerable_hidden"))
        out["answerable_logit"] = dense(x, "qa_answerable").squeeze(-1)
    return out


batch = tokenizer("Who sat on the mat?", "The cat sat on the mat.", return_tensors="pt")
out = qa_head(batch)
if JOINT:
    scores = out["start_top_log_probs"][0][:, None] + out["end_top_log_probs"][0]
    i, j = divmod(int(scores.argmax()), scores.shape[-1])
    s, e = int(out["start_top_index"][0, i]), int(out["end_top_index"][0, i, j])
else:
    s, e = int(out["start_logits"][0].argmax()), int(out["end_logits"][0].argmax())
print(tokenizer.decode(batch["input_ids"][0, s : e + 1]), out.get("answerable_logit"))
```

The last lines take the best pair without the official filters; the official search (n-best {head["n_best_size"]},
at most {head["max_answer_length"]} pieces, end >= start, context positions with their max context, text from the
original context) is `electra.finetune.qa.postprocess.predict_answers`. Dev metrics of this run: {head["metrics"]}.
"""


def transformers_readme(head: dict[str, Any]) -> str:
    return f"""# SQuAD {head["version"]} model, transformers' `ElectraForQuestionAnswering` head (seed {head["seed"]})

Finetuned with `electra.finetune.qa.finetune_squad(..., head="transformers")`: `qa_outputs = Linear(H, 2)` on every
position gives the start and end logits. Load it with

```python
from transformers import AutoTokenizer, ElectraForQuestionAnswering

tokenizer = AutoTokenizer.from_pretrained("DIR")
model = ElectraForQuestionAnswering.from_pretrained("DIR")
```

or, with a transformers version that has the question-answering pipeline (before 5.x),
`pipeline("question-answering", model="DIR")`. Dev metrics of this run: {head["metrics"]}.
"""


def export_qa_run(run: str | Path, out: str | Path, force: bool = False) -> dict[str, Any]:
    """Export a `save_model` SQuAD run to `out` (an existing non-empty `out` needs `force`); returns its record."""
    from safetensors.torch import save_file
    from transformers import ElectraForQuestionAnswering

    run = Path(run)
    model, config, tok = load_qa_run(run)
    metrics = read_record(run / "metrics.json").get("metrics", {})
    record: dict[str, Any] = {"format": "electra-qa-export", "head": config["head"], "version": config["version"]}
    record |= {"seed": config.get("seed"), "source": str(run.resolve()), "pretrained_model": config.get("model")}
    record["options"] = {k: config["qa"][k] for k in HeadOptions.__dataclass_fields__}
    record |= {k: config["qa"][k] for k in ("n_best_size", "max_answer_length")}
    record["metrics"] = metrics

    def write_transformers(tmp: Path) -> None:
        hf = ElectraForQuestionAnswering(hf_config(model.config))
        hf.electra.load_state_dict(to_hf(model.electra).state_dict())
        copy_state(model, hf, "export of the QA model")  # also checks that every name matches
        with quiet_transformers():
            hf.save_pretrained(tmp)
        tok.save(tmp)
        record["class"] = "ElectraForQuestionAnswering"
        record["verified_max_abs_diff"] = _verify_transformers(tmp, model)
        write_json(tmp / "export.json", record)
        (tmp / "README.md").write_text(transformers_readme(record))

    def write_official(tmp: Path) -> None:
        with quiet_transformers():
            to_hf(model.electra).save_pretrained(tmp)
        tok.save(tmp)
        head = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k.startswith("qa_")}
        save_file(head, str(tmp / HEAD_FILE))
        record["class"] = "ElectraModel + official QA head"
        record["weights"] = HEAD_FILE
        record["verified_max_abs_diff"] = _verify_encoder(tmp, model)
        write_json(tmp / "qa_head.json", record)
        (tmp / "README.md").write_text(official_readme(record))

    write = write_transformers if config["head"] == "transformers" else write_official
    write_dir(out, write, force, source=run, source_name="the run being exported")
    return record
