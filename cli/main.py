"""`imsearch`: serve the suite, index folders of images, search, load-test.

Clients find the gateway with --gateway HOST:PORT or IMSEARCH_GATEWAY (default 127.0.0.1:50050).
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import grpc
from tqdm import tqdm

from imsearch.client import SearchClient, gateway_address
from imsearch.core.channels import ClientSecurity
from imsearch.core.index_kind import IndexKind
from imsearch.core.runner import run_until_signal
from imsearch.core.settings import read_config_file
from imsearch.core.structs import to_dict
from imsearch.v1 import index_pb2
from lab.datasets import labelled_images


def parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        x, y, width, height = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a box is X,Y,W,H as fractions of the image, not {text!r}"
        ) from None
    return x, y, width, height


def connect(args: argparse.Namespace) -> SearchClient:
    return SearchClient(
        gateway_address(args.gateway), security=ClientSecurity.from_environment(args.tls_ca, args.token)
    )


def cmd_verify(args: argparse.Namespace) -> None:
    audit = connect(args).verify(args.repair, args.collection)
    print(
        f"{audit.points} points in Qdrant, {audit.lsh_points} in the LSH store: "
        f"{audit.missing_in_lsh} missing from LSH, {audit.extra_in_lsh} only in LSH, "
        f"{audit.diverged} with a different vector or metadata"
        + (f", {audit.undigested} stored before digests" if audit.undigested else "")
        + (f"; {audit.repaired} repaired" if args.repair else "")
    )
    if audit.sample_ids:
        print("e.g. " + ", ".join(audit.sample_ids))
    differences = audit.missing_in_lsh + audit.extra_in_lsh + audit.diverged
    if differences and audit.repaired < differences:
        sys.exit(1)


def cmd_serve(args: argparse.Namespace) -> None:
    from cli.suite import start_suite

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    security = {
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "tls_client_ca": args.tls_client_ca,
        "auth_file": args.auth_file,
        "insecure": args.insecure or None,
        "reflection": False if args.no_reflection else None,
        "http_listen": None if args.http.lower() == "off" else args.http,
    }
    suite = start_suite(args.data_dir, args.listen, read_config_file(args.config), gateway_flags=security)
    http = f", HTTP API and search page at {suite.gateway.http_url}/" if suite.gateway.http_url else ""
    metrics = ", ".join(suite.metrics_urls())
    run_until_signal(
        f"imsearch suite ready: gateway on {suite.address}{http}, metrics at {metrics}",
        suite.stop,
    )


def cmd_index(args: argparse.Namespace) -> None:
    client = connect(args)
    found = list(labelled_images(args.paths))
    # Counted as they are handed to gRPC, whose flow control keeps them close to what the
    # gateway has taken; shown on a terminal only.
    progress = tqdm(found, desc="indexing", unit="img", file=sys.stderr, disable=None, smoothing=0.1)
    items = (
        (image_id, path.read_bytes(), {"label": label, "path": str(path)})
        for image_id, path, label in progress
    )
    policy = "skip" if args.skip_duplicates else "allow"
    response = client.add_images_checked(
        items, args.collection, policy, args.duplicate_min_score, skip_existing=not args.replace
    )
    progress.close()
    skipped = [d for d in response.duplicates if d.skipped]
    for duplicate in skipped:
        print(f"skipped {duplicate.id}: a near-duplicate of {duplicate.of} ({duplicate.score:.4f})")
    summary = f"added {response.added} images"
    if not args.replace:
        summary += f", {response.already_stored} already stored"
    if args.skip_duplicates:
        summary += f", skipped {len(skipped)} near-duplicates"
    print(summary)


def cmd_duplicates(args: argparse.Namespace) -> None:
    found = connect(args).find_duplicates(args.collection, args.min_score, args.max_groups)
    for group in found.groups:
        print(f"{len(group.ids)} images (cosine >= {group.min_score:.4f}): {', '.join(group.ids)}")
    print(f"{found.groups_found} groups of near-duplicates among {found.points_scanned} images")


def describe(info: Any) -> str:
    hnsw = "built" if info.hnsw_built else "not built"
    return (
        f"{info.collection}: model {info.model or '?'}, dim {info.dim}, {info.points} points "
        f"({info.lsh_points} in LSH), HNSW {hnsw}, LSH {info.lsh_tables} tables x {info.lsh_bits} bits"
        + (", int8 vectors" if info.quantization == index_pb2.VECTOR_QUANTIZATION_INT8 else "")
    )


def cmd_collections(args: argparse.Namespace) -> None:
    client = connect(args)
    if args.action == "list":
        for info in client.list_collections():
            print(describe(info))
    elif args.action == "create":
        params = {
            name: value
            for name in ("lsh_tables", "lsh_bits", "hnsw_m", "hnsw_ef_construct")
            if (value := getattr(args, name))
        }
        if args.quantization == "int8":
            params["quantization"] = index_pb2.VECTOR_QUANTIZATION_INT8
        print("created " + describe(client.create_collection(args.name, args.model or "", **params)))
    elif args.action == "describe":
        print(describe(client.describe_collection(args.name)))
    elif client.drop_collection(args.name):
        print(f"dropped {args.name}")
    else:
        print(f"no collection {args.name!r}")
        sys.exit(1)


def cmd_search(args: argparse.Namespace) -> None:
    client = connect(args)
    if args.image is None and not args.like and not args.text:
        sys.exit("give an IMAGE, a --text, or stored ids with --like")
    response = client.search(
        args.image.read_bytes() if args.image else None,
        args.top_k,
        index=args.index,
        metadata_filter=json.loads(args.filter) if args.filter else None,
        rerank={"on": True, "off": False, "default": None}[args.rerank],
        collection=args.collection,
        like=args.like,
        unlike=args.unlike,
        unlike_images=[path.read_bytes() for path in args.unlike_image],
        strategy=args.strategy,
        offset=args.offset,
        min_score=args.min_score,
        box=args.box,
        where=json.loads(args.where) if args.where else None,
        text=args.text or "",
    )
    rows: list[dict[str, Any]] = [
        {"id": r.id, "score": round(r.score, 6), "metadata": to_dict(r.metadata)} for r in response.results
    ]
    if args.json:
        summary = {"collection": response.collection, "model": response.model, "reranked": response.reranked}
        print(json.dumps({**summary, "results": rows}, indent=2))
        return
    for rank, row in enumerate(rows, 1):
        print(f"{rank:3d}  {row['score']:.4f}  {row['id']}  {row['metadata'].get('label', '')}")


def cmd_loadtest(args: argparse.Namespace) -> None:
    from cli.loadtest import run_loadtest

    run_loadtest(args)


def cmd_models_list(args: argparse.Namespace) -> None:
    from lab.zoo.recipes import RECIPES
    from services.encoder.model_spec import SPEC_FILE, ModelSpec

    print(f"{'model':18s} {'family':20s} {'dim':>5s}  {'weights on this machine':44s} exported")
    for name, recipe in sorted(RECIPES.items()):
        weights = (
            f"yes: {recipe.pretrained_source}"
            if recipe.has_offline_weights()
            else f"no: needs {recipe.pretrained_source}"
        )
        model_dir = args.repository / name
        exported = "-"
        if (model_dir / SPEC_FILE).is_file() and ModelSpec.load(model_dir).onnx_path(
            args.repository
        ).is_file():
            exported = ModelSpec.load(model_dir).weights
        print(f"{name:18s} {recipe.family:20s} {recipe.dim:5d}  {weights:44s} {exported}")
    text_exported = (args.repository / "clip_vit_b32_text" / "1" / "model.onnx").is_file()
    print(
        f"{'clip_vit_b32_text':18s} {'text tower (CLIP)':20s} {512:5d}  "
        f"{'no: needs hub openai/clip-vit-base-patch32':44s} {'yes' if text_exported else '-'}"
    )


def cmd_models_export(args: argparse.Namespace) -> None:
    from lab.zoo.export import export
    from lab.zoo.recipes import RECIPES
    from lab.zoo.text import NAME as TEXT_TOWER
    from lab.zoo.text import export_text_tower

    if args.name == TEXT_TOWER:
        result = export_text_tower(args.repository, args.weights)
    elif args.name in RECIPES:
        result = export(RECIPES[args.name], args.repository, args.weights, args.fp16)
    else:
        sys.exit(f"unknown model {args.name!r}; `imsearch models list` shows them")
    print(f"exported {args.name} to {result.onnx_path}; {result.describe()}{' (fp16)' if args.fp16 else ''}")
    if args.int8:
        from lab.zoo.quantize import calibration_images, quantize

        if args.fp16:
            sys.exit("--int8 quantizes the float32 export: leave out --fp16")
        if not args.calibration.is_dir():
            sys.exit(f"--int8 needs calibration images: {args.calibration} is not a folder")
        images = calibration_images(
            args.calibration, args.calibration_images, args.queries_per_class, args.seed
        )
        quantized = quantize(args.repository, args.name, images)
        print(f"quantized {quantized.spec.name} to {quantized.onnx_path}; {quantized.describe()}")


def cmd_models_variant(args: argparse.Namespace) -> None:
    from lab.zoo.variants import write_augmented_variant

    spec = write_augmented_variant(args.repository, args.name, tuple(args.augment))
    views = ", ".join(spec.test_time_augmentation)
    print(f"wrote {args.repository / spec.name}: runs {spec.runs} with views {views}")


def cmd_models_ensemble(args: argparse.Namespace) -> None:
    from lab.zoo.variants import write_ensemble

    spec = write_ensemble(args.repository, args.name, tuple(args.members.split(",")))
    print(f"wrote {args.repository / spec.name}: {spec.weights}, dim {spec.dim}")


def cmd_models_fit_codebook(args: argparse.Namespace) -> None:
    from lab.zoo.codebook import fit_codebook

    spec = fit_codebook(args.dataset, args.repository, args.words, args.max_images)
    print(f"wrote {args.repository / spec.name}: {spec.weights}")


def cmd_eval(args: argparse.Namespace) -> None:
    from lab.eval.harness import run
    from lab.eval.parents import parents_for
    from lab.eval.protocol import split
    from lab.eval.report import write

    seeds = [int(s) for s in args.seed.split(",")]
    splits = {seed: split(args.dataset, args.queries_per_class, seed, args.classes) for seed in seeds}
    first = splits[seeds[0]]
    protocol: dict[str, str | int] = {
        "dataset": args.dataset.name,
        "gallery images": len(first.gallery),
        "queries": len(first.queries),
        "queries per class (never in the gallery)": args.queries_per_class,
        "seeds": args.seed,
        "embeddings": "L2-normalised",
    }
    expansion = None
    if args.query_expansion:
        from services.index.query_expansion import QueryExpansion

        neighbours, alpha = args.query_expansion.split(",")
        expansion = QueryExpansion(int(neighbours), float(alpha))
        protocol["query expansion (neighbours, alpha)"] = args.query_expansion
    k_reciprocal = None
    if args.k_reciprocal:
        from services.index.k_reciprocal import KReciprocal

        k1, k2, weight, candidates = args.k_reciprocal.split(",")
        k_reciprocal = KReciprocal(int(k1), int(k2), float(weight), int(candidates))
        protocol["k-reciprocal re-ranking (k1, k2, lambda, candidates)"] = args.k_reciprocal
    results = run(
        splits,
        args.models.split(","),
        args.index.split(","),
        args.k,
        args.repository,
        protocol,
        expansion=expansion,
        k_reciprocal=k_reciprocal,
    )
    write(results, args.out, parents_for({item.label for item in first.gallery}))
    print((args.out / "report.md").read_text())


def cmd_train(args: argparse.Namespace) -> None:
    from lab.train.autoencoder import AutoencoderParams
    from lab.train.heads import HeadParams
    from lab.train.runner import TrainJob, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = args.name or f"{args.kind}_{args.dataset.name.lower()}"
    job = TrainJob(
        args.kind,
        args.dataset,
        name,
        args.repository,
        args.out / name,
        args.backbone,
        args.queries_per_class,
        args.seed,
        args.cache,
        tune_blocks=args.tune_blocks,
    )
    head = HeadParams(
        out_dim=args.dim,
        epochs=args.epochs or 30,
        margin=args.margin,
        distance=args.distance,
        mining=args.mining,
        m_per_class=args.m_per_class,
    )
    result = train(job, head, AutoencoderParams(epochs=args.epochs or 8))
    history = result.history
    print(
        f"trained {name} ({args.kind}) on {result.train_images} images, validated on "
        f"{result.validation_images}; best epoch {history.best_epoch}/{len(history.loss)}: validation "
        f"P@{history.k} {history.validation_precision[history.best_epoch - 1]:.3f}\n"
        f"checkpoint {result.checkpoint}, curves {job.out / 'curves.png'}\n"
        f"exported to {args.repository / name}; {result.export_check}"
    )


def cmd_study(args: argparse.Namespace) -> None:
    from lab.eval.study import StudyOptions, rewrite_report, run_study

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    seeds = tuple(int(s) for s in args.seeds.split(","))
    options = StudyOptions(args.data, args.out, args.work, seeds, classes=args.classes)
    command = "imsearch study" + (f" --seeds {args.seeds}" if args.seeds != "0" else "")
    print(f"wrote {(rewrite_report if args.report_only else run_study)(options, command)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imsearch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the whole suite on embedded defaults")
    serve.add_argument("--data-dir", type=Path, default=Path("data"), help="Qdrant shards and Redis data")
    serve.add_argument("--listen", default=None, help="gateway address (default 127.0.0.1:50050)")
    serve.add_argument("--config", type=Path, default=None, help="TOML settings file (or IMSEARCH_CONFIG)")
    serve.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate chain: serve TLS")
    serve.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")
    serve.add_argument(
        "--tls-client-ca", type=Path, default=None, help="mutual TLS: trust client certs of this CA"
    )
    serve.add_argument("--auth-file", type=Path, default=None, help="`ROLE SHA256HEX` lines: bearer tokens")
    serve.add_argument(
        "--insecure", action="store_true", help="serve off loopback without TLS and credentials"
    )
    serve.add_argument("--no-reflection", action="store_true", help="turn gRPC server reflection off")
    serve.add_argument(
        "--http",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="HTTP/JSON API and search page (default 127.0.0.1:8080; off: none)",
    )
    serve.set_defaults(func=cmd_serve)

    def client_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--gateway", default=None, help="gateway HOST:PORT (or IMSEARCH_GATEWAY)")
        p.add_argument(
            "--tls-ca", type=Path, default=None, help="trust this CA: connect with TLS (or IMSEARCH_TLS_CA)"
        )
        p.add_argument("--token", default=None, help="bearer token (better: IMSEARCH_TOKEN, kept out of ps)")
        return p

    def with_collection(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--collection", default="", help="collection (default: the gateway's default one)")
        return p

    collections = client_parser("collections", "create, list, describe or drop collections")
    collections.add_argument("action", choices=["create", "list", "describe", "drop"])
    collections.add_argument("name", nargs="?", default="", help="the collection (not for list)")
    collections.add_argument("--model", default=None, help="create: a model the encoder serves")
    for name in ("lsh-tables", "lsh-bits", "hnsw-m", "hnsw-ef-construct"):
        collections.add_argument(f"--{name}", type=int, default=0, help="create: this index parameter")
    collections.add_argument(
        "--quantization",
        choices=["none", "int8"],
        default="none",
        help="create: int8 keeps a quarter of the vector RAM in Qdrant (searches rescore with float32)",
    )
    collections.set_defaults(func=cmd_collections)

    index = with_collection(client_parser("index", "add the images under folders (label = folder name)"))
    index.add_argument("paths", nargs="+", type=Path)
    index.add_argument(
        "--skip-duplicates", action="store_true", help="leave out images that nearly duplicate stored ones"
    )
    index.add_argument("--duplicate-min-score", type=float, default=None, help="cosine (default 0.95)")
    index.add_argument(
        "--replace",
        action="store_true",
        help="encode and store every image again (default: stored ids are skipped: a re-run resumes)",
    )
    index.set_defaults(func=cmd_index)

    duplicates = with_collection(client_parser("duplicates", "list groups of near-duplicate images"))
    duplicates.add_argument("--min-score", type=float, default=0.95, help="cosine, 0.5-1")
    duplicates.add_argument("--max-groups", type=int, default=100)
    duplicates.set_defaults(func=cmd_duplicates)

    verify = with_collection(
        client_parser("verify", "audit the index: Qdrant and the LSH store hold the same points (admin)")
    )
    verify.add_argument(
        "--repair", action="store_true", help="rewrite the LSH store from Qdrant where they differ"
    )
    verify.set_defaults(func=cmd_verify)

    search = with_collection(client_parser("search", "find images similar to IMAGE, or to stored ones"))
    search.add_argument("image", type=Path, nargs="?", help="query image (one more positive with --like)")
    search.add_argument("--text", default=None, help='text-to-image: "red dress" (a CLIP collection)')
    search.add_argument("--like", action="append", default=[], metavar="ID", help="a stored positive example")
    search.add_argument(
        "--unlike", action="append", default=[], metavar="ID", help="a stored negative example"
    )
    search.add_argument(
        "--unlike-image",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a negative example image",
    )
    search.add_argument("--strategy", choices=["average_vector", "best_score"], default="average_vector")
    search.add_argument("--top-k", type=int, default=10)
    search.add_argument("--offset", type=int, default=0, help="skip the best N hits (paging)")
    search.add_argument("--min-score", type=float, default=None, help="leave out hits scoring below this")
    search.add_argument(
        "--box",
        type=parse_box,
        default=None,
        metavar="X,Y,W,H",
        help="search only this region of IMAGE (fractions)",
    )
    search.add_argument("--index", choices=[kind.value for kind in IndexKind], default=IndexKind.HNSW.value)
    search.add_argument("--filter", default=None, help='metadata filter as JSON, e.g. \'{"label": "cat"}\'')
    search.add_argument(
        "--where",
        default=None,
        help='must/should/must_not as JSON, e.g. \'{"must": [{"key": "n", "range": {"gte": 3}}]}\'',
    )
    search.add_argument("--rerank", choices=["default", "on", "off"], default="default")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(func=cmd_search)

    models = sub.add_parser("models", help="the model zoo: list recipes, export them to ONNX")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    listing = models_sub.add_parser(
        "list", help="every model, whether its real weights are here, what is exported"
    )
    listing.add_argument("--repository", type=Path, default=Path("model_repository"))
    listing.set_defaults(func=cmd_models_list)
    exporting = models_sub.add_parser("export", help="build NAME's ONNX file and Triton config, check parity")
    exporting.add_argument("name")
    exporting.add_argument(
        "--weights", default="pretrained", help="pretrained (default), random, or a checkpoint"
    )
    exporting.add_argument("--fp16", action="store_true", help="float16 weights and arithmetic")
    exporting.add_argument(
        "--int8",
        action="store_true",
        help="also write NAME_int8: static int8 quantization (QDQ, per-channel 7-bit weights)",
    )
    exporting.add_argument(
        "--calibration",
        type=Path,
        default=Path("../shared/data/caltech101"),
        help="--int8: labelled image folders; only the gallery of the evaluation split is read",
    )
    exporting.add_argument("--calibration-images", type=int, default=200)
    exporting.add_argument("--queries-per-class", type=int, default=10, help="--int8: the split to keep out")
    exporting.add_argument("--seed", type=int, default=0)
    exporting.add_argument("--repository", type=Path, default=Path("model_repository"))
    exporting.set_defaults(func=cmd_models_export)
    variant = models_sub.add_parser(
        "variant", help="a model embedding more views of each image (test-time augmentation)"
    )
    variant.add_argument("name", help="an exported image model")
    variant.add_argument("--augment", nargs="+", choices=["hflip"], default=["hflip"])
    variant.add_argument("--repository", type=Path, default=Path("model_repository"))
    variant.set_defaults(func=cmd_models_variant)
    ensemble = models_sub.add_parser("ensemble", help="a model joining several models' embeddings")
    ensemble.add_argument("name", help="the new model's name")
    ensemble.add_argument("--members", required=True, help="exported image models, comma-separated")
    ensemble.add_argument("--repository", type=Path, default=Path("model_repository"))
    ensemble.set_defaults(func=cmd_models_ensemble)
    codebook = models_sub.add_parser("fit-codebook", help="learn the ORB bag-of-words codebook from images")
    codebook.add_argument("--dataset", type=Path, required=True)
    codebook.add_argument("--words", type=int, default=256)
    codebook.add_argument("--max-images", type=int, default=1000)
    codebook.add_argument("--repository", type=Path, default=Path("model_repository"))
    codebook.set_defaults(func=cmd_models_fit_codebook)

    evaluation = sub.add_parser(
        "eval", help="retrieval quality and speed of models and indexes on a labelled set"
    )
    evaluation.add_argument("--dataset", type=Path, required=True, help="one folder per class")
    evaluation.add_argument("--models", default="efficientnet_lite0")
    evaluation.add_argument("--index", default="exact,kdtree,lsh,hnsw")
    evaluation.add_argument(
        "--query-expansion", default="", metavar="N,ALPHA", help="alpha query expansion on every index search"
    )
    evaluation.add_argument(
        "--k-reciprocal",
        default="",
        metavar="K1,K2,LAMBDA,CANDIDATES",
        help="k-reciprocal re-ranking on every index search (the paper's: 20,6,0.3,100)",
    )
    evaluation.add_argument("--queries-per-class", type=int, default=3)
    evaluation.add_argument("--classes", type=int, default=None, help="a random subset of this many classes")
    evaluation.add_argument("--k", type=int, default=10)
    evaluation.add_argument("--seed", default="0", help="split seed; several (0,1,2): means over seeds")
    evaluation.add_argument("--out", type=Path, default=Path("eval-out"))
    evaluation.add_argument("--repository", type=Path, default=Path("model_repository"))
    evaluation.set_defaults(func=cmd_eval)

    training = sub.add_parser(
        "train", help="train a head, a triplet head or an autoencoder, and export it as a model"
    )
    training.add_argument("kind", choices=["head", "triplet", "autoencoder"])
    training.add_argument("--dataset", type=Path, required=True, help="one folder per class")
    training.add_argument("--name", default=None, help="model name (default KIND_DATASET)")
    training.add_argument("--backbone", default="efficientnet_lite2", help="head/triplet: frozen backbone")
    training.add_argument(
        "--queries-per-class", type=int, default=3, help="the evaluation's queries, never trained on"
    )
    training.add_argument("--seed", type=int, default=0, help="the evaluation split's seed")
    training.add_argument("--epochs", type=int, default=None, help="default 30 (heads), 8 (autoencoder)")
    training.add_argument("--dim", type=int, default=512, help="head/triplet: embedding size")
    training.add_argument(
        "--tune-blocks", type=int, default=0, help="head/triplet: also fine-tune the backbone's last N blocks"
    )
    training.add_argument("--margin", type=float, default=0.2, help="triplet margin")
    training.add_argument("--distance", choices=["cosine", "euclidean"], default="cosine")
    training.add_argument("--mining", choices=["semihard", "hard", "all"], default="semihard")
    training.add_argument("--m-per-class", type=int, default=16, help="triplet: images per class in a batch")
    training.add_argument("--repository", type=Path, default=Path("model_repository"))
    training.add_argument("--out", type=Path, default=Path("build/train"), help="checkpoints and curves")
    training.add_argument("--cache", type=Path, default=Path("build/cache"), help="backbone features")
    training.set_defaults(func=cmd_train)

    study = sub.add_parser("study", help="the whole evaluation study: train, evaluate, write docs/results.md")
    study.add_argument("--data", type=Path, default=Path("../shared/data"), help="caltech101/ and cosplay/")
    study.add_argument("--out", type=Path, default=Path("docs"))
    study.add_argument("--work", type=Path, default=Path("build/study"), help="models, checkpoints, caches")
    study.add_argument("--seeds", default="0", help="split seeds, e.g. 0,1,2 (means over seeds)")
    study.add_argument("--classes", type=int, default=None, help="a random subset of classes (smoke test)")
    study.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the last run's results.json"
    )
    study.set_defaults(func=cmd_study)

    from cli.loadtest import add_loadtest_arguments

    loadtest = client_parser("loadtest", "measure QPS and latency of Search against a running gateway")
    add_loadtest_arguments(loadtest)
    loadtest.set_defaults(func=cmd_loadtest)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except grpc.RpcError as exc:
        sys.exit(f"error: {exc.code().name}: {exc.details()}")


if __name__ == "__main__":
    main()
