# SPDX-License-Identifier: Apache-2.0
"""`make demo`'s report (tools/demo.py): faces are counted by what happened to them."""

from __future__ import annotations

from collections import Counter

from tools.demo import describe_faces


def test_the_demo_counts_faces_by_status():
    # video_01's counts with the release model: "673 faces camouflaged" was printed where 486 were only pixelated
    line = describe_faces(Counter({"camouflaged": 183, "concealed": 486}))
    assert line == "183 camouflaged, 486 pixelated (too small to camouflage)"
    assert describe_faces(Counter({"fallback": 2})) == "0 camouflaged, 2 concealed because camouflaging failed (fallback)"
