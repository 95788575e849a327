"""The training target's transform, chosen by ``noise_shaping_conf``.

Both kinds offer ``enabled``, ``conf()``, ``analysis(wav, logmel)`` (natural
audio -> what the network models) and ``synthesis(wav, state, logmel)``
(generated -> audio, stateful across chunks):

* ``{pre_emphasis: 0.85, highpass_hz: 70}``: pre-emphasis (:mod:`.noise_shaping`);
* ``{lpc_order: 24, highpass_hz: 70}``: LPC excitation from the mels
  (:mod:`.lpc_shaping`);
* ``{}``: neither (the identity).
"""

from typing import Any, Dict, Optional, Union

from espnet_wavenet.data.lpc_shaping import LPCShaping
from espnet_wavenet.data.noise_shaping import NoiseShaping

Shaping = Union[NoiseShaping, LPCShaping]


def build_shaping(conf: Optional[Dict[str, Any]], feats_conf: Dict[str, Any]) -> Shaping:
    """From ``noise_shaping_conf`` and the feature configuration."""
    conf = dict(conf or {})
    if not conf.get("lpc_order"):
        conf.pop("lpc_order", None)
        return NoiseShaping.from_conf(conf, int(feats_conf["fs"]))
    unknown = set(conf) - {"lpc_order", "highpass_hz"}
    if unknown:
        raise ValueError(f"noise_shaping_conf: {sorted(unknown)} cannot go with lpc_order "
                         "(LPC excitation already shapes the noise; choose one)")
    return LPCShaping(feats_conf, **conf)
