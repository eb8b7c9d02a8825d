"""The speed variants of `electra.fused` (`--fused-generator-head`, `--graph-optimizer`) against the plain path:
the same losses, samples and weights, step by step, on the CPU (issue #49, item 2)."""

import json

import pytest
import torch
from test_bench import TINY as BENCH
from test_objective_variants import pretrain
from test_pretrain import SPECIAL, TINY, data_dir, metrics, random_batch, tiny_cfg  # noqa: F401  (data_dir: fixture)
from test_reliability import _snapshot
from torch._dynamo.utils import counters

from electra import dist, fused, init
from electra.cli import main
from electra.errors import ElectraError
from electra.train.step import BatchPlan, Precision, build_optimizer, train_step

CPU = dist.DistInfo(0, 1, 0, torch.device("cpu"))
GRAPH_UPDATE_INIT = fused.GraphUpdate.__init__


def init_eagerly(update, optimizer, max_norm, mode, backend="inductor"):
    """`GraphUpdate.__init__` without compiling (inductor's C++ build takes minutes on the CPU)."""
    GRAPH_UPDATE_INIT(update, optimizer, max_norm, None)


HEAD_CASES = {
    "electra": {},
    "label smoothing": {"gen_label_smoothing": 0.1},
    "disallow correct": {"disallow_correct": True},
    "temperature": {"temperature": 0.7},
    "mlm": {"objective": "mlm"},
    "replace-mlm": {"objective": "replace-mlm"},
}


def forward_and_grads(cfg, fuse, seed=3):
    torch.manual_seed(0)
    model = init.build(cfg, SPECIAL)
    if fuse:
        fused.fuse_generator_head(model)
    b = random_batch(seed=seed)
    g = torch.Generator().manual_seed(7)
    torch.manual_seed(1)  # dropout
    out = model(
        b["input_ids"], b["attention_mask"], b["token_type_ids"], g, model.mask(b["input_ids"], b["attention_mask"], g)
    )
    out.loss.backward()
    return out, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("rows", [None, 5], ids=["one chunk", "chunks of 5 slots"])
@pytest.mark.parametrize("case", list(HEAD_CASES))
def test_fused_generator_head_gives_the_same_loss_samples_and_gradients(monkeypatch, case, rows):
    """Same RNG -> the same generator loss (bit for bit: F.cross_entropy's operations per slot), the same argmax and
    Gumbel samples (hence the same fake input and discriminator loss), and the same gradients: bit for bit in one
    chunk; over several the table's and the bias's gradients are sums of per-chunk products, the same math in
    another order (equal here too, but only float32 rounding is promised)."""
    if rows:  # 64 slots per batch here: several chunks, the last one short
        monkeypatch.setattr(fused, "CHUNK_ELEMENTS", rows * tiny_cfg().model.vocab_size)
    cfg = tiny_cfg(**HEAD_CASES[case])
    (ref, ref_grads), (out, grads) = (forward_and_grads(cfg, fuse) for fuse in (False, True))
    assert torch.equal(out.gen_loss, ref.gen_loss) and torch.equal(out.loss.detach(), ref.loss.detach())
    assert torch.equal(out.gen_accuracy, ref.gen_accuracy) and torch.equal(out.sampled_accuracy, ref.sampled_accuracy)
    if cfg.objective != "mlm":
        assert torch.equal(out.disc_input_ids, ref.disc_input_ids) and out.disc_labels.any()
        assert torch.equal(out.disc_loss, ref.disc_loss)
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        r = ref_grads[name]
        assert torch.equal(g, r) if rows is None else (g - r).abs().max() <= 1e-6 * r.abs().max(), name


def train(cfg, steps=3, fuse=False, update_mode=None, backend="aot_eager", poison=None, prepare=None):
    """`steps` updates of the tiny model (`prepare(model)` first, e.g. to compile it); returns the logged values per
    step and the final weights."""
    torch.manual_seed(0)
    model = init.build(cfg, SPECIAL)
    optimizer = build_optimizer(model, cfg)
    if fuse:
        fused.fuse_generator_head(model)
    if prepare is not None:
        prepare(model)
    update = None
    if update_mode is not False:
        update = fused.GraphUpdate(optimizer, cfg.max_grad_norm, update_mode, backend=backend)
    halted = torch.zeros((), dtype=torch.bool)
    rows = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * (step + 1)
        batch = random_batch(seed=step)
        if poison == step:
            batch["input_ids"] = batch["input_ids"].clone()
            model.discriminator.discriminator_predictions.dense.bias.data[0] = float("inf")
        r = train_step(
            model,
            model,
            optimizer,
            None,
            batch,
            step=step,
            cfg=cfg,
            plan=BatchPlan(8, 1, 8),
            info=CPU,
            precision=Precision("fp32", "cpu"),
            halted=halted,
            update=update,
        )
        rows.append(r.read())
    return rows, {n: p.detach().clone() for n, p in model.named_parameters()}, optimizer


def assert_same_run(a, b, rel=1e-6, atol=1e-6):
    for x, y in zip(a[0], b[0], strict=True):
        for key in ("loss", "gen_loss", "disc_loss", "gen_accuracy", "disc_accuracy", "grad_norm"):
            assert x[key] == pytest.approx(y[key], rel=rel, abs=1e-12), key
    for name, w in a[1].items():
        torch.testing.assert_close(w, b[1][name], rtol=0, atol=atol, msg=name)


@pytest.mark.parametrize("case", ["electra", "mlm"])
def test_fused_generator_head_trains_as_the_plain_path(case):
    """Three updates: the same logged values and weights, bit for bit (one chunk)."""
    cfg = tiny_cfg(**HEAD_CASES[case])
    plain, fast = train(cfg, update_mode=False), train(cfg, fuse=True, update_mode=False)
    assert fast[0] == plain[0]
    assert all(torch.equal(w, plain[1][name]) for name, w in fast[1].items())


@pytest.mark.parametrize("bias_correction", [False, True])
def test_graph_update_gives_the_optimizer_steps_of_clip_and_adamw(bias_correction):
    """Clipping + AdamW as one tensor function, eager and traced whole (`fullgraph=True`, the aot_eager backend:
    what inductor compiles, without its minutes of C++ builds on the CPU): the same losses and gradient norms,
    weights within float32 rounding (x + alpha * y is fused on the CPU, x + y * alpha is not), the same state."""
    cfg = tiny_cfg(adam_bias_correction=bias_correction, max_grad_norm=0.05)  # clipping on at every step
    plain = train(cfg, update_mode=False)
    assert all(r["grad_norm"] > 0.05 for r in plain[0])
    for mode in (None, "default"):
        torch._dynamo.reset()
        counters.clear()
        run = train(cfg, update_mode=mode)
        assert_same_run(run, plain)
        # one graph for every step, though the learning rate and step count change (they are tensors)
        assert counters["stats"]["unique_graphs"] == (0 if mode is None else 1)
        (opt, ref) = run[2], plain[2]
        assert (
            [s["step"] for s in opt.state.values()] == [s["step"] for s in ref.state.values()] == [3] * len(ref.state)
        )
        for s, t in zip(opt.state.values(), ref.state.values(), strict=True):
            torch.testing.assert_close(s["exp_avg_sq"], t["exp_avg_sq"], rtol=1e-5, atol=1e-12)


@pytest.mark.slow
def test_graph_update_compiled_by_inductor_trains_as_the_plain_path():
    """(about 2 minutes on 2 CPU cores: inductor builds its C++ kernels)"""
    cfg = tiny_cfg()
    assert_same_run(train(cfg, update_mode="default", backend="inductor"), train(cfg, update_mode=False))


def test_both_variants_together_train_as_the_plain_path():
    cfg = tiny_cfg()
    assert_same_run(train(cfg, fuse=True, update_mode="default"), train(cfg, update_mode=False))


def test_graph_update_applies_no_update_from_a_non_finite_step_on():
    cfg = tiny_cfg()
    plain, run = train(cfg, update_mode=False, poison=1), train(cfg, update_mode=None, poison=1)
    assert [r["non_finite"] for r in run[0]] == [r["non_finite"] for r in plain[0]] == [0.0, 1.0, 1.0]
    for name, w in run[1].items():
        torch.testing.assert_close(w, plain[1][name], rtol=0, atol=1e-6, equal_nan=True, msg=name)


def test_variants_refuse_what_they_cannot_do_in_one_line():
    model = init.build(tiny_cfg(sampling="multinomial"), SPECIAL)
    with pytest.raises(ElectraError, match="--fused-generator-head needs .* sampling multinomial"):
        fused.apply_speed_variants(model, build_optimizer(model, model.cfg), fused_generator_head=True)
    model = init.build(tiny_cfg(), SPECIAL)
    with pytest.raises(ElectraError, match="--graph-optimizer does not take fp16"):
        fused.apply_speed_variants(model, build_optimizer(model, model.cfg), graph_optimizer=True, gradient_scaler=True)


def test_bench_times_each_variant(capsys, monkeypatch):
    built = []
    monkeypatch.setattr(fused.GraphUpdate, "__init__", lambda self, *a: built.append(a) or init_eagerly(self, *a))
    assert main([*BENCH, "--fused-generator-head", "--graph-optimizer"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (r["fused_generator_head"], r["graph_optimizer"], r["gemm_epilogues"], r["steps"]) == (True, True, False, 2)
    assert [a[2] for a in built] == ["default"]  # (eager run: the update compiled with the default mode)
    assert main([*BENCH, "--graph-optimizer", "--precision", "fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--graph-optimizer does not take fp16" in err[0]


def test_gemm_epilogues_are_the_modes_options_with_inductors_own_gemms():
    assert fused.compile_options("reduce-overhead") == {"mode": "reduce-overhead"}
    how = fused.compile_options("reduce-overhead", gemm_epilogues=True)["options"]
    assert how == {"triton.cudagraphs": True, "max_autotune_gemm": True, "epilogue_fusion": True}
    assert fused.compile_options("default", gemm_epilogues=True) == {
        "options": {"max_autotune_gemm": True, "epilogue_fusion": True}
    }
    assert main([*BENCH, "--gemm-epilogues"]) == 2  # (needs --compile)


@pytest.mark.slow
def test_gemm_epilogues_compiled_model_trains_as_eager():
    """(minutes on 2 CPU cores: inductor times and builds its GEMM kernels) Dropout off: compiled dropout draws its
    masks its own way."""
    from electra.train.step import compile_model

    cfg = tiny_cfg(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    plain = train(cfg, update_mode=False)
    graphs = []
    compiled = train(
        cfg, update_mode=False, prepare=lambda m: graphs.append(compile_model(m, "default", gemm_epilogues=True))
    )
    assert graphs == [False]  # (no CUDA graphs on the CPU)
    assert_same_run(compiled, plain, rel=1e-5, atol=1e-5)


def test_fused_generator_head_traces_inside_the_compiled_forward():
    """The whole forward compiled (aot_eager: dynamo and AOT autograd trace the fused head's forward and backward
    as inductor would receive them) trains as the plain eager path; dropout off, as for any compiled comparison."""
    cfg = tiny_cfg(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    plain = train(cfg, update_mode=False)
    traced = train(cfg, fuse=True, update_mode=False, prepare=lambda m: m.compile(backend="aot_eager"))
    assert_same_run(traced, plain, rel=1e-6, atol=1e-6)


def test_pretrain_with_the_fused_head_logs_the_plain_losses_and_resumes_bit_exactly(data_dir, tmp_path):  # noqa: F811
    """`electra pretrain --fused-generator-head`: the plain run's losses step by step, the option kept in the run's
    config, and a run killed after step 2's checkpoint and resumed ends with the uninterrupted run's weights,
    metrics and checkpoints, bit for bit."""
    args = [*TINY, "--data", str(data_dir), "--eval-every", "0", "--log-every", "1", "--probe", "none"]
    args += ["--max-steps", "4", "--save-every", "2"]
    plain, full, cut = tmp_path / "plain", tmp_path / "full", tmp_path / "cut"
    assert pretrain(args, plain).returncode == 0
    fast = [*args, "--fused-generator-head"]
    assert pretrain(fast, full).returncode == 0
    for a, b in zip(metrics(full), metrics(plain), strict=True):
        assert (a["step"], a["gen_loss"], a["disc_loss"]) == pytest.approx(
            (b["step"], b["gen_loss"], b["disc_loss"]), rel=1e-6
        )
    assert json.loads((full / "config.json").read_text())["run"]["fused_generator_head"] is True
    killed = pretrain(fast, cut, fault="metrics.written@3")  # SIGKILL at step 3's log line
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = pretrain([*fast, "--resume"], cut)
    assert resumed.returncode == 0 and "at step 2;" in resumed.stdout, resumed.stderr[-2000:]
    expected, got = _snapshot(full), _snapshot(cut)
    for key in expected:
        assert got[key] == expected[key], key


def test_pretrain_refuses_a_variant_the_run_cannot_use_before_writing_anything(data_dir, tmp_path, capsys):  # noqa: F811
    args = [*TINY, "--data", str(data_dir), "--max-steps", "4"]
    cases = {
        "a": (["--fused-generator-head", "--sampling", "multinomial"], "--fused-generator-head needs"),
        "b": (["--gemm-epilogues"], "give --compile MODE as well"),
    }
    for name, (extra, message) in cases.items():
        assert main(["pretrain", *args, *extra, "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not (tmp_path / name).exists() or not any((tmp_path / name).iterdir())
