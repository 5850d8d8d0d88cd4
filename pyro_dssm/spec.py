"""The taxonomy of deep state space models as data.

Tang et al. [1] group DSSMs by a *base model* (Fig. 1, first row) and by
which first-order Markov assumptions of that base are *relaxed* (Sec. II-A):

=============  ======================================  =====================
flag           first-order assumption                  relaxed form
=============  ======================================  =====================
``transition``     ``p(z_t | z_{t-1}, c)``             ``p(z_t | z_{1:t-1}, c)``
``autoregression`` ``p(x_t | x_{t-1}, c)``             ``p(x_t | x_{1:t-1}, c)``
``emission``       ``p(x_t | z_t, c)``                 ``p(x_t | z_{1:t}, c)``
``feedforward``    ``p(z_t | x_{t-1}, c)``             ``p(z_t | x_{1:t-1}, c)``
=============  ======================================  =====================

``autoregression`` exists only where the base has the edge ``x_{t-1} -> x_t``
(AR-HMM, DMM-Aug) and ``feedforward`` only where it has ``x_{t-1} -> z_t``
(F-HMM, DMM-Aug). That gives 4 + 8 + 8 + 16 = 36 graphical models
(Fig. 1, 3, 4, 5), enumerated by :func:`list_specs`.

Besides the spec type this module answers structural questions by
d-separation on the unrolled graph, so that guides are *derived* from a spec
rather than written per model (Sec. II-B): which past observations and which
past latents the exact posterior factor ``p(z_t | z_{1:t-1}, x_{1:T})`` needs.

[1] S. Tang, P. Feng, S. Yu, Y. Dong, S. J. Qin, "A Hierarchical Taxonomy for
    Deep State Space Models", arXiv:2412.11211.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

__all__ = [
    "Base",
    "DSSMSpec",
    "FLAGS",
    "list_specs",
    "get_spec",
    "unrolled_parents",
    "d_separated",
    "past_x_needed",
    "z_history_needed",
]

Node = Tuple[str, int]  # ("z", t) or ("x", t), t = 1..T

#: Short names of the relaxation flags, in the order used by spec names.
FLAGS: Tuple[str, ...] = ("transition", "autoregression", "emission", "feedforward")
_SHORT = {"transition": "tr", "autoregression": "ar", "emission": "em", "feedforward": "ff"}
_LONG = {v: k for k, v in _SHORT.items()}


class Base(str, enum.Enum):
    """The four base models of Fig. 1 (first row)."""

    HMM = "hmm"
    ARHMM = "arhmm"
    FHMM = "fhmm"
    DMM_AUG = "dmm_aug"

    @property
    def autoregressive(self) -> bool:
        """Whether the base has the edge ``x_{t-1} -> x_t``."""
        return self in (Base.ARHMM, Base.DMM_AUG)

    @property
    def feedforward(self) -> bool:
        """Whether the base has the edge ``x_{t-1} -> z_t``."""
        return self in (Base.FHMM, Base.DMM_AUG)

    @property
    def title(self) -> str:
        return {"hmm": "HMM", "arhmm": "AR-HMM", "fhmm": "F-HMM", "dmm_aug": "DMM-Aug"}[self.value]

    @property
    def figure(self) -> str:
        """Figure of the paper that draws this base model's group."""
        return {"hmm": "Fig. 3", "arhmm": "Fig. 1", "fhmm": "Fig. 4", "dmm_aug": "Fig. 5"}[self.value]

    def allowed_flags(self) -> Tuple[str, ...]:
        flags = ["transition"]
        if self.autoregressive:
            flags.append("autoregression")
        flags.append("emission")
        if self.feedforward:
            flags.append("feedforward")
        return tuple(flags)


# Figure labels that the paper's text gives explicitly.
_FIGURES: Dict[Tuple[str, FrozenSet[str]], Tuple[str, str]] = {
    ("arhmm", frozenset({"transition", "autoregression", "emission"})): ("ArSSM", "Fig. 1 (g)"),
    ("fhmm", frozenset({"transition", "emission", "feedforward"})): ("FSSM", "Fig. 4 (g)"),
    ("dmm_aug", frozenset({"autoregression", "feedforward"})): ("SRNN", "Fig. 5 (i)"),
    ("dmm_aug", frozenset(FLAGS)): ("VRNN", "Fig. 5 (o)"),
    ("hmm", frozenset({"transition", "emission"})): ("RSSM", None),
}


@dataclass(frozen=True)
class DSSMSpec:
    """Structure of one DSSM: a base model plus the relaxed Markov flags.

    A spec fixes the conditional independence structure only; sizes and
    parameterisations live in :class:`pyro_dssm.models.ModelConfig`.

    Args:
        base: one of the four base models.
        transition: relax ``z_t | z_{t-1}`` to ``z_t | z_{1:t-1}``.
        autoregression: relax ``x_t | x_{t-1}`` to ``x_t | x_{1:t-1}``
            (AR-HMM and DMM-Aug only).
        emission: relax ``x_t | z_t`` to ``x_t | z_{1:t}``.
        feedforward: relax ``z_t | x_{t-1}`` to ``z_t | x_{1:t-1}``
            (F-HMM and DMM-Aug only).
    """

    base: Base
    transition: bool = False
    autoregression: bool = False
    emission: bool = False
    feedforward: bool = False

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "base", Base(self.base))
        except ValueError:
            raise ValueError(
                f"unknown base model {self.base!r}; expected one of "
                f"{[b.value for b in Base]}"
            ) from None
        for flag in FLAGS:
            value = getattr(self, flag)
            if not isinstance(value, bool):
                raise TypeError(f"DSSMSpec.{flag} must be a bool, got {value!r}")
            if value and flag not in self.base.allowed_flags():
                raise ValueError(
                    f"the {self.base.title} base has no first-order '{flag}' "
                    f"dependency to relax; allowed flags: {list(self.base.allowed_flags())}"
                )

    # ----------------------------------------------------------------- naming
    @property
    def relaxed(self) -> Tuple[str, ...]:
        """The relaxed flags, in :data:`FLAGS` order."""
        return tuple(f for f in FLAGS if getattr(self, f))

    @property
    def name(self) -> str:
        """Canonical name, e.g. ``"arhmm+tr+ar+em"`` (ArSSM)."""
        return "+".join([self.base.value] + [_SHORT[f] for f in self.relaxed])

    @classmethod
    def from_name(cls, name: str) -> "DSSMSpec":
        """Inverse of :attr:`name`; flags may be short (``tr``) or long."""
        parts = name.strip().lower().split("+")
        flags = {}
        for p in parts[1:]:
            flag = _LONG.get(p, p)
            if flag not in FLAGS:
                raise ValueError(f"unknown relaxation flag {p!r} in spec name {name!r}; "
                                 f"expected some of {sorted(_SHORT.values())}")
            flags[flag] = True
        return cls(parts[0], **flags)

    @property
    def known_as(self) -> Optional[str]:
        """Name of the published model with this structure, if any."""
        hit = _FIGURES.get((self.base.value, frozenset(self.relaxed)))
        return hit[0] if hit else None

    @property
    def figure(self) -> Optional[str]:
        """The paper's figure label where its text gives one (e.g. ArSSM: Fig. 1 (g))."""
        hit = _FIGURES.get((self.base.value, frozenset(self.relaxed)))
        return hit[1] if hit else None

    # -------------------------------------------------------------- structure
    @property
    def has_z_rnn(self) -> bool:
        """A deterministic RNN over ``z`` is needed (``transition`` or ``emission`` relaxed)."""
        return self.transition or self.emission

    @property
    def has_x_rnn(self) -> bool:
        """A deterministic RNN over ``x`` is needed (``autoregression`` or ``feedforward``)."""
        return self.autoregression or self.feedforward

    def parents(self, node: Node) -> Set[Node]:
        """Stochastic parents of ``("z", t)`` or ``("x", t)`` in the unrolled graph.

        Relaxed dependencies carried by RNN states appear as direct edges from
        every earlier variable they summarise.
        """
        kind, t = node
        par: Set[Node] = set()
        if kind == "z":
            if t > 1:
                par |= {("z", s) for s in range(1, t)} if self.transition else {("z", t - 1)}
                if self.base.feedforward:
                    par |= {("x", s) for s in range(1, t)} if self.feedforward else {("x", t - 1)}
        elif kind == "x":
            par |= {("z", s) for s in range(1, t + 1)} if self.emission else {("z", t)}
            if t > 1 and self.base.autoregressive:
                par |= {("x", s) for s in range(1, t)} if self.autoregression else {("x", t - 1)}
        else:
            raise ValueError(f"unknown node kind {kind!r}")
        return par

    def describe(self) -> str:
        """Human readable factorisation, e.g. ``p(z_t | z_{1:t-1}) p(x_t | z_{1:t}, x_{1:t-1})``."""
        zt = "z_{1:t-1}" if self.transition else "z_{t-1}"
        if self.base.feedforward:
            zt += ", " + ("x_{1:t-1}" if self.feedforward else "x_{t-1}")
        xt = "z_{1:t}" if self.emission else "z_t"
        if self.base.autoregressive:
            xt += ", " + ("x_{1:t-1}" if self.autoregression else "x_{t-1}")
        return f"p(z_t | {zt}) p(x_t | {xt})"

    def __str__(self) -> str:
        return self.name


def list_specs(base: Optional[str] = None) -> List[DSSMSpec]:
    """All 36 specs of the taxonomy (or the 4/8/8/16 of one base), in a fixed order."""
    bases = list(Base) if base is None else [Base(base)]
    out = []
    for b in bases:
        allowed = b.allowed_flags()
        for values in itertools.product((False, True), repeat=len(allowed)):
            out.append(DSSMSpec(b, **dict(zip(allowed, values))))
    return out


def get_spec(name: str) -> DSSMSpec:
    """The spec with canonical name ``name`` (see :attr:`DSSMSpec.name`)."""
    return DSSMSpec.from_name(name)


# --------------------------------------------------------------------------
# d-separation on the unrolled graph
# --------------------------------------------------------------------------
def unrolled_parents(spec: DSSMSpec, T: int) -> Dict[Node, Set[Node]]:
    """Parent sets of every node of the graph unrolled over ``T`` steps."""
    return {(k, t): spec.parents((k, t)) for t in range(1, T + 1) for k in ("z", "x")}


def d_separated(parents: Dict[Node, Set[Node]], a: Iterable[Node], b: Iterable[Node],
                given: Iterable[Node]) -> bool:
    """Whether node sets ``a`` and ``b`` are d-separated by ``given``.

    Uses the moralised ancestral graph criterion (Lauritzen et al. 1990).
    """
    a, b, given = set(a), set(b), set(given)
    # ancestral set of a | b | given
    anc: Set[Node] = set()
    stack = list(a | b | given)
    while stack:
        n = stack.pop()
        if n not in anc:
            anc.add(n)
            stack.extend(parents[n])
    # moralise
    nbrs: Dict[Node, Set[Node]] = {n: set() for n in anc}
    for n in anc:
        ps = list(parents[n])
        for p in ps:
            nbrs[n].add(p)
            nbrs[p].add(n)
        for p, q in itertools.combinations(ps, 2):
            nbrs[p].add(q)
            nbrs[q].add(p)
    # remove the conditioning set and search for a path a -> b
    seen = set(a)
    stack = list(a)
    while stack:
        n = stack.pop()
        if n in b:
            return False
        for m in nbrs[n]:
            if m not in seen and m not in given:
                seen.add(m)
                stack.append(m)
    return True


_PROBE_T, _PROBE_t = 6, 4  # an interior step of a graph long enough to show every pattern


@lru_cache(maxsize=None)
def past_x_needed(spec: DSSMSpec) -> str:
    """Which past observations the exact posterior factor of ``z_t`` needs.

    The exact factor is ``p(z_t | z_{1:t-1}, x_{1:T})``. Returns

    * ``"none"`` if ``z_t ⊥ x_{1:t-1} | z_{1:t-1}, x_{t:T}`` (HMM group): a
      backward RNN over ``x_{t:T}`` suffices (eq. 4);
    * ``"last"`` if only ``x_{t-1}`` matters;
    * ``"all"`` otherwise: a forward summary of ``x_{1:t-1}`` is needed (eq. 5).
    """
    par = unrolled_parents(spec, _PROBE_T)
    t = _PROBE_t
    z_past = [("z", s) for s in range(1, t)]
    future = [("x", s) for s in range(t, _PROBE_T + 1)]
    if d_separated(par, [("z", t)], [("x", s) for s in range(1, t)], z_past + future):
        return "none"
    if d_separated(par, [("z", t)], [("x", s) for s in range(1, t - 1)],
                   z_past + future + [("x", t - 1)]):
        return "last"
    return "all"


@lru_cache(maxsize=None)
def z_history_needed(spec: DSSMSpec) -> bool:
    """Whether ``p(z_t | z_{1:t-1}, x_{1:T})`` depends on ``z_{1:t-2}`` given ``z_{t-1}``."""
    par = unrolled_parents(spec, _PROBE_T)
    t = _PROBE_t
    xs = [("x", s) for s in range(1, _PROBE_T + 1)]
    return not d_separated(par, [("z", t)], [("z", s) for s in range(1, t - 1)],
                           xs + [("z", t - 1)])
