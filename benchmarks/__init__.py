# SPDX-License-Identifier: Apache-2.0
"""The benchmarks: every ``make bench-*`` command, measuring the product from outside. Nothing in the product imports
this package; the figures go to ``bench/`` (JSON and Markdown, :func:`benchmarks.measure.write_figures`).

- :mod:`benchmarks.serving` (``make bench-serving``), :mod:`benchmarks.client` (``make bench-client``),
  :mod:`benchmarks.soak` (``make bench-soak``), :mod:`benchmarks.head_of_line` (``make bench-hol``): speed, latency,
  memory, through the server and in-process;
- :mod:`benchmarks.leak` (``make bench-leak``): faces the command line leaves unchanged on the sample clips, with
  :mod:`benchmarks.leak_counting` (what counts as an unchanged face), :mod:`benchmarks.leak_report` (its report) and
  :mod:`benchmarks.video_io` (video files as a player shows them, through PyAV);
- :mod:`benchmarks.detector_sizes`, :mod:`benchmarks.min_face_size`: which faces each detector finds, by size;
- :mod:`benchmarks.training` (``make bench``): training steps per second per preset;
- :mod:`benchmarks.measure`: what they share (percentiles, process CPU and memory, writing the figures).
"""
