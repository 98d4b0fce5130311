"""The one registry of representation architectures (Section 3.2, Figure 5, Table 4).

An architecture id (``ss_r``, ``mss_cr``, ``ms_cr@2``, ``ms_cr@4``, ``ms_cr@6``, ``ms_sr@fc``,
the list :data:`mtdtl.constants.ARCH_IDS`) is parsed once, by :func:`parse_arch`, into a frozen
:class:`ArchSpec`; everything else (model building, parameter tables, sweeps, the CLI) reads the
spec. The paper's spellings (``MS-CR@6``, ``SS-R``) are accepted too.

Where the branches start
------------------------
The base network is the sequence of layers of Table 3::

    conv1  conv2  conv3  conv4  conv5  conv61  conv62  gap  fc-feature  | fc-output per source

A multi-source network shares the layers before ``branch_at`` (the *trunk*) and gives every
source its own copy of the layers from ``branch_at`` on (its *branch*), up to and including
fc-feature; each source always has its own fc-output head.

============  ============  =====================================================
id            branch_at     shared trunk
============  ============  =====================================================
``ss_r``      (none)        the whole network, one source
``mss_cr``    ``conv1``     nothing: one independent network per source
``ms_cr@2``   ``conv2``     conv1
``ms_cr@4``   ``conv4``     conv1-conv3
``ms_cr@6``   ``conv61``    conv1-conv5
``ms_sr@fc``  (none)        the whole network; only the fc-output heads differ
============  ============  =====================================================

"MS-CR@2 branches at the second convolution layer": conv2 is the first layer of each branch
(the authors' released code does the same). With 8 sources this gives the parameter ratios of
Section 5.4 (MS-CR@6 ≈ 6.3 x SS-R, MS-SR@FC ≈ 1.2 x).
"""

from __future__ import annotations

from dataclasses import dataclass

from mtdtl.constants import ARCH_IDS
from mtdtl.errors import MtdtlError

__all__ = ["ArchSpec", "ARCHITECTURES", "LAYERS", "DESIGN_ARC_CODES", "parse_arch"]

#: The layers of the base network in order (Table 3); fc-output heads follow per source.
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv61", "conv62", "gap", "fc_feature")


@dataclass(frozen=True)
class ArchSpec:
    """A parsed architecture id.

    Attributes
    ----------
    id : str
        Canonical id (one of :data:`mtdtl.constants.ARCH_IDS`).
    family : str
        ``"ss_r"``, ``"mss_cr"``, ``"ms_cr"`` or ``"ms_sr"`` (Table 4).
    branch_at : str or None
        First layer of every per-source branch (one of :data:`LAYERS`); ``None`` when the whole
        network is shared (``ss_r``, ``ms_sr@fc``).
    concat : bool
        The representation is the concatenation of the branches' fc-features (d x m);
        otherwise it is the single shared fc-feature (d).
    multi_source : bool
        Accepts more than one source.
    label : str
        The paper's spelling (``"MS-CR@6"``).
    """

    id: str
    family: str
    branch_at: str | None
    concat: bool
    multi_source: bool
    label: str

    @property
    def n_shared_layers(self) -> int:
        """How many layers of :data:`LAYERS` the trunk holds (all of them when nothing branches)."""
        return len(LAYERS) if self.branch_at is None else LAYERS.index(self.branch_at)


#: id → spec, in the order of :data:`mtdtl.constants.ARCH_IDS`.
ARCHITECTURES: dict[str, ArchSpec] = {
    "ss_r": ArchSpec("ss_r", "ss_r", None, False, False, "SS-R"),
    "mss_cr": ArchSpec("mss_cr", "mss_cr", "conv1", True, True, "MSS-CR"),
    "ms_cr@2": ArchSpec("ms_cr@2", "ms_cr", "conv2", True, True, "MS-CR@2"),
    "ms_cr@4": ArchSpec("ms_cr@4", "ms_cr", "conv4", True, True, "MS-CR@4"),
    "ms_cr@6": ArchSpec("ms_cr@6", "ms_cr", "conv61", True, True, "MS-CR@6"),
    "ms_sr@fc": ArchSpec("ms_sr@fc", "ms_sr", None, False, True, "MS-SR@FC"),
}
assert tuple(ARCHITECTURES) == ARCH_IDS

#: The ``arc`` column of the authors' ExperimentalDesign.csv → architecture id.
DESIGN_ARC_CODES = {1: "mss_cr", 2: "ms_cr@2", 3: "ms_cr@4", 4: "ms_cr@6", 5: "ms_sr@fc"}


def parse_arch(arch: str | ArchSpec) -> ArchSpec:
    """Parse an architecture id into its :class:`ArchSpec`.

    Parameters
    ----------
    arch : str or ArchSpec
        ``"ms_cr@6"``, ``"MS-CR@6"``, ``"ss_r"``, ... (case and ``-``/``_`` do not matter).

    Raises
    ------
    MtdtlError
        For an unknown id; the message lists the valid ones.
    """
    if isinstance(arch, ArchSpec):
        return arch
    key = str(arch).strip().lower().replace("-", "_").replace(" ", "")
    try:
        return ARCHITECTURES[key]
    except KeyError:
        raise MtdtlError(
            f"unknown architecture {arch!r}; valid ids: {', '.join(ARCH_IDS)}"
        ) from None
