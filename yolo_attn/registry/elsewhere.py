"""Attention layers of other projects that yolo-attn does not implement, by the names their YAMLs use, so that an
unknown-layer error says what the name is instead of suggesting a look-alike (SEAM is not SECBAM)."""

ELSEWHERE = {
    "seam": "YOLO-FaceV2's separated and enhancement attention module (Yu et al., 2022)",
    "bam": "the bottleneck attention module (Park et al., BMVC 2018)",
    "danet": "DANet's position + channel self-attention (Fu et al., CVPR 2019; not the tutorials' 'dual attention', "
             "which is SECBAM here)",
    "dualattention": "DANet's position + channel self-attention (Fu et al., CVPR 2019; the tutorials' SE-then-CBAM "
                     "'dual attention' is SECBAM here)",
    "crisscrossattention": "criss-cross attention (Huang et al., CCNet, ICCV 2019)",
    "ccnet": "criss-cross attention (Huang et al., CCNet, ICCV 2019)",
    "psa": "polarized self-attention (Liu et al., 2021) or pyramid split attention (Zhang et al., 2021)",
    "polarizedselfattention": "polarized self-attention (Liu et al., 2021)",
    "scconv": "the 2023 spatial and channel reconstruction convolution (Li et al., CVPR 2023), not the 2020 "
              "self-calibrated convolution (SelfCalibConv here)",
    "coordinateattention": "in a widely copied tutorial, a plain channel attention under this name (SE here); Hou et "
                           "al.'s Coordinate Attention is CoordAtt",
    "s2attention": "the S²-MLPv2 split attention (Yu et al., 2021)",
    "cotattention": "contextual transformer attention (Li et al., CoTNet, 2021)",
    "externalattention": "external attention (Guo et al., 2021)",
    "acmix": "ACmix (Pan et al., CVPR 2022)",
    "mhsa": "multi-head self-attention (BoTNet's MHSA, Srinivas et al., CVPR 2021)",
    "fcanet": "frequency channel attention (Qin et al., ICCV 2021)",
    "gct": "gated channel transformation (Yang et al., CVPR 2020)",
    "srm": "style-based recalibration (Lee et al., ICCV 2019)",
}


def elsewhere(name):
    """What another project means by ``name`` when yolo-attn has no such layer, or None."""
    return ELSEWHERE.get(str(name).lower().replace("_", "").replace("-", ""))
