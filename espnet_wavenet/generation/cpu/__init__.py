"""The compiled CPU generator, by concern: :mod:`.build` compiles, picks and
loads the kernel (``csrc/``), :mod:`.abi` binds its C ABI from
``csrc/wavenet_abi.h``, :mod:`.packing` lays the weights out for it, and
:mod:`.generator` drives it (:class:`~.generator.CompiledGenerator`)."""
