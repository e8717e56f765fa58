"""The scrubber's fast paths for ASCII text mask exactly what reading every place does.

``_may_show_a_key_shape`` searches ASCII text for each key-shape start as a substring
rather than with the regex, and ``_cut`` looks at the few places near a quad of a key's
bytes rather than at every place: for any text, each must decide as the regex and the
place-by-place scan do (both kept here as the reference), keys in it masked alike.
"""

from __future__ import annotations

import base64
import secrets
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from failover import _secrets
from failover._secrets import (
    _KEY_SHAPE_STARTS,
    PIECE,
    KeyScrubber,
    _may_show_a_key_shape,
    remember_secret,
)

KEY = "sk-proj-Ab3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9dE1fG3"
FORMS = [KEY, quote(KEY, safe=""), base64.b64encode(b"user:" + KEY.encode()).decode()]
STARTS = ["sk-", "gsk_", "AIza", "ya29.", "AKIA", "ASIA", "ABSK", "BeArEr ", "SIGNATURE="]
STARTS += ["x-amz-Security-Token: ", "aws_secret_access_key=", "\u212aey", "\u017fignature="]
HEADERS = (
    "content-type: application/json\nopenai-project: proj_abc123\nopenai-processing-ms: 412\n"
    "x-request-id: req_0123456789abcdef\nset-cookie: __cf_bm=abcdefghijklmnop; path=/\n"
)


def _masked_everywhere(text: str, pieces: frozenset[str]) -> str:
    """What ``_cut`` masks, found by looking at every place (the reference)."""
    covered_until, runs = -1, []
    for start in range(len(text) - PIECE + 1):
        if text[start : start + PIECE] in pieces:
            if runs and start <= covered_until:
                runs[-1] = (runs[-1][0], start + PIECE)
            else:
                runs.append((start, start + PIECE))
            covered_until = start + PIECE
    out, position = [], 0
    for begin, end in runs:
        out += [text[position:begin], "***"]
        position = end
    return "".join([*out, text[position:]])


def _fragments() -> st.SearchStrategy[str]:
    """Pieces of text: bits of the key's forms, key-shape starts, header text, any text."""
    form_bits = st.sampled_from(FORMS).flatmap(
        lambda form: st.tuples(st.integers(0, len(form)), st.integers(1, 24)).map(
            lambda cut: form[cut[0] : cut[0] + cut[1]]
        )
    )
    header_bits = st.integers(0, len(HEADERS)).map(lambda at: HEADERS[at : at + 40])
    return st.one_of(
        form_bits, st.sampled_from(STARTS), header_bits, st.text(max_size=12), st.just(KEY)
    )


TEXTS = st.lists(_fragments(), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_a_key_shape_start_is_found_as_the_regex_finds_it(text: str) -> None:
    for start in STARTS:  # each start alone, and in text
        assert _may_show_a_key_shape(start) is (_KEY_SHAPE_STARTS.search(start) is not None)
        assert _may_show_a_key_shape(f"a {start}b") is _may_show_a_key_shape(start)
    assert _may_show_a_key_shape(text) is (_KEY_SHAPE_STARTS.search(text) is not None)
    assert _may_show_a_key_shape(text.upper()) is (
        _KEY_SHAPE_STARTS.search(text.upper()) is not None
    )


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_a_keys_pieces_are_masked_as_looking_at_every_place_masks_them(text: str) -> None:
    scrubber = KeyScrubber([KEY], remembered=False)
    assert scrubber._cut(text) == _masked_everywhere(text, scrubber._pieces)


def test_a_key_in_real_headers_is_masked_and_headers_without_one_pass_as_they_are() -> None:
    scrubber = KeyScrubber([KEY], remembered=False)
    assert scrubber(HEADERS) == HEADERS  # "proj" is a quad of the key's: looked at, kept
    leaked = HEADERS + f"x-echo: {KEY[5:30]}\nauthorization: Bearer {KEY}\n"
    shown = scrubber(leaked)
    assert KEY[5:13] not in shown and KEY[-8:] not in shown
    assert shown.startswith(HEADERS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(TEXTS, max_size=6), max_size=5))
def test_a_text_that_scrubbing_changes_is_told_however_often_texts_were_seen_before(
    blocks: list[list[str]],
) -> None:
    # one scrubber over several blocks (the headers of several replies): texts it found
    # clean before are not scrubbed again, and never hide one that shows a key
    scrubber = KeyScrubber([KEY], remembered=False)
    for texts in [*blocks, *blocks]:
        raw = [text.encode("utf-8", "surrogatepass") for text in texts]
        changed = any(scrubber(text) != text for text in texts)
        told = scrubber.changes_any(raw[:2], raw[2:])
        assert told or not changed
        if all(text.isascii() and "\n" not in text for text in texts) and not any(
            _KEY_SHAPE_STARTS.search(text) for text in texts
        ):
            assert told is changed  # nothing could span two texts
        if not all(text.isascii() for text in texts):
            assert told  # decoded its own way by the caller


def test_texts_once_clean_are_read_again_when_a_secret_is_remembered() -> None:
    secret = f"remembered-{secrets.token_hex(24)}"  # remembered for the process: unguessable
    scrubber = KeyScrubber([KEY])
    texts = [b"x-request-id", b"req-1", b"x-session", secret.encode()]
    assert scrubber.changes_any(texts) is False
    remember_secret(secret)
    assert scrubber.changes_any(texts) is True
    assert scrubber(secret) == "***"


def test_the_texts_a_scrubber_keeps_are_bounded() -> None:
    scrubber = KeyScrubber([KEY], remembered=False)
    for number in range(3 * _secrets._CLEAN_TEXTS_KEPT):
        assert scrubber.changes_any([b"x-request-id", f"req-{number}".encode()]) is False
    assert len(scrubber._clean[1]) <= _secrets._CLEAN_TEXTS_KEPT
    many = [f"x-h{number}: v".encode() for number in range(2 * _secrets._CLEAN_TEXTS_KEPT)]
    assert scrubber.changes_any(many) is False  # more than it keeps at once: none kept
    assert len(scrubber._clean[1]) <= _secrets._CLEAN_TEXTS_KEPT
