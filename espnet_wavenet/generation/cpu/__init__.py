"""The compiled CPU generator, by concern: :mod:`.build` compiles the kernel
(``csrc/``), :mod:`.loader` picks and loads the build for this CPU, :mod:`.abi`
binds its C ABI from ``csrc/wavenet_abi.h``, :mod:`.packing` lays the weights
out for it, and :mod:`.generator` drives it (:class:`~.generator.CompiledGenerator`)."""
