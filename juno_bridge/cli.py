"""The `juno-bridge` command.

Exit codes: 0 success, 1 an error while working, 2 bad usage, 3 a backend or library unavailable.
Errors print as one line (`juno-bridge: error: ...`); --debug shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def library_version(module: str) -> str:
    """The installed release of an importable module, from whichever distribution provides it
    (tensorflow comes as tensorflow, tensorflow-cpu, ...); "not installed" when it cannot be imported."""
    import importlib.metadata as metadata
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return "not installed"
    for dist in metadata.packages_distributions().get(module, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "installed, version unknown"


def backend_table() -> dict[str, dict]:
    """Every backend of the registry: built in or plugin, available, where its plugin is, what installs it."""
    import juno_bridge as jb

    return {b.name: {"kind": "plugin" if b.plugin else "built in", "available": b.available,
                     "plugin": b.plugin_path or (f"libjuno_bridge_{b.plugin}.so not built" if b.plugin else ""),
                     "extra": b.extra,
                     "models": ", ".join([*b.prefixes, *b.suffixes, *filter(None, [b.directory_marker])]),
                     "description": b.description}
            for b in jb.backends()}


def cmd_info(args) -> int:
    import juno_bridge as jb
    from juno_bridge import _core, paths

    info = {"juno-bridge": jb.__version__, "core library": _core.version()}
    try:
        ort = jb.onnxruntime_info(args.onnxruntime)
        info["onnxruntime"] = {k: ort[k] for k in ("version", "api_version", "path", "providers")}
    except jb.Error as err:
        info["onnxruntime"] = f"unavailable: {err}"
    for module in ("numpy", "torch", "tritonclient"):
        info[module] = library_version(module)
    info["tensorflow"] = _tensorflow_info(paths.plugins().get("tf"))  # the release the tf plugin binds
    info["backends"] = backend_table()
    info["plugins"] = {name: str(path) for name, path in paths.plugins().items()} or "none built"
    info["include dir"] = str(paths.include_dir())
    info["lib dir"] = str(paths.lib_dir())
    info["cmake dir"] = str(paths.cmake_dir())
    info["cmake components"] = paths.components()
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    for key, value in info.items():
        if key == "backends":
            print("backends:")
            for name, b in value.items():
                state = "available" if b["available"] else "not available"
                where = f", {b['plugin']}" if b["plugin"] else ""
                extra = f", pip extra [{b['extra']}]" if b["extra"] else ""
                print(f"  {name}: {b['kind']}, {state}{where}{extra}")
        elif isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {', '.join(v) if isinstance(v, list) else v}")
        else:
            print(f"{key}: {value}")
    return EXIT_OK


def _tensorflow_info(plugin) -> dict | str:
    """The TensorFlow the tf plugin binds (as a session would: JUNO_BRIDGE_TENSORFLOW, else the package
    beside juno-bridge), asked of the plugin itself: {"version": TF_Version(), "path": library}."""
    if plugin is None:
        return "unavailable: the tf plugin was not built"
    import ctypes
    describe = ctypes.CDLL(str(plugin)).jb_tf_describe
    describe.argtypes, describe.restype = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int
    text = ctypes.create_string_buffer(4096)
    if describe(None, text, len(text)) != 0:
        return f"unavailable: {text.value.decode()}"
    version, path = text.value.decode().split("\n", 1)
    return {"version": version, "path": path}


def cmd_config(args) -> int:
    from juno_bridge import paths

    parts = []
    if args.cflags:
        parts.append(paths.as_command_line(paths.cflags()))
    if args.libs:
        parts.append(paths.as_command_line(paths.libs()))
    if args.cmake_dir:
        parts.append(str(paths.cmake_dir()))
    if args.include_dir:
        parts.append(str(paths.include_dir()))
    if args.lib_dir:
        parts.append(str(paths.lib_dir()))
    if args.examples_dir:
        parts.append(str(paths.examples_dir()))
    if args.components:
        parts.append(" ".join(name for name, state in paths.components().items() if state.startswith("built")))
    if not parts:
        raise UsageError("config needs at least one of --cflags, --libs, --cmake-dir, --include-dir, --lib-dir, "
                         "--examples-dir, --components")
    print(" ".join(parts))
    return EXIT_OK


def cmd_bench(args) -> int:
    from juno_bridge import bench

    settings = bench.Settings.quick() if args.quick else bench.Settings()
    if args.iterations:
        settings.iterations = args.iterations
    if args.batch:
        settings.batches = tuple(args.batch)
    if args.model:
        settings.models = tuple(args.model)
    print("juno-bridge bench: the same model through every method, side by side, 1 intra-op thread\n")
    print(bench.run(settings, groups=tuple(args.only or bench.GROUPS), json_path=args.json))
    if args.json:
        print(f"\nwrote {args.json}")
    return EXIT_OK


def cmd_demo(args) -> int:
    from juno_bridge.demo.comparison import run_demo

    if args.events < 1:
        raise UsageError(f"--events must be >= 1, got {args.events}")
    if args.resolution_events < 1:
        raise UsageError(f"--resolution-events must be >= 1, got {args.resolution_events}")
    run_demo(args.events, args.out, seed=args.seed, progress=not args.quiet, resolution_events=args.resolution_events)
    return EXIT_OK


def cmd_run(args) -> int:
    import os

    import juno_bridge as jb
    from juno_bridge.run import run_file, run_files

    many = len(args.input) > 1 or os.path.isdir(args.output) or args.workers or args.scheduler
    if not many:
        session = jb.Session(args.model, backend=args.backend, intra_op_threads=args.threads)
        n = run_file(session, args.input[0], args.output, batch_size=args.batch_size, progress=not args.quiet,
                     tree=args.tree, allow_symlinked_output=args.allow_symlinked_output, root_format=args.root_format)
        print(f"{n} events -> {args.output}")
        return EXIT_OK
    report = run_files(args.model, args.input, args.output, workers=args.workers or 2, scheduler=args.scheduler,
                       batch_size=args.batch_size, backend=args.backend, threads=args.threads,
                       retries=args.retries, progress=not args.quiet, tree=args.tree,
                       allow_symlinked_output=args.allow_symlinked_output, root_format=args.root_format)
    print(report.summary())
    return EXIT_OK if not report.failed else EXIT_ERROR


def cmd_toymc(args) -> int:
    from pathlib import Path

    from juno_bridge import root_file
    from juno_bridge.demo.toymc import generate, generate_chunks

    if args.events < 1:
        raise UsageError(f"--events must be >= 1, got {args.events}")
    suffix = Path(args.out).suffix
    if suffix not in (".h5", ".hdf5", root_file.SUFFIX):  # `run` tells files by their suffix
        raise UsageError(f"--out must end in .h5 or .hdf5 (HDF5 sparse hits) or .root (a ROOT TTree or RNTuple), "
                         f"got '{args.out}'")
    if args.root_format is not None and suffix != root_file.SUFFIX:
        raise UsageError(f"--root-format {args.root_format} is for a .root --out, got '{args.out}'")
    if suffix == root_file.SUFFIX:  # streamed: one chunk of events in memory at a time
        root_file.write_hits(args.out, generate_chunks(args.events, seed=args.seed),
                             root_format=args.root_format or root_file.TTREE)
    else:
        generate(args.events, seed=args.seed).save(args.out)
    print(f"{args.events} toy events -> {args.out}")
    return EXIT_OK


def cmd_train(args) -> int:
    from juno_bridge.demo.train import CHUNK, train

    if args.events < CHUNK or args.epochs < 1:
        raise UsageError(f"--events must be >= {CHUNK} and --epochs >= 1, got {args.events} and {args.epochs}")
    train(args.events, args.epochs, args.seed, args.out, progress=not args.quiet)
    return EXIT_OK


def cmd_serve(args) -> int:
    from juno_bridge.serve import TritonServer, serve_forever

    server = TritonServer(args.model, host=args.host, port=args.port, max_batch=args.max_batch,
                          queue_delay_us=args.queue_delay_us, instances=args.instances, names=args.name,
                          log=args.log, shared_memory=args.shared_memory)
    serve_forever(server)
    return EXIT_OK


class UsageError(Exception):
    pass


def model_forms() -> str:
    """What a model argument may be, from the backend registry: "a .onnx, ... file, python:..., triton://..."."""
    import juno_bridge as jb

    suffixes = dict.fromkeys(s.rstrip("/") for b in jb.backends() for s in b.suffixes)
    markers = [f"a directory holding {b.directory_marker}" for b in jb.backends() if b.directory_marker]
    prefixes = [f"{p}..." for b in jb.backends() for p in b.prefixes]
    return ", ".join([f"a {', '.join(suffixes)} file", *markers, *prefixes])


def backend_names() -> str:
    import juno_bridge as jb

    return ", ".join(b.name for b in jb.backends())


def build_parser() -> argparse.ArgumentParser:
    from juno_bridge import __version__

    parser = argparse.ArgumentParser(
        prog="juno-bridge",
        description="Run ML models inside JUNO's offline software: one zero-copy interface from C++ and "
                    "Python to ONNX Runtime, libtorch and Python algorithms.",
        epilog="Exit codes: 0 ok, 1 error, 2 bad usage, 3 backend unavailable. Use --debug for tracebacks.")
    parser.add_argument("--version", action="version", version=f"juno-bridge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("--verbose", action="store_true",
                        help="keep the native libraries' start-up lines on stderr (TensorFlow's absl and oneDNN)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="every method (ONNX Runtime, libtorch, TensorFlow, Python) compared on toy JUNO "
                                    "events, from Python and C++")
    p.add_argument("--events", "-n", type=int, default=2000, metavar="N", help="events to generate (2000)")
    p.add_argument("--out", "-o", default="juno-bridge-demo", metavar="DIR",
                   help="where the plot and the summary go (./juno-bridge-demo)")
    p.add_argument("--seed", type=int, default=1, help="toy generator seed (1)")
    p.add_argument("--resolution-events", type=int, default=2000, metavar="N",
                   help="test events per energy (0.5, 1, 2, 5, 8 MeV) for the resolution table and plot (2000)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("info", help="versions of the bridge, ONNX Runtime, plugins; where headers and libs are")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--onnxruntime", metavar="LIBRARY", help="describe this ONNX Runtime library instead")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("config", help="compiler and linker flags for a C++ build against juno-bridge")
    p.add_argument("--cflags", action="store_true", help="include flags and language standard")
    p.add_argument("--libs", action="store_true", help="linker flags, with an rpath")
    p.add_argument("--cmake-dir", action="store_true",
                   help="directory for find_package(juno_bridge CONFIG [COMPONENTS sniper]): juno_bridge_DIR")
    p.add_argument("--include-dir", action="store_true", help="the headers' directory")
    p.add_argument("--lib-dir", action="store_true", help="the libraries' directory")
    p.add_argument("--examples-dir", action="store_true",
                   help="the installed examples (sniper/: an algorithm on jb::sniper::ModelAlg with its jobs)")
    p.add_argument("--components", action="store_true",
                   help="the CMake components built here (sniper: by `make sniper SNIPER_PREFIX=DIR`)")
    p.set_defaults(run=cmd_config)

    p = sub.add_parser("bench", help="measure every method side by side and print ratios")
    p.add_argument("--quick", action="store_true", help="fewer iterations (a quick look, noisier)")
    p.add_argument("--iterations", type=int, metavar="N", help="timed calls per row")
    p.add_argument("--batch", type=int, nargs="+", metavar="B", help="batch sizes (default 1 64)")
    p.add_argument("--model", nargs="+", choices=["tiny", "juno"],
                   help="built-in models (default both; the model group runs the trained default model)")
    from juno_bridge import bench

    p.add_argument("--only", nargs="+", choices=list(bench.GROUPS), metavar="GROUP",
                   help="groups to run: " + "; ".join(f"{g}: {bench.describe(g)}" for g in bench.GROUPS) +
                        "; default all")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser("serve", help="serve models with a Triton Inference Server (for triton://host:port/model)")
    p.add_argument("model", nargs="+", help=f"models: {model_forms()}")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8001, help="gRPC port (8001)")
    p.add_argument("--max-batch", type=int, default=64, metavar="N", help="dynamic batching limit (64)")
    p.add_argument("--queue-delay-us", type=int, default=100, metavar="N",
                   help="how long the batcher waits to fill a batch (100 us)")
    p.add_argument("--instances", type=int, default=1, metavar="N", help="instances (Sessions) per model (1)")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="served name, once per model in order (default: the file's stem)")
    p.add_argument("--log", metavar="FILE", help="the server's log file (default: a temporary one)")
    p.add_argument("--shared-memory", choices=("auto", "on", "off"), default="auto",
                   help="let clients register system shared memory (auto: only when listening on loopback; "
                        "a registered region is read and written by the server, README 'Security of serve')")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("toymc", help="write toy events as sparse PMT hits (HDF5 or ROOT) for `run` and SNiPER's "
                                     "HitsReaderAlg (HDF5)")
    p.add_argument("--events", "-n", type=int, default=1000, metavar="N", help="events to generate (1000)")
    p.add_argument("--out", "-o", required=True, metavar="FILE",
                   help="the HDF5 file (layout: offsets, pmt_id, npe, time, vertex, energy; see juno_bridge.hits_file) "
                        "or .root file (TTree 'events': event_id, pmt_id[], npe[], time[], vertex, energy; see "
                        "juno_bridge.root_file)")
    p.add_argument("--root-format", choices=("ttree", "rntuple"),
                   help="what a .root --out holds: a TTree (the default) or an RNTuple")
    p.add_argument("--seed", type=int, default=1, help="generator seed (1)")
    p.set_defaults(run=cmd_toymc)

    from juno_bridge.demo.train import TRAINING

    p = sub.add_parser("train", help="train the default model on toy events (what ships in the package)")
    p.add_argument("--events", "-n", type=int, default=TRAINING["events"], metavar="N",
                   help=f"training events ({TRAINING['events']})")
    p.add_argument("--epochs", "-e", type=int, default=TRAINING["epochs"], metavar="E",
                   help=f"epochs of each stage ({TRAINING['epochs']})")
    p.add_argument("--seed", type=int, default=TRAINING["seed"], help=f"training seed ({TRAINING['seed']})")
    p.add_argument("--out", "-o", default="juno-bridge-train", metavar="DIR",
                   help="where the weights, the report, the loss plot and the ONNX file go (./juno-bridge-train)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("run", help="run a model over event files (.npz, HDF5 or ROOT), in batches; many files on Dask")
    p.add_argument("model", help=f"the model: {model_forms()}")
    p.add_argument("--input", "-i", nargs="+", required=True, metavar="FILE",
                   help="event file with one array per model input, events along the first axis, or sparse hits "
                        "(.npz, .h5, .root)")
    p.add_argument("--output", "-o", required=True, metavar="FILE|DIR",
                   help="one input: the output file (.npz, .h5, .root); several: a directory (same file names)")
    p.add_argument("--tree", metavar="NAME",
                   help="the TTree or RNTuple of ROOT inputs (default: 'events', else the file's only one)")
    p.add_argument("--root-format", choices=("ttree", "rntuple"),
                   help="what .root outputs hold: a TTree 'outputs' (the default) or an RNTuple")
    p.add_argument("--workers", type=int, metavar="N", help="Dask worker processes of the local cluster (2)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, instead of a local cluster")
    p.add_argument("--retries", type=int, default=2, metavar="N", help="retries of a failing file (2)")
    p.add_argument("--batch-size", "-b", type=int, default=256, metavar="N", help="events per call (256)")
    p.add_argument("--backend", help=f"override the backend chosen from the model's name ({backend_names()})")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="intra-op threads (1)")
    p.add_argument("--allow-symlinked-output", action="store_true",
                   help="write into an output folder that is a symbolic link (refused by default)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_run)
    for command in sub.choices.values():  # a usage error after the command is the command's
        command.set_defaults(command_parser=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    from juno_bridge import native_stderr

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # exits 2 with the usage of the command they follow
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with native_stderr.filtered(not args.verbose):
            return args.run(args)
    except Exception as err:  # one clear line, unless asked for more
        if args.debug:
            raise
        from juno_bridge.errors import BackendUnavailableError

        print(f"juno-bridge: error: {err}", file=sys.stderr)
        if isinstance(err, UsageError):
            return EXIT_USAGE
        return EXIT_UNAVAILABLE if isinstance(err, BackendUnavailableError) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
