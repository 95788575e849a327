#!/usr/bin/env python3
"""Train the WaveNet vocoder with ESPnet's Trainer (all ESPnet trainer options)."""

from espnet_wavenet.tasks.vocoder import WaveNetVocoderTask


def get_parser():
    return WaveNetVocoderTask.get_parser()


def main(cmd=None):
    """Entry point: ``python -m espnet_wavenet.bin.train --config conf/... ``."""
    WaveNetVocoderTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
