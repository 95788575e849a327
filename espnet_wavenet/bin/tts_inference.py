#!/usr/bin/env python3
"""Drop-in for ``espnet2.bin.tts_inference`` that can use registered vocoders.

Takes every option of ESPnet's script (ESPnet's own parser) plus
``--allow_feats_mismatch``, activates :mod:`espnet_wavenet.integration` and runs
ESPnet's inference, so ``--vocoder_file <packed WaveNet dir>`` works.
"""

from espnet_wavenet.integration.espnet_tts import run_tts_inference, tts_inference_parser


def get_parser():
    return tts_inference_parser()


def main(cmd=None) -> None:
    """Entry point: ``python -m espnet_wavenet.bin.tts_inference <ESPnet options>``."""
    run_tts_inference(cmd)


if __name__ == "__main__":
    main()
