"""Recipe support: Kaldi data directories, validation, decoding of feature lists."""
