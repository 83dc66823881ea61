# SPDX-License-Identifier: Apache-2.0
"""serving: running and supervising ``tritonserver`` for facecamo; ``python -m serving`` is what `make serve` runs (and
the container's entry point, Dockerfile). :mod:`serving.server` holds ``TritonServer`` and says what the launcher
guarantees; :mod:`serving.supervisor` heals faults, :mod:`serving.control` is Triton's HTTP API and the canary,
:mod:`serving.ports`, :mod:`serving.tls`, :mod:`serving.backends` and :mod:`serving.stubs` are the checks and
look-ups around them. Nothing is imported here. It is not part of the pip-installed client (facecamo, facecamo_client).
"""
