"""Stop strings held back while they could still match."""

from __future__ import annotations

from entropic_local.decode.text import StopMatcher


def test_stop_matcher_holds_back_prefixes():
    m = StopMatcher(["</end>"])
    out = []
    for piece in ["Hello </", "e", "nd", "> after"]:
        txt, matched = m.push(piece)
        out.append(txt)
        if matched:
            break
    assert "".join(out) == "Hello "
    assert matched
    m2 = StopMatcher(["</end>"])
    assert m2.push("a <")[0] == "a "  # '<' held: it may start the stop string
    assert m2.push("b")[0] == "<b"    # released once it cannot
    assert m2.flush() == ""
