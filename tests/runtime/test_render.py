"""The picture of a model (Model.render / Program.render / `ppl render`): every bundled model
drawn, plates as boxes holding exactly their nodes, a scan's body once with its length, the
files read back (SVG as XML, Graphviz source, PNG by its signature)."""
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import ppl
from ppl import ModelError, dist
from ppl.models import MODELS, get

SVG = "{http://www.w3.org/2000/svg}"


def _svg(path):
    root = ET.parse(path).getroot()
    nodes = {g.get("id")[5:]: g.find(f"{SVG}rect") for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    plates = {g.get("id")[6:]: (g.find(f"{SVG}rect"), g.find(f"{SVG}text").text)
              for g in root.iter(f"{SVG}g") if g.get("class") == "plate"}
    return root, nodes, plates


def _inside(rect, box) -> bool:
    x, y, w, h = (float(rect.get(k)) for k in ("x", "y", "width", "height"))
    bx, by, bw, bh = (float(box.get(k)) for k in ("x", "y", "width", "height"))
    return bx <= x and x + w <= bx + bw and by <= y and y + h <= by + bh


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bundled_models_render(name, tmp_path):
    """Each bundled model as built by its defaults: its random nodes (with law and estimator),
    inputs and costs are drawn, edges between them, and the SVG parses."""
    model = get(name).build()
    src = model.render(tmp_path / "m.svg")
    root, nodes, _ = _svg(tmp_path / "m.svg")
    stochastic = [n.name for n in model.order if n.is_stochastic]
    assert nodes and set(stochastic) <= set(nodes)
    for c in model.costs:
        assert f'label="{c.attrs["cost_name"]}\\ncost"' in src, c.attrs["cost_name"]
    assert root.find(f"{SVG}title").text == model.name
    assert list(root.iter(f"{SVG}line"))


def test_plates_are_boxes_holding_their_nodes(tmp_path):
    """Eight schools with a plate of groups: the schools' box holds eta and its guide's tables,
    the data plate's box holds y and the likelihood, the global latents lie outside both."""
    with ppl.Model("schools") as m:
        y, sigma, school = m.input("y", 1), m.input("sigma", 1), m.input("school", 1)
        mu = m.latent("mu", dist.Normal(0.0, 5.0))
        tau = m.latent("tau", dist.HalfCauchy(5.0))
        with m.plate("schools", size=8, index=school):
            eta = m.latent("eta", dist.Normal(0.0, 1.0))
            with m.plate("data"):
                m.observe("lik", dist.Normal(mu + tau * eta, sigma), y)
    prog = m.compile(dtype=np.float64)
    src = prog.render(tmp_path / "s.svg")
    _, nodes, plates = _svg(tmp_path / "s.svg")
    assert plates["schools"][1] == "schools · 8 (by school)"
    assert plates["data"][1] == "data · N = rows of the data"
    for name in ("eta", "eta_loc", "eta_scale", "school"):
        assert _inside(nodes[name], plates["schools"][0]) and not _inside(nodes[name], plates["data"][0]), name
    for name in ("y", "sigma"):
        assert _inside(nodes[name], plates["data"][0]), name
    for name in ("mu", "tau", "tau_unconstrained", "mu_loc"):
        assert not any(_inside(nodes[name], box) for box, _ in plates.values()), name
    assert 'subgraph "cluster_schools"' in src and 'label="schools · 8 (by school)"' in src
    assert "eta\\nNormal · pathwise" in src and "tau\\nlatent, HalfCauchy prior" in src
    assert prog.render() == src and prog.render(tmp_path / "s.gv") == (tmp_path / "s.gv").read_text()
    with pytest.raises(ModelError, match="give a path ending in .svg, .png, .dot or .gv"):
        prog.render(tmp_path / "s.pdf")


def test_scan_body_drawn_once_with_its_length(tmp_path):
    with ppl.Model("walk") as m:
        def step(s, t):
            up = ppl.Bernoulli("up", logits=ppl.param("w", 1, -0.4) * s)
            s = s + 2.0 * up - 1.0
            m.cost("spread", ppl.total(0.1 * (s * s)))
            return s, up
        ppl.scan(step, m.input("s0", 1), length=1000)
    src = m.render(tmp_path / "w.svg", detail=True)
    _, nodes, plates = _svg(tmp_path / "w.svg")
    (box, label), = plates.values()
    assert label.startswith("scan ") and label.endswith(" × 1000")
    assert _inside(nodes["up"], box) and not _inside(nodes["s0"], box)
    assert src.count('"up" [') == 1


def test_a_scans_carry_is_drawn_with_its_back_edge(tmp_path):
    """The carry is a node of the body: an edge from its initial value, and a dashed back edge
    from what sets it at a step's end (here the draw, whose only effect is through the carry)."""
    with ppl.Model("walk_carry") as m:
        def step(s, t):
            up = ppl.Bernoulli("up", logits=ppl.param("w", 1, -0.4) * s)
            return s + 2.0 * up - 1.0, None
        last, _ = ppl.scan(step, m.input("s0", 1), length=50)
        m.cost("end", ppl.total(last * last))
    src = m.render(tmp_path / "c.svg")
    root, nodes, plates = _svg(tmp_path / "c.svg")
    (box, _), = plates.values()
    carry = next(k for k in nodes if k.endswith("carry0"))
    assert _inside(nodes[carry], box)
    backs = [p.find(f"{SVG}title").text for p in root.iter(f"{SVG}path") if p.get("class") == "back"]
    assert backs == [f"up sets {carry} for the next step"]
    assert f'"s0" -> "{carry}";' in src and f'"up" -> "{carry}" [style=dashed' in src


def test_png(tmp_path):
    """A PNG by Graphviz's dot or matplotlib; without either, an error naming both fixes."""
    with ppl.Model("coin") as m:
        y = m.input("y", 1)
        p = m.latent("p", dist.Beta(2.0, 2.0))
        with m.plate("data"):
            m.observe("lik", dist.Bernoulli(probs=p), y)
    try:
        import matplotlib  # noqa: F401
        have = True
    except ImportError:
        have = shutil.which("dot") is not None
    if not have:
        with pytest.raises(ModelError, match=r"Graphviz's `dot` or matplotlib .*numba-ppl\[plot\].*c\.svg"):
            m.render(tmp_path / "c.png")
        return
    m.render(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_render(tmp_path, capsys):
    from ppl.cli import main
    assert main(["render", "sbn", "-o", str(tmp_path / "sbn.svg")]) == 0
    assert "wrote" in capsys.readouterr().out
    _, nodes, _ = _svg(tmp_path / "sbn.svg")
    assert "x" in nodes
