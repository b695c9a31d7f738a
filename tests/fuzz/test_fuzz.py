"""Property-based fuzzing (hypothesis): decoding and every request field.

Whatever arrives, the answer is an image or a clear refusal: never an unexpected exception,
never INTERNAL, and the services stay up. Bounded for the test command (the `ci` profile);
`HYPOTHESIS_PROFILE=long pytest tests/fuzz` runs many more examples.
"""

import io
import os
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cli.suite import Suite
from imsearch.core.errors import InvalidArgument, ResourceExhausted
from imsearch.core.structs import to_struct
from imsearch.v1 import encoder_pb2, index_pb2, index_pb2_grpc, search_pb2, search_pb2_grpc
from services.encoder.images import decode_image, preprocess
from services.encoder.model_spec import Preprocessing
from tests.helpers import jpeg, png

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SPEC = Preprocessing(resize=256, crop_size=224, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
SEEDS = [jpeg(1, (64, 48)), png(2, (40, 30), "RGBA"), png(3, (30, 40), "L")]


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (20, 10)).save(buffer, format="GIF")
    return buffer.getvalue()


SEEDS.append(gif())


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A real image file with some bytes flipped, cut or spliced: what a fuzzer finds bugs with."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(1, len(data)))]
    return bytes(data)


@given(st.one_of(st.binary(max_size=2048), mutated_images()))
def test_decoding_anything_gives_an_image_or_a_clear_refusal(data: bytes) -> None:
    try:
        image = decode_image(data, max_bytes=1_000_000, max_pixels=4_000_000, target_size=256)
    except (InvalidArgument, ResourceExhausted):
        return
    assert image.mode == "RGB"
    pixels = preprocess(image, SPEC)
    assert pixels.shape == (3, 224, 224) and np.all(np.isfinite(pixels))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
metadata = st.dictionaries(st.text(max_size=12), json_values, max_size=5)
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


@pytest.fixture(scope="module")
def gateway(suite: Suite) -> Iterator[search_pb2_grpc.SearchServiceStub]:
    with grpc.insecure_channel(suite.address) as channel:
        yield search_pb2_grpc.SearchServiceStub(channel)


def outcome(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@given(
    image_id=st.text(max_size=300),
    image=st.one_of(mutated_images(), st.just(SEEDS[0])),
    meta=metadata,
    on_duplicate=st.integers(0, 3),
    duplicate_min_score=st.none() | st.floats(allow_nan=True, allow_infinity=True, width=32),
)
def test_any_add_is_stored_or_refused(
    gateway: search_pb2_grpc.SearchServiceStub,
    image_id: str,
    image: bytes,
    meta: dict[str, Any],
    on_duplicate: int,
    duplicate_min_score: float | None,
) -> None:
    request = search_pb2.AddImageRequest(
        id=image_id,
        image=image,
        metadata=to_struct(meta),
        on_duplicate=on_duplicate,
        duplicate_min_score=duplicate_min_score,
    )
    code = outcome(lambda: gateway.AddImage(request, timeout=30))
    assert code == grpc.StatusCode.OK or code in REFUSALS, code


@given(
    top_k=st.integers(0, 2**32 - 1),
    index=st.integers(0, 5),
    rerank=st.integers(0, 5),
    metadata_filter=metadata,
)
def test_any_search_answers_or_is_refused(
    gateway: search_pb2_grpc.SearchServiceStub,
    top_k: int,
    index: int,
    rerank: int,
    metadata_filter: dict[str, Any],
) -> None:
    request = search_pb2.SearchRequest(
        image=SEEDS[0], top_k=top_k, index=index, rerank=rerank, filter=to_struct(metadata_filter)
    )
    code = outcome(lambda: gateway.Search(request, timeout=30))
    assert code == grpc.StatusCode.OK or code in REFUSALS, code


@given(
    collection=st.text(max_size=80),
    vector=st.lists(st.floats(width=32), max_size=1300),
    top_k=st.integers(0, 5000),
    with_vectors=st.booleans(),
)
def test_any_vector_search_on_the_index_answers_or_is_refused(
    suite: Suite, collection: str, vector: list[float], top_k: int, with_vectors: bool
) -> None:
    index = index_pb2_grpc.IndexServiceStub(grpc.insecure_channel(suite.index.address))
    request = index_pb2.SearchVectorRequest(
        collection=collection, vector=vector, top_k=top_k, with_vectors=with_vectors
    )
    code = outcome(lambda: index.Search(request, timeout=30))
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
    assert code in allowed, code


def conditions() -> st.SearchStrategy[index_pb2.Condition]:
    key = st.text(max_size=10)
    scalar = (
        st.booleans()
        | st.integers(-5, 5)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=4)
    )

    def equals(k: str, v: Any) -> index_pb2.Condition:
        made = index_pb2.Condition(key=k)
        made.equals.CopyFrom(to_struct({"v": v}).fields["v"])
        return made

    def any_of(k: str, values: list[Any]) -> index_pb2.Condition:
        made = index_pb2.Condition(key=k)
        made.any_of.SetInParent()
        made.any_of.extend(values)
        return made

    bound = st.none() | st.floats(allow_nan=True, allow_infinity=True)
    ranged = st.builds(
        lambda k, a, b: index_pb2.Condition(key=k, range=index_pb2.Range(gte=a, lt=b)), key, bound, bound
    )
    return (
        st.builds(equals, key, scalar)
        | st.builds(any_of, key, st.lists(scalar, max_size=3))
        | ranged
        | st.builds(index_pb2.Condition, key=key)
    )


boxes = st.none() | st.builds(
    encoder_pb2.Box,
    x=st.floats(-1, 2, width=32),
    y=st.floats(-1, 2, width=32),
    width=st.floats(-1, 2, width=32),
    height=st.floats(-1, 2, width=32),
)


@given(
    use_image=st.booleans(),
    text=st.text(max_size=40),
    positive_ids=st.lists(st.text(max_size=8), max_size=3),
    negative_ids=st.lists(st.text(max_size=8), max_size=2),
    strategy=st.integers(0, 3),
    offset=st.integers(0, 1200),
    min_score=st.none() | st.floats(allow_nan=True, allow_infinity=True, width=32),
    box=boxes,
    must=st.lists(conditions(), max_size=3),
    must_not=st.lists(conditions(), max_size=2),
    collection=st.sampled_from(["", "nope", "../x"]),
)
def test_any_rich_query_answers_or_is_refused(
    gateway: search_pb2_grpc.SearchServiceStub,
    use_image: bool,
    text: str,
    positive_ids: list[str],
    negative_ids: list[str],
    strategy: int,
    offset: int,
    min_score: float | None,
    box: encoder_pb2.Box | None,
    must: list[index_pb2.Condition],
    must_not: list[index_pb2.Condition],
    collection: str,
) -> None:
    """Examples, text, paging, cut-off, box, structured filters and collections, in any mix."""
    request = search_pb2.SearchRequest(
        image=SEEDS[0] if use_image else b"",
        text=text,
        positive_ids=positive_ids,
        negative_ids=negative_ids,
        strategy=strategy,
        offset=offset,
        min_score=min_score,
        box=box,
        where=index_pb2.Filter(must=must, must_not=must_not),
        collection=collection,
    )
    code = outcome(lambda: gateway.Search(request, timeout=30))
    allowed = REFUSALS | {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}
    assert code in allowed, code
