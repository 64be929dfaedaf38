"""Checks an edge bundle on the real TFLite Micro C++ library, and measures what a device needs.

`imagepipe edge device-check <bundle> --tflm-source DIR [--target host|cortex-m4f]` runs this.
The manifest's arena is the tflite-micro Python wrapper's figure (its recording allocator keeps
bookkeeping in the arena, with 64-bit pointers): an upper bound. Here the bundle's own sources
(model_data.cc, op_resolver.h) are compiled with the TFLM library, as firmware would be:

  library   TFLM's sources (the list its Makefile prints; reference kernels) compiled for the
            target; objects are cached per source tree, target and compiler, and only the kernels
            the bundle's ops need are compiled (all of them if the link still misses a symbol)
  check     device/device_check.cc with the bundle's golden vectors: finds the smallest arena a
            plain MicroInterpreter runs the model in (bisection to the byte), runs every golden
            input in exactly that arena; outputs must equal golden.json bit for bit
  firmware  the same source without the check: load, allocate, invoke. Its flash (text + data,
            the model and the runtime apart) and static RAM (the arena and the rest) are measured

Targets: `host` (g++, run directly) and `cortex-m4f` (arm-none-eabi-g++, -mcpu=cortex-m4
-mfpu=fpv4-sp-d16 -mfloat-abi=hard, newlib; run under qemu-system-arm -M mps2-an386 with
semihosting). No TensorFlow here: only the compilers, the bundle's files and the TFLM tree.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable, Dict, List, Optional

from components.edge_pusher import bundle

DEVICE_DIR = Path(__file__).parent / "device"
MAKEFILE = "tensorflow/lite/micro/tools/make/Makefile"
DOWNLOADS = "tensorflow/lite/micro/tools/make/downloads"
KERNELS = "tensorflow/lite/micro/kernels"
RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
# The emulated board's SRAM is 4 MiB; the arena must leave room for the rest.
MAX_ARENA_BYTES = 3 << 20
RUN_TIMEOUT_SECONDS = 600


class DeviceCheckError(RuntimeError):
    """A tool is missing, the TFLM tree is not usable, or the build failed: the message says which and the fix."""


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    compiler: str
    flags: List[str]
    size_tool: str
    # Sources replaced for this target (TFLM's own ports), by the Makefile's generic ones.
    replacements: Dict[str, str]
    link_check: List[str]
    link_firmware: List[str]
    runner: Optional[List[str]]  # None: run the program directly
    install_hint: str


COMMON_FLAGS = ["-Os", "-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics",
                "-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-ffunction-sections",
                "-fdata-sections", "-DTF_LITE_STATIC_MEMORY", "-DNDEBUG"]
CORTEX_M4F = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
TARGETS: Dict[str, Target] = {
    "host": Target(
        name="host", compiler="g++", flags=COMMON_FLAGS + ["-DTF_LITE_DISABLE_X86_NEON"], size_tool="size",
        replacements={}, link_check=["-Wl,--gc-sections"], link_firmware=["-Wl,--gc-sections"], runner=None,
        install_hint="apt-get install g++"),
    "cortex-m4f": Target(
        name="cortex-m4f", compiler="arm-none-eabi-g++", flags=COMMON_FLAGS + CORTEX_M4F,
        size_tool="arm-none-eabi-size",
        replacements={"tensorflow/lite/micro/debug_log.cc": "tensorflow/lite/micro/cortex_m_generic/debug_log.cc"},
        link_check=CORTEX_M4F + ["-Wl,--gc-sections", "--specs=rdimon.specs", f"-T{DEVICE_DIR / 'mps2_an386.ld'}"],
        link_firmware=CORTEX_M4F + ["-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs",
                                    f"-T{DEVICE_DIR / 'mps2_an386.ld'}"],
        runner=["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
                "-semihosting-config", "enable=on,target=native", "-kernel"],
        install_hint="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"),
}


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imagepipe" / "tflm"


def tflm_tree(source: Path, progress: Callable[[str], None] = print) -> Path:
    """The TFLM source tree: `source` itself, or a .tar.gz of it unpacked once into the cache."""
    source = Path(source)
    if source.is_file() and source.name.endswith((".tar.gz", ".tgz")):
        digest = hashlib.sha256(f"{source.resolve()}:{source.stat().st_size}:{source.stat().st_mtime_ns}".encode()).hexdigest()[:16]
        tree = cache_root() / f"source-{digest}"
        if not (tree / MAKEFILE).is_file():
            progress(f"unpacking {source} into {tree}")
            partial = tree.with_name(tree.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            with tarfile.open(source) as archive:
                archive.extractall(partial, filter="data")
            shutil.rmtree(tree, ignore_errors=True)
            partial.rename(tree)
        source = tree
    if not (source / MAKEFILE).is_file():
        raise DeviceCheckError(f"--tflm-source {source}: not a TensorFlow Lite Micro source tree (no {MAKEFILE}); "
                               "fix: pass the unpacked tflite-micro repository (or its .tar.gz) with its "
                               f"third-party code under {DOWNLOADS}")
    # An empty pigweed folder stops the Makefile from trying to git-clone it (offline machines).
    (source / DOWNLOADS / "pigweed").mkdir(parents=True, exist_ok=True)
    return source


def makefile_sources(tree: Path) -> List[str]:
    """The library's sources as TFLM's Makefile lists them (reference kernels), signal ops left out."""
    printed = subprocess.run(
        ["make", "-s", "-f", MAKEFILE, "TARGET=linux", "OPTIMIZED_KERNEL_DIR=", "print-MICROLITE_CC_SRCS",
         "print-MICROLITE_CC_KERNEL_SRCS"],
        cwd=tree, capture_output=True, text=True, timeout=300,
        # Its generators import numpy and Pillow: this Python (the project's environment) has both.
        env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"))
    words = [word.split("=")[-1] for word in printed.stdout.split()]
    sources = [word for word in words if word.endswith(".cc") and not word.startswith("signal/") and (tree / word).is_file()]
    sources = list(dict.fromkeys(sources))
    if not any(s.startswith(KERNELS + "/") for s in sources):
        raise DeviceCheckError(f"{tree}: `make print-MICROLITE_CC_SRCS` listed no sources "
                               f"(exit {printed.returncode}: {printed.stderr.strip()[-500:]}); fix: a complete "
                               "TFLM tree, and python3 with numpy and Pillow first on PATH (its generators import them)")
    return sources


def kernel_sources_for(tree: Path, op_names: List[str], sources: List[str]) -> List[str]:
    """The kernel files that define the bundle's ops (Register_<OP> from the resolver header), each
    with its `_common` sibling; the link tells if anything else is missing."""
    header = (tree / RESOLVER_HEADER).read_text()
    kernel_files = [s for s in sources if s.startswith(KERNELS + "/")]
    defined_in = {}  # Register_X -> the kernel file that defines it, each file read once
    for source in kernel_files:
        for symbol in re.findall(r"TFLMRegistration\s+(Register_\w+)\(\)\s*\{", (tree / source).read_text(errors="replace")):
            defined_in.setdefault(symbol, source)
    wanted = [KERNELS + "/kernel_util.cc"]  # every kernel uses it
    for op in op_names:
        method = bundle.resolver_method(op)
        found = re.search(rf"TfLiteStatus {method}\(\s*(?:const )?TFLMRegistration& registration\s*=\s*(?:tflite::)?(Register_\w+)\(\)", header)
        source = defined_in.get(found.group(1) if found else f"Register_{op}")
        if source:
            wanted += [source] + [s for s in kernel_files if s.startswith(source[:-3] + "_common")]
    return sorted(set(wanted))


def _check_tools(target: Target) -> None:
    for tool in [target.compiler, target.size_tool] + ([target.runner[0]] if target.runner else []):
        if shutil.which(tool) is None:
            raise DeviceCheckError(f"{tool} is not on PATH: the {target.name} device check needs it; fix: {target.install_hint}")


@functools.lru_cache(maxsize=None)
def _compiler_version(compiler: str) -> str:
    return subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


class Build:
    """Compiles TFLM sources for one target into cached objects."""

    def __init__(self, tree: Path, target: Target, progress: Callable[[str], None]):
        self.tree, self.target, self.progress = tree, target, progress
        key = json.dumps([str(tree.resolve()), target.name, target.flags, _compiler_version(target.compiler)])
        self.objects_dir = cache_root() / f"objects-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        downloads = tree / DOWNLOADS
        self.includes = [f"-I{tree}", f"-I{downloads / 'flatbuffers' / 'include'}", f"-I{downloads / 'gemmlowp'}",
                         f"-I{downloads / 'ruy'}", f"-I{downloads / 'kissfft'}"]

    def object_of(self, source: str) -> Path:
        return self.objects_dir / (source[:-3] + ".o")

    def compile(self, sources: List[str]) -> List[Path]:
        sources = [self.target.replacements.get(s, s) for s in sources]
        missing = [s for s in sources if not self.object_of(s).is_file()]
        if missing:
            self.progress(f"compiling {len(missing)} TFLM source(s) for {self.target.name} "
                          f"(cached in {self.objects_dir}; {len(sources) - len(missing)} already there)")
            with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                for problem in pool.map(self._compile_one, missing):
                    if problem:
                        raise DeviceCheckError(problem)
        return [self.object_of(s) for s in sources]

    def _compile_one(self, source: str) -> Optional[str]:
        out = self.object_of(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + f".{os.getpid()}.partial")
        result = subprocess.run([self.target.compiler, *self.target.flags, *self.includes, "-c", str(self.tree / source),
                                 "-o", str(partial)], capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
        if result.returncode:
            return f"{self.target.compiler} failed on {source}:\n{result.stderr.strip()[-2000:]}"
        partial.replace(out)
        return None

    def compile_program(self, source: Path, work: Path, defines: List[str]) -> Path:
        out = work / (source.stem + ("-check" if "-DIMAGEPIPE_CHECK" in defines else "") + ".o")
        result = subprocess.run([self.target.compiler, *self.target.flags, *defines, f"-I{work}", *self.includes,
                                 "-Wall", "-Werror", "-c", str(source), "-o", str(out)],
                                capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
        if result.returncode:
            raise DeviceCheckError(f"{self.target.compiler} failed on {source.name}:\n{result.stderr.strip()[-3000:]}")
        return out


def flat(vector) -> List[int]:
    """A golden vector (nested as the tensor's shape) as its int8 values in memory order."""
    return [int(v) for item in vector for v in (flat(item) if isinstance(item, list) else [item])]


def _config_header(names: Dict[str, str], golden: dict, input_bytes: int, output_bytes: int, ceiling: int) -> str:
    rows = lambda vectors: ",\n".join("  {" + ", ".join(map(str, flat(vector))) + "}" for vector in vectors)
    return f"""// Generated by imagepipe edge device-check; do not edit.
#include <cstdint>
#include "model_data.h"
#include "op_resolver.h"
#define IMAGEPIPE_MODEL_DATA {names['model']}_model_data
#define IMAGEPIPE_OP_RESOLVER {names['resolver']}
#define IMAGEPIPE_REGISTER_OPS Register{names['resolver']}
#define IMAGEPIPE_ARENA_CEILING {ceiling}
#define IMAGEPIPE_INPUT_BYTES {input_bytes}
#define IMAGEPIPE_OUTPUT_BYTES {output_bytes}
#define IMAGEPIPE_GOLDEN_COUNT {len(golden['inputs'])}
#ifdef IMAGEPIPE_CHECK
alignas(16) static const int8_t kGoldenInputs[IMAGEPIPE_GOLDEN_COUNT][IMAGEPIPE_INPUT_BYTES] = {{
{rows(golden['inputs'])}
}};
#endif
"""


def bundle_names(bundle_dir: Path) -> Dict[str, str]:
    """The model array's and the op resolver's names, as the bundle's headers declare them."""
    model = re.search(r"extern const unsigned char (\w+)_model_data\[\];", (bundle_dir / "model_data.h").read_text())
    resolver = re.search(r"using (\w+) = tflite::MicroMutableOpResolver", (bundle_dir / "op_resolver.h").read_text())
    if not (model and resolver):
        raise DeviceCheckError(f"{bundle_dir}: model_data.h or op_resolver.h is not as imagepipe writes them; "
                               "fix: check the bundle with `imagepipe edge verify` first")
    return {"model": model.group(1), "resolver": resolver.group(1)}


def _sizes(target: Target, elf: Path) -> Dict[str, int]:
    """Section sizes (System V format) summed as flash (code, read-only data, initialised data) and RAM."""
    listing = subprocess.run([target.size_tool, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sections = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", listing, re.M)}
    flash_sections = [".text", ".rodata", ".ARM.exidx", ".init", ".fini", ".init_array", ".fini_array",
                      ".preinit_array", ".data", ".data.rel.ro", ".eh_frame", ".gcc_except_table", ".plt", ".got"]
    return {"flash": sum(sections.get(name, 0) for name in flash_sections),
            "data": sections.get(".data", 0), "bss": sections.get(".bss", 0)}


def _link(target: Target, objects: List[Path], options: List[str], out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([target.compiler, *map(str, objects), *options, "-o", str(out)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)


def device_check(bundle_dir: Path, tflm_source: Path, target_name: str = "host",
                 work_dir: Optional[Path] = None, progress: Callable[[str], None] = print) -> dict:
    """Builds and runs the bundle on the TFLM C++ library for one target; returns the figures.
    Raises DeviceCheckError (missing tool, unusable tree, failed build, golden outputs that differ)."""
    bundle_dir = Path(bundle_dir)
    target = TARGETS[target_name]
    _check_tools(target)
    manifest = json.loads((bundle_dir / bundle.MANIFEST).read_text())
    golden = json.loads((bundle_dir / "golden.json").read_text())
    tree = tflm_tree(tflm_source, progress)
    build = Build(tree, target, progress)
    work = Path(work_dir or build.objects_dir.parent / f"check-{target.name}-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        return _check(bundle_dir, manifest, golden, tree, target, build, work, progress)
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _check(bundle_dir, manifest, golden, tree, target, build, work, progress) -> dict:
    for name in ("model_data.cc", "model_data.h", "op_resolver.h"):
        shutil.copy(bundle_dir / name, work / name)
    input_bytes = len(flat(golden["inputs"][0]))
    output_bytes = len(flat(golden["outputs"][0]))
    ceiling = min(MAX_ARENA_BYTES, max(4096, int(manifest["arena_bytes"] * 1.5)))
    (work / "device_check_config.h").write_text(
        _config_header(bundle_names(bundle_dir), golden, input_bytes, output_bytes, ceiling))

    sources = makefile_sources(tree)
    core = [s for s in sources if not s.startswith(KERNELS + "/")]
    library = build.compile(core + kernel_sources_for(tree, manifest["ops"], sources))
    program = [build.compile_program(work / "model_data.cc", work, [])]
    if target.name == "cortex-m4f":
        program.append(build.compile_program(DEVICE_DIR / "cortex_m4f_startup.cc", work, []))
    check_o = build.compile_program(DEVICE_DIR / "device_check.cc", work, ["-DIMAGEPIPE_CHECK"])

    check_elf, firmware_elf = work / "device_check.elf", work / "firmware.elf"
    linked = _link(target, [check_o, *program, *library], target.link_check, check_elf)
    if linked.returncode and "undefined reference" in linked.stderr:
        progress("the link misses kernel code: compiling every TFLM kernel")
        library = build.compile(sources)
        linked = _link(target, [check_o, *program, *library], target.link_check, check_elf)
    if linked.returncode:
        raise DeviceCheckError(f"linking the device check for {target.name} failed:\n{linked.stderr.strip()[-3000:]}")

    progress(f"running the check program ({'under ' + target.runner[0] if target.runner else 'on this machine'})")
    command = (target.runner + [str(check_elf)]) if target.runner else [str(check_elf)]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    found = re.search(r"^arena_bytes (\d+)$", ran.stdout, re.M)
    if ran.returncode or not found:
        raise DeviceCheckError(f"the device check program failed on {target.name} (exit {ran.returncode}):\n"
                               f"{(ran.stdout + ran.stderr).strip()[-2000:]}")
    arena = int(found.group(1))
    outputs = {int(m.group(1)): [int(v) for v in m.group(2).split()]
               for m in re.finditer(r"^golden (\d+):((?: -?\d+)*)$", ran.stdout, re.M)}
    mismatched = [i for i, expected in enumerate(golden["outputs"]) if outputs.get(i) != flat(expected)]

    # The firmware's arena is exactly the minimum just found, so its RAM is what a device needs.
    (work / "device_check_config.h").write_text(
        _config_header(bundle_names(bundle_dir), golden, input_bytes, output_bytes, arena))
    firmware_o = build.compile_program(DEVICE_DIR / "device_check.cc", work, [])
    linked = _link(target, [firmware_o, *program, *library], target.link_firmware, firmware_elf)
    if linked.returncode:
        raise DeviceCheckError(f"linking the minimal firmware for {target.name} failed:\n{linked.stderr.strip()[-3000:]}")
    sizes = _sizes(target, firmware_elf)
    model_bytes = (bundle_dir / "model_int8.tflite").stat().st_size
    result = {
        "target": target.name,
        "tflm_source": str(tree),
        "compiler": _compiler_version(target.compiler),
        "golden_vectors": len(golden["outputs"]),
        "golden_bit_exact": not mismatched,
        "golden_mismatches": mismatched,
        "arena_bytes": arena,
        "manifest_arena_bytes": manifest["arena_bytes"],
        "flash_bytes": sizes["flash"],
        "flash_model_bytes": model_bytes,
        "flash_runtime_bytes": sizes["flash"] - model_bytes,
        "ram_bytes": sizes["data"] + sizes["bss"],
        "ram_other_static_bytes": sizes["data"] + sizes["bss"] - arena,
    }
    return result


def describe(result: dict) -> str:
    golden = (f"{result['golden_vectors']} golden vectors bit-exact" if result["golden_bit_exact"] else
              f"golden vectors {result['golden_mismatches']} of {result['golden_vectors']} DIFFER")
    return (f"{result['target']}: {golden}; smallest arena {result['arena_bytes']:,} B "
            f"(manifest, the Python wrapper's host figure: {result['manifest_arena_bytes']:,} B); "
            f"flash {result['flash_bytes']:,} B (model {result['flash_model_bytes']:,} + runtime "
            f"{result['flash_runtime_bytes']:,}); RAM {result['ram_bytes']:,} B (arena {result['arena_bytes']:,} "
            f"+ other static {result['ram_other_static_bytes']:,})")
