"""Representation networks: Table 3, the registry, branch points, features, parameter counts."""

from __future__ import annotations

import pytest
import torch

from mtdtl.constants import ARCH_IDS, SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.models import (
    build_model, canonical_sources, count_parameters, forward_flops, layer_table, param_table, parse_arch,
)

#: Table 3: layer → input shape (channels x time x mel).
TABLE3_INPUTS = {
    "conv1": "2 x 216 x 128",
    "max-pool1": "16 x 108 x 128",
    "conv2": "16 x 54 x 64",
    "max-pool2": "32 x 54 x 64",
    "conv3": "32 x 27 x 32",
    "max-pool3": "64 x 27 x 32",
    "conv4": "64 x 13 x 16",
    "max-pool4": "64 x 13 x 16",
    "conv5": "64 x 6 x 8",
    "max-pool5": "128 x 6 x 8",
    "conv61": "128 x 3 x 4",
    "conv62": "256 x 3 x 4",
    "gap": "256 x 3 x 4",  # Table 3 lists gap's output (256)
    "fc-feature": "256",
    "fc-output": "256",
}

MULTI = ("self", "tag", "year")


def test_table3_shapes_full_width():
    model = build_model("ss_r", ["tag"], seed=0)
    table = layer_table(model)
    assert list(table["layer"]) == list(TABLE3_INPUTS)
    assert dict(zip(table["layer"], table["input_shape"])) == TABLE3_INPUTS
    out = dict(zip(table["layer"], table["output_shape"]))
    assert out["gap"] == "256" and out["fc-feature"] == "256" and out["fc-output"] == "50"
    # weight shapes of Table 3 (out, in, kh, kw) and the conv1 stride
    assert tuple(model.trunk.conv1.conv.weight.shape) == (16, 2, 5, 5)
    assert model.trunk.conv1.conv.stride == (2, 1)
    assert tuple(model.trunk.conv62.conv.weight.shape) == (256, 256, 1, 1)
    assert tuple(model.trunk.fc_feature.fc.weight.shape) == (256, 256)
    assert model.trunk.fc_feature.dropout.p == 0.5
    assert table["params"].sum() == count_parameters(model)


@pytest.mark.parametrize("arch", ARCH_IDS)
def test_every_arch_builds_and_trains_one_step(arch):
    sources = ["tag"] if arch == "ss_r" else list(MULTI)
    model = build_model(arch, sources, width="tiny", n_out=5, seed=0)
    x = torch.randn(4, 2, 216, 128)
    with torch.no_grad():
        model.eval()
        feats = model.features(x)
        model.train()
    spec = parse_arch(arch)
    d = model.width.feature
    assert feats.shape == (4, model.feature_dim)
    assert model.feature_dim == (d * len(sources) if spec.concat else d)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    source = sources[-1]
    opt.zero_grad(set_to_none=True)
    logits = model(x, source)
    assert logits.shape == (4, 5)
    torch.nn.functional.kl_div(logits.log_softmax(1), torch.full((4, 5), 0.2), reduction="batchmean").backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith(f"heads.{source}.") for k in changed)
    # Sources not trained in this step keep every weight (their branch and head got no gradient).
    for other in sources[:-1]:
        assert not any(k.startswith((f"heads.{other}.", f"branches.{other}.")) for k in changed)
    if spec.n_shared_layers:
        assert any(k.startswith("trunk.") for k in changed)
    # the self head takes pairs
    if "self" in model.sources:
        assert model((x, x), "self").shape == (4, 2)


def test_branch_points_follow_figure5():
    # architecture → (layers in the shared trunk, first layer of each branch)
    expected = {"ss_r": (9, None), "mss_cr": (0, "conv1"), "ms_cr@2": (1, "conv2"), "ms_cr@4": (3, "conv4"),
                "ms_cr@6": (5, "conv61"), "ms_sr@fc": (9, None)}
    for arch, (n_shared, first) in expected.items():
        model = build_model(arch, ["tag"] if arch == "ss_r" else ["tag", "year"], width="tiny")
        assert len(model.trunk) == n_shared, arch
        if first is None:
            assert len(model.branches) == 0
        else:
            assert [next(iter(model.branches[s].named_children()))[0] for s in model.sources] == [first, first]


def test_registry_and_source_errors():
    assert parse_arch("MS-CR@6").id == "ms_cr@6"
    assert parse_arch(" SS-R ").id == "ss_r"
    assert parse_arch("ms_sr@fc").label == "MS-SR@FC"
    with pytest.raises(MtdtlError) as err:
        parse_arch("ms_cr@5")
    for valid in ARCH_IDS:
        assert valid in str(err.value)
    with pytest.raises(MtdtlError, match="exactly one source"):
        build_model("ss_r", ["tag", "year"], width="tiny")
    with pytest.raises(MtdtlError, match="unknown learning source"):
        build_model("ms_cr@6", ["tag", "genre"], width="tiny")
    with pytest.raises(MtdtlError, match="more than once"):
        canonical_sources("tag,tag")
    with pytest.raises(MtdtlError, match="no learning sources"):
        canonical_sources("")
    with pytest.raises(MtdtlError, match="unknown width"):
        build_model("ss_r", ["tag"], width="huge")


def test_canonical_order_and_feature_layout():
    model = build_model("mss_cr", "tag, self ,bpm", width="tiny", n_out=3, seed=1)
    assert model.sources == ("self", "bpm", "tag") == model.feature_order
    x = torch.randn(3, 2, 216, 128)
    model.eval()
    with torch.no_grad():
        feats = model.features(x)
        parts = [model.source_features(x, s) for s in model.sources]
        assert torch.allclose(feats, torch.cat(parts, dim=1))
        # a source's head read back from its block of the representation
        assert torch.allclose(model.head_logits(feats, "tag"), model(x, "tag"), atol=1e-6)
        assert torch.allclose(model((x, x[[1, 2, 0]]), "self"), model.self_logits(torch.cat([x, x[[1, 2, 0]]])))
    shared = build_model("ms_sr@fc", ["tag", "year"], width="tiny")
    assert shared.feature_order == ("shared",) and shared.feature_dim == shared.width.feature
    with pytest.raises(MtdtlError, match="no source"):
        shared(x, "bpm")


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_model("ms_cr@4", ["tag", "year"], width="tiny", seed=7)
    b = build_model("ms_cr@4", ["year", "tag"], width="tiny", seed=7)
    c = build_model("ms_cr@4", ["tag", "year"], width="tiny", seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_parameter_ratios_match_section_5_4():
    table = param_table(8).set_index("arch")
    assert table.loc["ss_r", "n_sources"] == 1 and (table.drop("ss_r")["n_sources"] == 8).all()
    # Section 5.4: MS-CR@6 about 6.3x SS-R, MS-SR@FC about 1.2x (see docs for the self head's share).
    assert table.loc["ms_cr@6", "params_vs_ss_r"] == pytest.approx(6.3, abs=0.2)
    assert table.loc["ms_sr@fc", "params_vs_ss_r"] == pytest.approx(1.2, abs=0.07)
    order = ["mss_cr", "ms_cr@2", "ms_cr@4", "ms_cr@6", "ms_sr@fc", "ss_r"]
    assert list(table.loc[order, "params"]) == sorted(table.loc[order, "params"], reverse=True)
    # 117.0 MFLOP per crop for the base network; a step of any architecture runs one path
    assert table.loc["ss_r", "mflops_features"] == pytest.approx(117.0, abs=0.1)
    assert (table["mflops_step"] - table.loc["ss_r", "mflops_step"]).abs().max() < 1e-6
    assert table.loc["mss_cr", "mflops_features"] == pytest.approx(8 * table.loc["ss_r", "mflops_features"])
    assert list(table["feature_dim"]) == [256, 2048, 2048, 2048, 2048, 256]
    # several numbers of sources at once (Figure 15)
    fig15 = param_table([2, 4], width="tiny", archs=["ms_cr@6", "ms_sr@fc"])
    assert list(fig15["n_sources"]) == [2, 2, 4, 4]


def test_forward_flops_of_a_self_step_counts_both_crops():
    model = build_model("ms_cr@6", SOURCE_NAMES, width="tiny")
    one = forward_flops(model, source="tag")
    two = forward_flops(model, source="self")
    assert one < two < 2.2 * one


def test_glorot_init_is_the_authors_lasagne_default():
    """``init="glorot"``: GlorotUniform weights (fans over the receptive field) and zero biases,
    as Lasagne's Conv2DLayer / DenseLayer defaults; ``"torch"`` is PyTorch's, unchanged."""
    import math

    import torch
    from torch import nn

    from mtdtl.errors import MtdtlError
    from mtdtl.models import build_model

    g = build_model("ss_r", ["tag"], width="tiny", seed=0, init="glorot")
    t = build_model("ss_r", ["tag"], width="tiny", seed=0)
    layers = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers
    for m in layers:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert m.weight.abs().max() <= bound + 1e-7 and m.weight.abs().max() > 0.5 * bound
        assert m.bias is None or torch.count_nonzero(m.bias) == 0
    assert any(torch.count_nonzero(m.bias) > 0 for m in t.modules() if isinstance(m, nn.Conv2d))
    again = build_model("ss_r", ["tag"], width="tiny", seed=0, init="glorot")
    for a, b in zip(g.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)  # seeded
    with pytest.raises(MtdtlError, match="initialisation"):
        build_model("ss_r", ["tag"], width="tiny", init="he")
