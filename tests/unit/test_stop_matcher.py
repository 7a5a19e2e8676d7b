import itertools

from hypothesis import given
from hypothesis import strategies as st

from moonbase.engines.stop import StopMatcher, Utf8Stream


def stream(pieces: list[str], stops: tuple[str, ...]) -> tuple[list[str], bool]:
    matcher = StopMatcher(stops)
    out = [matcher.feed(p) for p in pieces]
    out.append(matcher.flush())
    return out, matcher.stopped


def reference(text: str, stops: tuple[str, ...]) -> str:
    cuts = [text.find(s) for s in stops if s and s in text]
    return text[: min(cuts)] if cuts else text


def test_stop_split_across_pieces_is_never_released():
    out, stopped = stream(["Hello wor", "ld! The", " END", " more"], ("d! The E",))
    assert "".join(out) == "Hello worl"
    assert stopped
    # "d" could begin the stop string, so it was held until the stop completed
    assert out[:2] == ["Hello wor", "l"]


def test_text_held_back_is_released_when_it_cannot_be_a_stop():
    matcher = StopMatcher(("abc",))
    assert matcher.feed("xxa") == "xx"
    assert matcher.feed("bd") == "abd"
    assert not matcher.stopped


def test_earliest_of_several_stops_wins():
    out, _ = stream(["one two three"], ("three", "two"))
    assert "".join(out) == "one "


def test_flush_releases_a_partial_stop_at_the_end():
    out, stopped = stream(["the en"], ("the end",))
    assert "".join(out) == "the en"
    assert not stopped


@given(
    text=st.text(alphabet="abcde ", max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=12),
    stops=st.lists(st.text(alphabet="abcde ", min_size=1, max_size=5), max_size=5),
)
def test_streaming_equals_cutting_the_whole_text(text, cuts, stops):
    bounds = sorted({c for c in cuts if c <= len(text)} | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    out, stopped = stream(pieces, tuple(stops))
    assert "".join(out) == reference(text, tuple(stops))
    assert stopped == any(s in text for s in stops)


def test_utf8_stream_holds_incomplete_characters():
    data = "héllo 月".encode()
    decoder = Utf8Stream()
    text = "".join(decoder.decode(data[i : i + 1]) for i in range(len(data)))
    assert text + decoder.flush() == "héllo 月"


def test_a_character_cut_by_the_end_of_the_reply_is_dropped_not_replaced():
    """max_tokens can end a reply inside a character (an emoji is several
    byte tokens): the reply ends before it, with no U+FFFD."""
    decoder = Utf8Stream()
    text = decoder.decode("ok 🌟".encode()[:-2])
    assert text + decoder.flush() == "ok "
    assert decoder.decode(b"\xff") == "\ufffd"  # bytes that are no character stay visible


def test_a_longer_stop_that_began_earlier_wins_over_a_shorter_complete_one():
    out, stopped = stream(["aa", "c", "a"], ("c", "aca"))
    assert "".join(out) == "a" and stopped
    out, stopped = stream(["aac"], ("c", "aca"))  # the longer one never completes
    assert "".join(out) == "aa" and stopped
