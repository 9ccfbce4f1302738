"""brq_att_alt: BEST-RQ Conformer encoders with swappable linear-complexity token mixers."""

__version__ = "0.1.0"
