import pytest

import pyro_dssm
from pyro_dssm.spec import Base, DSSMSpec, d_separated, list_specs, past_x_needed, unrolled_parents, z_history_needed


def test_taxonomy_has_36_models_with_4_8_8_16_per_base():
    specs = list_specs()
    assert len(specs) == 36 and len(set(specs)) == 36
    assert [len(list_specs(b.value)) for b in Base] == [4, 8, 8, 16]
    assert pyro_dssm.list_specs() == specs


def test_paper_figure_labels():
    labels = {s.known_as: s.figure for s in list_specs() if s.figure}
    assert labels == {"ArSSM": "Fig. 1 (g)", "FSSM": "Fig. 4 (g)", "SRNN": "Fig. 5 (i)", "VRNN": "Fig. 5 (o)"}
    assert DSSMSpec(Base.HMM, transition=True, emission=True).known_as == "RSSM"


@pytest.mark.parametrize("spec", list_specs(), ids=str)
def test_name_round_trip(spec):
    assert DSSMSpec.from_name(spec.name) == spec
    assert pyro_dssm.get_spec(spec.name) == spec


def test_flags_only_where_the_base_has_the_edge():
    with pytest.raises(ValueError, match="no first-order 'autoregression'"):
        DSSMSpec(Base.HMM, autoregression=True)
    with pytest.raises(ValueError, match="no first-order 'feedforward'"):
        DSSMSpec(Base.ARHMM, feedforward=True)
    with pytest.raises(ValueError, match="unknown base model"):
        DSSMSpec("lstm")
    with pytest.raises(ValueError, match="unknown relaxation flag"):
        DSSMSpec.from_name("hmm+xx")


def test_parents_of_arssm_match_eqs_1_to_3():
    s = DSSMSpec.from_name("arhmm+tr+ar+em")
    assert s.parents(("z", 3)) == {("z", 1), ("z", 2)}
    assert s.parents(("x", 3)) == {("z", 1), ("z", 2), ("z", 3), ("x", 1), ("x", 2)}
    assert s.describe() == "p(z_t | z_{1:t-1}) p(x_t | z_{1:t}, x_{1:t-1})"


def test_d_separation_textbook_cases():
    # chain a -> b -> c, collider a -> c <- b
    chain = {("z", 1): set(), ("z", 2): {("z", 1)}, ("z", 3): {("z", 2)}}
    assert d_separated(chain, [("z", 1)], [("z", 3)], [("z", 2)])
    assert not d_separated(chain, [("z", 1)], [("z", 3)], [])
    coll = {("z", 1): set(), ("z", 2): set(), ("z", 3): {("z", 1), ("z", 2)}}
    assert d_separated(coll, [("z", 1)], [("z", 2)], [])
    assert not d_separated(coll, [("z", 1)], [("z", 2)], [("z", 3)])


def test_partial_alignment_rule_reproduces_the_papers_choices():
    # backward RNN only for the HMM group (RSSM, eq. 20); bidirectional for ArSSM (7), FSSM, VRNN (16), SRNN (18)
    by_name = {s.known_as: s for s in list_specs() if s.known_as}
    assert past_x_needed(by_name["RSSM"]) == "none"
    for n in ("ArSSM", "FSSM", "VRNN", "SRNN"):
        assert past_x_needed(by_name[n]) == "all"
    for s in list_specs():
        assert (past_x_needed(s) == "none") == (s.base is Base.HMM)
        # the exact posterior needs the latent history exactly when a latent RNN exists
        assert z_history_needed(s) == s.has_z_rnn
        # a whole past of x is needed exactly when the model summarises it with an RNN
        assert (past_x_needed(s) == "all") == s.has_x_rnn


def test_unrolled_graph_is_acyclic_and_causal():
    for s in list_specs():
        par = unrolled_parents(s, 5)
        for (k, t), ps in par.items():
            for (k2, t2) in ps:
                assert t2 < t or (t2 == t and k == "x" and k2 == "z")
