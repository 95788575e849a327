"""Build the network and its output distribution from configuration dicts."""

from typing import Any, Dict, Tuple

import numpy as np

from espnet_wavenet.distributions import Distribution, build_distribution
from espnet_wavenet.features import check_feats_conf
from espnet_wavenet.models.wavenet import WaveNet


def build_wavenet(
    feats_conf: Dict[str, Any],
    wavenet_conf: Dict[str, Any],
    distribution: str = "mulaw",
    distribution_conf: Dict[str, Any] = None,
) -> Tuple[WaveNet, Distribution]:
    """WaveNet whose conditioning matches ``feats_conf`` (n_mels, hop)."""
    feats_conf = check_feats_conf(feats_conf)
    dist = build_distribution(distribution, distribution_conf)
    conf = dict(wavenet_conf or {})
    conf.setdefault("aux_channels", feats_conf["n_mels"])
    if conf["aux_channels"] != feats_conf["n_mels"]:
        raise ValueError(
            f"wavenet_conf.aux_channels={conf['aux_channels']} but "
            f"feats_conf.n_mels={feats_conf['n_mels']}"
        )
    scales = [int(s) for s in conf.get("upsample_scales", (4, 4, 4, 4))]
    if int(np.prod(scales)) != feats_conf["hop_length"]:
        raise ValueError(
            f"product of upsample_scales {scales} = {int(np.prod(scales))} must "
            f"equal the feature hop_length {feats_conf['hop_length']}"
        )
    for key in ("out_channels", "input_type", "in_classes"):
        if key in conf:
            raise ValueError(f"wavenet_conf.{key} is set by the distribution")
    net = WaveNet(
        out_channels=dist.out_channels,
        input_type=dist.input_type,
        in_classes=max(dist.in_classes, 1),
        **conf,
    )
    return net, dist
