#!/usr/bin/env python3
"""bench_peers.py: the project's fused attention kernel against the usual CPU peers, in one run.

For each shape (B = 1, H = 8, fp32; lengths x head dims x causal x threads) it runs, in rounds,
the project's own benchmark (`build/attn_bench ... --format json`: the fused kernel, and the
unfused path for reference) and then each peer, so that both sides see the same machine state:

  torch-sdpa  torch.nn.functional.scaled_dot_product_attention, (B, H, L, D)
  torch-mha   torch.nn.MultiheadAttention (E = H*D, batch_first, eval, need_weights=False):
              includes the Q/K/V/output projections, so it does more work than the others
  ort-mha     ONNX Runtime's com.microsoft MultiHeadAttention contrib op in a one-node graph,
              (B, L, H*D) inputs, `unidirectional` for causal
  jax         jax.nn.dot_product_attention under jax.jit, (B, L, H, D)
  numpy       unfused softmax(Q K^T) V with numpy's BLAS (OpenBLAS), in place where possible

Each peer runs in its own long-lived subprocess whose thread settings are fixed before the
library is imported: OMP/OPENBLAS/MKL_NUM_THREADS for all; torch.set_num_threads; ORT
intra_op_num_threads; for jax the CPU affinity (as taskset does) plus XLA_FLAGS for one thread;
for numpy OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from that subprocess only.
Every measurement is a median of several runs after a warm-up; the reported value is the median
over the rounds.

Output: a Markdown table (project fused speed-up over each peer, and GFLOP/s) and a CSV, both
stamped with the date and the machine, written to --out-dir and the Markdown also printed.
GFLOP/s counts 4*B*H*L*L*D for attention (half when causal, whatever a peer actually computes);
torch-mha adds its projections, 8*B*L*E*E.

Then bf16 prefill (--bf16-prefill lengths, default 4096; the --dims, --causal and --threads lists):
the fused kernel with q, k, v and out bf16 (`attn_bench --dtype bf16`: VDPBF16PS where the CPU has
AVX512_BF16), the same with fp32, and torch SDPA on the same bf16 tensors, alternating per round.

Then training (--training lengths, default 512,1024,2048,4096; the --dims, --causal and --threads
lists): attn_forward + attn_backward (`attn_bench --no-attention --backward L`) against torch SDPA
forward + backward through autograd (out.backward(dout) on q, k, v leaves), alternating per round.

Then the dense matrix multiply the modules use: attn_matmul (`attn_bench --no-attention --matmul N`)
against numpy's matmul (OpenBLAS sgemm) on square N x N x N problems, alternating in the same way.

Then the module-level comparison: torch.nn.MultiheadAttention self-attention forward
(B = 1, L = 1024, E = 512, 8 heads, 2 threads) against the project's TorchMultiheadAttention,
timed by the Swift benchmark package (see --swift-module-cmd).

  python3 bench_peers.py [--quick] [--lengths 256,1024] [--dims 64,128] [--causal 0,1]
                         [--threads 1,2] [--peers torch-sdpa,jax,...] [--rounds 3] [--reps N]
                         [--attn-bench build/attn_bench] [--out-dir DIR] [--no-module]
                         [--matmul 512,1024,2048,4096] [--bf16-prefill 4096]
                         [--training 512,1024,2048,4096]
"""
from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
HEADS = 8
PEERS = ["torch-sdpa", "torch-mha", "ort-mha", "jax", "numpy"]
PEER_TITLES = {
    "unfused": "ours unfused",
    "torch-sdpa": "torch SDPA",
    "torch-mha": "torch MHA*",
    "ort-mha": "ORT MHA",
    "jax": "JAX",
    "numpy": "numpy",
}
MODULE_SHAPE = {"length": 1024, "embed": 512, "heads": 8, "threads": 2}


# ---------------------------------------------------------------------------------------------
# Worker side: one process per (peer, thread count). Reads JSON requests on stdin, answers on the
# stdout it was started with; everything the libraries print goes to stderr.
# ---------------------------------------------------------------------------------------------

def attention_flops(length: int, dim: int, causal: int, heads: int = HEADS) -> float:
    return 4.0 * heads * length * length * dim * (0.5 if causal else 1.0)


def projection_flops(length: int, embed: int) -> float:
    return 8.0 * length * embed * embed  # Q, K, V and output projections: 4 x (2 L E^2)


def _inputs(shape, seed=0, count=3):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape, dtype=np.float32) for _ in range(count)]


class TorchSDPA:
    def __init__(self, threads):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.info = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    def make(self, length, dim, causal, dtype="f32"):
        torch = self.torch
        q, k, v = (torch.from_numpy(x) for x in _inputs((1, HEADS, length, dim)))
        if dtype == "bf16":
            q, k, v = (x.to(torch.bfloat16) for x in (q, k, v))
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def run():
            with torch.inference_mode():
                sdpa(q, k, v, is_causal=bool(causal))

        return run, attention_flops(length, dim, causal)

    def make_training(self, length, dim, causal):
        """Forward and backward through autograd: q, k, v leaves, out.backward(dout), the gradients
        dropped after each call so the next one writes rather than accumulates."""
        torch = self.torch
        q, k, v, dout = (torch.from_numpy(x) for x in _inputs((1, HEADS, length, dim), count=4))
        for x in (q, k, v):
            x.requires_grad_(True)
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def run():
            sdpa(q, k, v, is_causal=bool(causal)).backward(dout)
            q.grad = k.grad = v.grad = None

        return run, 3.5 * attention_flops(length, dim, causal)


class TorchMHA:
    def __init__(self, threads):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.info = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    def make(self, length, dim, causal, heads=HEADS):
        torch = self.torch
        embed = heads * dim
        torch.manual_seed(0)
        mha = torch.nn.MultiheadAttention(embed, heads, batch_first=True).eval()
        x = torch.from_numpy(_inputs((1, length, embed))[0])
        mask = torch.nn.Transformer.generate_square_subsequent_mask(length) if causal else None

        def run():
            with torch.inference_mode():
                mha(x, x, x, need_weights=False, attn_mask=mask, is_causal=bool(causal))

        return run, attention_flops(length, dim, causal, heads) + projection_flops(length, embed)


class OrtMHA:
    def __init__(self, threads):
        import onnxruntime as ort

        self.ort = ort
        self.threads = threads
        self.info = {"onnxruntime": ort.__version__, "threads": threads}

    def make(self, length, dim, causal):
        from onnx import TensorProto, helper

        ort = self.ort
        embed = HEADS * dim
        attrs = {"num_heads": HEADS}
        if causal:
            attrs["unidirectional"] = 1
        node = helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["o"], domain="com.microsoft", **attrs)

        def value(name):
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, length, embed])

        graph = helper.make_graph([node], "mha", [value("q"), value("k"), value("v")], [value("o")])
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        q, k, v = _inputs((1, length, embed))
        feeds = {"q": q, "k": k, "v": v}

        def run():
            session.run(None, feeds)

        return run, attention_flops(length, dim, causal)


class Jax:
    def __init__(self, threads):
        import jax  # affinity and XLA_FLAGS were set before this import (see worker_main)

        self.jax = jax
        self.info = {"jax": jax.__version__, "cpus": sorted(os.sched_getaffinity(0)),
                     "xla_flags": os.environ.get("XLA_FLAGS", "")}

    def make(self, length, dim, causal):
        jax = self.jax
        q, k, v = (jax.device_put(x) for x in _inputs((1, length, HEADS, dim)))
        fn = jax.jit(lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=bool(causal)))

        def run():
            fn(q, k, v).block_until_ready()

        return run, attention_flops(length, dim, causal)


class Numpy:
    def __init__(self, threads):
        import numpy as np

        self.np = np
        self.info = {"numpy": np.__version__}
        try:
            from threadpoolctl import threadpool_info

            self.info["blas"] = [
                {key: pool.get(key) for key in ("internal_api", "version", "architecture", "num_threads")}
                for pool in threadpool_info() if pool.get("user_api") == "blas"
            ]
        except ImportError:
            self.info["blas"] = "threadpoolctl not installed"

    def make(self, length, dim, causal):
        np = self.np
        q, k, v = _inputs((1, HEADS, length, dim))
        q *= np.float32(1.0 / np.sqrt(dim))
        kt = k.transpose(0, 1, 3, 2)
        scores = np.empty((1, HEADS, length, length), dtype=np.float32)
        row = np.empty((1, HEADS, length, 1), dtype=np.float32)
        out = np.empty((1, HEADS, length, dim), dtype=np.float32)
        upper = np.triu(np.ones((length, length), dtype=bool), 1) if causal else None

        def run():
            np.matmul(q, kt, out=scores)
            if upper is not None:
                scores[..., upper] = -np.inf
            np.max(scores, axis=-1, keepdims=True, out=row)
            np.subtract(scores, row, out=scores)
            np.exp(scores, out=scores)
            np.sum(scores, axis=-1, keepdims=True, out=row)
            np.divide(scores, row, out=scores)
            np.matmul(scores, v, out=out)

        return run, attention_flops(length, dim, causal)

    def make_matmul(self, n):
        np = self.np
        a, b, _ = _inputs((n, n))
        c = np.empty((n, n), dtype=np.float32)

        def run():
            np.matmul(a, b, out=c)

        return run, 2.0 * n * n * n


WORKERS = {"torch-sdpa": TorchSDPA, "torch-mha": TorchMHA, "ort-mha": OrtMHA, "jax": Jax, "numpy": Numpy}


def time_runs(run, reps):
    """Warm-up (two calls: the first may compile), then `reps` timed calls (adaptive when 0:
    about one second, 3 to 9 calls, as attn_bench does). Returns the list of seconds."""
    run()
    t0 = time.perf_counter()
    run()
    warm = time.perf_counter() - t0
    if not reps:
        reps = max(3, min(9, int(1.0 / max(warm, 1e-9))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return times


def worker_main(peer: str, threads: int) -> None:
    answer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library chatter goes to stderr
    if peer == "jax":
        cpus = sorted(os.sched_getaffinity(0))[:threads]
        os.sched_setaffinity(0, cpus)
    impl = WORKERS[peer](threads)
    answer.write(json.dumps({"ready": True, "info": impl.info}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        try:
            if request.get("module"):
                run, flops = impl.make(request["length"], request["embed"] // request["heads"], 0, request["heads"])
            elif request.get("training"):
                run, flops = impl.make_training(request["length"], request["dim"], request["causal"])
            elif request.get("matmul"):
                run, flops = impl.make_matmul(request["matmul"])
            elif request.get("dtype"):
                run, flops = impl.make(request["length"], request["dim"], request["causal"], dtype=request["dtype"])
            else:
                run, flops = impl.make(request["length"], request["dim"], request["causal"])
            times = time_runs(run, request.get("reps", 0))
            del run
            ms = 1e3 * statistics.median(times)
            answer.write(json.dumps({"ms": ms, "runs": len(times), "flops": flops}) + "\n")
        except Exception as error:  # report and carry on with the next shape
            answer.write(json.dumps({"error": f"{type(error).__name__}: {error}"}) + "\n")


# ---------------------------------------------------------------------------------------------
# Driver side.
# ---------------------------------------------------------------------------------------------

def peer_env(peer: str, threads: int) -> dict:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    if peer == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        flags = env.get("XLA_FLAGS", "")
        if threads == 1:
            flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env["XLA_FLAGS"] = flags.strip()
    if peer == "numpy":
        # Set on some machines for old OpenBLAS builds; they slow a current one down.
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    return env


class Worker:
    def __init__(self, python: str, peer: str, threads: int):
        self.peer, self.threads = peer, threads
        self.proc = subprocess.Popen(
            [python, os.path.abspath(__file__), "--worker", peer, "--worker-threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=peer_env(peer, threads), text=True, bufsize=1)
        hello = self._read()
        if not hello or not hello.get("ready"):
            raise RuntimeError(f"{peer} worker did not start (see its error above)")
        self.info = hello["info"]

    def _read(self):
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if reply is None:
            return {"error": f"worker exited with code {self.proc.wait()}"}
        return reply

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()


def run_attn_bench(binary: str, length: int, dim: int, causal: int, threads: int, reps: int,
                   dtype: str = "f32", unfused: bool = True) -> dict:
    """One attn_bench row: the fused kernel, and the unfused path too when `unfused` (the table's
    "ours unfused" column; bf16 prefill leaves it out)."""
    cmd = [binary, "--lengths", str(length), "--dims", str(dim), "--causal", str(causal), "--threads", str(threads),
           "--format", "json", "--no-machine", "--no-decode", "--dtype", dtype]
    if not unfused:
        cmd.append("--no-unfused")
    if reps:
        cmd += ["--reps", str(reps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    row = doc["rows"][0]
    row["isa"] = doc.get("isa")
    row["bf16_dot"] = doc.get("bf16_dot")
    return row


def run_attn_bench_matmul(binary: str, n: int, threads: int, reps: int) -> float:
    cmd = [binary, "--no-attention", "--matmul", str(n), "--threads", str(threads), "--format", "json",
           "--no-machine", "--no-decode"]
    if reps:
        cmd += ["--reps", str(reps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["matmul"][0]["ms"]


def run_attn_bench_training(binary: str, length: int, dim: int, causal: int, threads: int, reps: int) -> dict:
    """attn_bench's backward row (attn_forward then attn_backward, medians): forward_ms, backward_ms."""
    cmd = [binary, "--no-attention", "--backward", str(length), "--dims", str(dim), "--causal", str(causal),
           "--threads", str(threads), "--format", "json", "--no-machine", "--no-decode", "--no-matmul",
           "--unfused-backward-max", "0"]
    if reps:
        cmd += ["--reps", str(reps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["backward"][0]


def markdown_training(rows, meta) -> str:
    out = io.StringIO()
    out.write(f"Attention forward + backward vs PyTorch's SDPA through autograd: {meta['cpu']}, {meta['date']}. "
              "B = 1, H = 8, fp32; medians over the rounds; GFLOP/s counts 14·B·H·L²·D (half causal).\n\n"
              "| L | D | causal | threads | ours fwd ms | ours bwd ms | ours fwd+bwd GFLOP/s | torch fwd+bwd ms "
              "| speed-up |\n|---:|---:|:---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        total = r["forward_ms"] + r["backward_ms"]
        flops = 3.5 * attention_flops(r["length"], r["dim"], r["causal"])
        torch = f"{r['torch_ms']:.1f} | {r['torch_ms'] / total:.2f}×" if r["torch_ms"] else "– | –"
        out.write(f"| {r['length']} | {r['dim']} | {'yes' if r['causal'] else 'no'} | {r['threads']} | "
                  f"{r['forward_ms']:.1f} | {r['backward_ms']:.1f} | {flops / (total * 1e-3) * 1e-9:.1f} | {torch} |\n")
    ratios = [r["torch_ms"] / (r["forward_ms"] + r["backward_ms"]) for r in rows if r["torch_ms"]]
    if ratios:
        out.write(f"\nGeometric mean speed-up over torch: {statistics.geometric_mean(ratios):.2f}× "
                  f"(min {min(ratios):.2f}×, {len(ratios)} shapes).\n")
    return out.getvalue()


def markdown_matmul(rows, meta) -> str:
    out = io.StringIO()
    out.write(f"Dense matrix multiply vs OpenBLAS (numpy): {meta['cpu']}, {meta['date']}. C = A·B, square, fp32; "
              "medians.\n\n| N | threads | attn_matmul ms | GFLOP/s | OpenBLAS ms | GFLOP/s | ours / OpenBLAS speed |\n"
              "|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        flops = 2.0 * r["n"] ** 3
        out.write(f"| {r['n']} | {r['threads']} | {r['ours_ms']:.2f} | {flops / r['ours_ms'] * 1e-6:.1f} | "
                  f"{r['blas_ms']:.2f} | {flops / r['blas_ms'] * 1e-6:.1f} | {100 * r['blas_ms'] / r['ours_ms']:.0f} % |\n")
    return out.getvalue()


def markdown_bf16(rows, meta) -> str:
    out = io.StringIO()
    out.write(f"bf16 prefill: {meta['cpu']} ({meta['simd']}), {meta['date']}. B = 1, H = 8; q, k, v and out bf16 "
              "(ours fp32 for the ratio to fp32); medians.\n\n| L | D | causal | threads | ours bf16 ms | GFLOP/s | "
              "ours fp32 ms | bf16 / fp32 speed | torch SDPA bf16 ms | GFLOP/s | ours / torch speed |\n"
              "|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        flops = attention_flops(r["length"], r["dim"], r["causal"])
        torch_ms = r.get("torch_ms")
        torch_cells = (f"{torch_ms:.2f} | {flops / torch_ms * 1e-6:.1f} | {torch_ms / r['bf16_ms']:.2f}×"
                       if torch_ms else "– | – | –")
        out.write(f"| {r['length']} | {r['dim']} | {'yes' if r['causal'] else 'no'} | {r['threads']} | "
                  f"{r['bf16_ms']:.2f} | {flops / r['bf16_ms'] * 1e-6:.1f} | {r['f32_ms']:.2f} | "
                  f"{r['f32_ms'] / r['bf16_ms']:.2f}× | {torch_cells} |\n")
    if rows:
        out.write(f"\nProject kernels: ISA {rows[0]['isa']}, bf16 dot product {rows[0]['bf16_dot']}.\n")
    return out.getvalue()


def machine() -> dict:
    model, flags = platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == platform.machine():
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line + " "
    except OSError:
        pass
    simd = [name for name in ("avx512f", "avx512_bf16", "avx2", "fma", "asimd") if f" {name} " in flags]
    return {"cpu": model, "cores": os.cpu_count(), "simd": "+".join(simd) or "no SIMD flags read",
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "python": platform.python_version()}


def parse_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def fmt_ratio(fused_ms, peer_ms):
    return f"{peer_ms / fused_ms:.2f}×" if fused_ms and peer_ms else "–"


def markdown(results, peers, meta, infos) -> str:
    out = io.StringIO()
    out.write(f"Fused attention vs peers: {meta['cpu']}, {meta['cores']} cores ({meta['simd']}), "
              f"{meta['date']}. B = 1, H = 8, fp32; medians.\n\n")
    cols = ["unfused"] + peers
    out.write("| L | D | causal | threads | fused ms | fused GFLOP/s | "
              + " | ".join(f"vs {PEER_TITLES[p]}" for p in cols) + " |\n")
    out.write("|---:|---:|:---:|---:|---:|---:|" + "---:|" * len(cols) + "\n")
    for r in results:
        cells = []
        for p in cols:
            ms = r["peers"].get(p, {}).get("ms")
            gf = r["peers"].get(p, {}).get("gflops")
            cells.append(f"{fmt_ratio(r['fused_ms'], ms)} ({gf:.0f})" if ms else
                         ("error" if r["peers"].get(p, {}).get("error") else "–"))
        out.write(f"| {r['length']} | {r['dim']} | {'yes' if r['causal'] else 'no'} | {r['threads']} | "
                  f"{r['fused_ms']:.2f} | {r['fused_gflops']:.1f} | " + " | ".join(cells) + " |\n")
    out.write("\nEach cell: how many times faster the fused kernel is than that peer (>1: ours faster), and "
              "the peer's GFLOP/s in parentheses. GFLOP/s counts 4·H·L²·D, half when causal, whatever the "
              "peer computes.")
    if "torch-mha" in peers:
        out.write(" *torch MHA also runs its Q/K/V/output projections (8·L·E² more FLOPs, counted in its "
                  "GFLOP/s), so its ratio overstates ours.")
    out.write("\n")
    versions = ", ".join(
        f"{k} {v}" for info in infos.values() for k, v in info.items()
        if k in ("torch", "onnxruntime", "jax", "numpy"))
    if versions:
        out.write(f"\nPeers: {', '.join(dict.fromkeys(versions.split(', ')))}.")
    blas = infos.get("numpy", {}).get("blas")
    if isinstance(blas, list) and blas:
        out.write(" numpy BLAS: " + "; ".join(
            f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')})" for b in blas) + ".")
    if results and results[0].get("isa"):
        out.write(f" Project kernels: ISA {results[0]['isa']}.")
    out.write("\n")
    return out.getvalue()


def write_csv(path, results, peers, meta):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "cpu", "cores", "length", "dim", "causal", "threads", "impl", "ms", "gflops",
                    "fused_ms", "fused_speedup", "rounds"])
        for r in results:
            w.writerow([meta["date"], meta["cpu"], meta["cores"], r["length"], r["dim"], r["causal"], r["threads"],
                        "fused", f"{r['fused_ms']:.3f}", f"{r['fused_gflops']:.1f}", f"{r['fused_ms']:.3f}",
                        "1.00", r["rounds"]])
            for p in ["unfused"] + peers:
                d = r["peers"].get(p, {})
                if not d.get("ms"):
                    continue
                w.writerow([meta["date"], meta["cpu"], meta["cores"], r["length"], r["dim"], r["causal"],
                            r["threads"], p, f"{d['ms']:.3f}", f"{d['gflops']:.1f}", f"{r['fused_ms']:.3f}",
                            f"{d['ms'] / r['fused_ms']:.2f}", r["rounds"]])


def module_comparison(args, python) -> str:
    """torch.nn.MultiheadAttention vs the project's TorchMultiheadAttention, self-attention."""
    shape = MODULE_SHAPE
    lines = [f"Module level: self-attention forward, B = 1, L = {shape['length']}, E = {shape['embed']}, "
             f"{shape['heads']} heads, {shape['threads']} threads, no mask"]
    torch_ms = None
    try:
        worker = Worker(python, "torch-mha", shape["threads"])
        times = []
        for _ in range(args.rounds):
            reply = worker.ask({"module": True, "length": shape["length"], "embed": shape["embed"],
                                "heads": shape["heads"], "reps": args.reps})
            if "ms" in reply:
                times.append(reply["ms"])
            else:
                lines.append(f"  torch: {reply.get('error')}")
        worker.close()
        if times:
            torch_ms = statistics.median(times)
            lines.append(f"  torch.nn.MultiheadAttention ({worker.info.get('torch')}): {torch_ms:.2f} ms")
    except Exception as error:
        lines.append(f"  torch: not measured ({error})")
    ours_ms = None
    if args.swift_module_cmd:
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = str(shape["threads"])
        try:
            proc = subprocess.run(args.swift_module_cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)
            for line in proc.stdout.splitlines():
                line = line.strip()
                if line.startswith("{"):
                    doc = json.loads(line)
                    if "ms" in doc:
                        ours_ms = float(doc["ms"])
            if ours_ms is None:
                lines.append(f"  ours: no {{\"ms\": ...}} line from `{args.swift_module_cmd}` (exit {proc.returncode}):"
                             f" {proc.stderr.strip().splitlines()[-1:] or ''}")
        except Exception as error:
            lines.append(f"  ours: not measured ({error})")
    else:
        lines.append("  ours: not measured (no --swift-module-cmd)")
    if ours_ms is not None:
        lines.append(f"  swift-attention TorchMultiheadAttention: {ours_ms:.2f} ms")
    if ours_ms and torch_ms:
        lines.append(f"  speed-up of ours over torch: {torch_ms / ours_ms:.2f}×")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", default="256,1024,4096,8192")
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--causal", default="0,1")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of " + ",".join(PEERS))
    ap.add_argument("--rounds", type=int, default=3, help="alternations of attn_bench and the peers per shape")
    ap.add_argument("--reps", type=int, default=0, help="timed runs per measurement (0: adaptive, 3 to 9)")
    ap.add_argument("--pause", type=float, default=0.3,
                    help="seconds of idle before each measurement, so that the threads of the process "
                         "measured before (OpenMP, OpenBLAS, ONNX Runtime spin after a call) are asleep")
    ap.add_argument("--quick", action="store_true", help="lengths 256,1024,4096, D 64, 2 threads, 2 rounds")
    ap.add_argument("--attn-bench", default=os.path.join(ROOT, "build", "attn_bench"))
    ap.add_argument("--python", default=sys.executable, help="interpreter for the peer subprocesses")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-module", action="store_true", help="skip the module-level comparison")
    ap.add_argument("--matmul", default="512,1024,2048,4096",
                    help="square sizes for attn_matmul against numpy's OpenBLAS matmul; empty to skip")
    ap.add_argument("--bf16-prefill", default="4096",
                    help="lengths for bf16 prefill (ours bf16, ours fp32, torch SDPA bf16); empty to skip")
    ap.add_argument("--training", default="512,1024,2048,4096",
                    help="lengths for forward + backward (attn_forward + attn_backward against torch SDPA "
                         "through autograd); empty to skip")
    ap.add_argument("--swift-module-cmd",
                    default="swift run -c release --package-path Benchmarks ModuleTiming --json",
                    help="command (run from the repository root) printing a JSON line {\"ms\": ...} for our "
                         "TorchMultiheadAttention forward; empty to skip")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        worker_main(args.worker, args.worker_threads)
        return 0

    if args.quick:
        args.lengths, args.dims, args.threads, args.rounds = "256,1024,4096", "64", "2", 2
        args.bf16_prefill = "1024"
        args.training = "1024"
    lengths, dims = parse_list(args.lengths), parse_list(args.dims)
    causals, thread_counts = parse_list(args.causal), parse_list(args.threads)
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in WORKERS]
    if unknown:
        ap.error(f"unknown peer(s) {unknown}; choose from {PEERS}")
    if not os.access(args.attn_bench, os.X_OK):
        ap.error(f"{args.attn_bench} not found: run `make build/attn_bench` first")

    meta = machine()
    print(f"# {meta['date']}: {meta['cpu']}, {meta['cores']} cores; peers {', '.join(peers)}; "
          f"{args.rounds} round(s) per shape", flush=True)
    results, infos, matmul_rows, bf16_rows, training_rows = [], {}, [], [], []
    matmul_sizes = parse_list(args.matmul)
    for threads in thread_counts:
        workers = {}
        for peer in peers:
            try:
                workers[peer] = Worker(args.python, peer, threads)
                infos.setdefault(peer, workers[peer].info)
                print(f"#   {peer} ({threads} thread(s)): {json.dumps(workers[peer].info)}", flush=True)
            except Exception as error:
                print(f"#   {peer}: skipped: {error}", flush=True)
        for length in lengths:
            for dim in dims:
                for causal in causals:
                    fused, unfused, gflops, per_peer = [], [], [], {p: [] for p in workers}
                    errors, isa, flops_of = {}, None, {}
                    order = list(workers)
                    for rnd in range(args.rounds):
                        time.sleep(args.pause)
                        row = run_attn_bench(args.attn_bench, length, dim, causal, threads, args.reps)
                        fused.append(row["fused_ms"])
                        if row.get("unfused_ms", -1) > 0:
                            unfused.append(row["unfused_ms"])
                        isa = row.get("isa")
                        # Rotate the peers' order each round so none always runs right after attn_bench.
                        for peer in order[rnd % max(1, len(order)):] + order[:rnd % max(1, len(order))]:
                            time.sleep(args.pause)
                            reply = workers[peer].ask(
                                {"length": length, "dim": dim, "causal": causal, "reps": args.reps})
                            if "ms" in reply:
                                per_peer[peer].append(reply["ms"])
                                flops_of[peer] = reply["flops"]
                            else:
                                errors[peer] = reply.get("error")
                    fused_ms = statistics.median(fused)
                    flops = attention_flops(length, dim, causal)
                    r = {"length": length, "dim": dim, "causal": causal, "threads": threads, "rounds": args.rounds,
                         "fused_ms": fused_ms, "fused_gflops": flops / (fused_ms * 1e-3) * 1e-9, "isa": isa,
                         "peers": {}}
                    if unfused:
                        ms = statistics.median(unfused)
                        r["peers"]["unfused"] = {"ms": ms, "gflops": flops / (ms * 1e-3) * 1e-9}
                    for peer, times in per_peer.items():
                        if times:
                            ms = statistics.median(times)
                            r["peers"][peer] = {"ms": ms, "gflops": flops_of[peer] / (ms * 1e-3) * 1e-9}
                        elif peer in errors:
                            r["peers"][peer] = {"error": errors[peer]}
                    results.append(r)
                    summary = "  ".join(
                        f"{p} {d['ms']:.2f} ms ({d['ms'] / fused_ms:.2f}×)" if "ms" in d else f"{p} error: {d['error']}"
                        for p, d in r["peers"].items())
                    print(f"L={length} D={dim} causal={causal} threads={threads}: fused {fused_ms:.2f} ms  {summary}",
                          flush=True)
        for length in parse_list(args.bf16_prefill):
            for dim in dims:
                for causal in causals:
                    f32, bf16, torch_bf16, row = [], [], [], None
                    for rnd in range(args.rounds):
                        steps = ["f32", "bf16", "torch"]
                        for step in steps[rnd % 3:] + steps[:rnd % 3]:
                            time.sleep(args.pause)
                            if step == "torch":
                                if "torch-sdpa" in workers:
                                    reply = workers["torch-sdpa"].ask({"length": length, "dim": dim, "causal": causal,
                                                                       "reps": args.reps, "dtype": "bf16"})
                                    if "ms" in reply:
                                        torch_bf16.append(reply["ms"])
                                continue
                            row = run_attn_bench(args.attn_bench, length, dim, causal, threads, args.reps,
                                                 dtype=step, unfused=False)
                            (f32 if step == "f32" else bf16).append(row["fused_ms"])
                    r = {"length": length, "dim": dim, "causal": causal, "threads": threads,
                         "f32_ms": statistics.median(f32), "bf16_ms": statistics.median(bf16),
                         "torch_ms": statistics.median(torch_bf16) if torch_bf16 else None,
                         "isa": row["isa"], "bf16_dot": row["bf16_dot"]}
                    bf16_rows.append(r)
                    print(f"bf16 prefill L={length} D={dim} causal={causal} threads={threads}: ours bf16 "
                          f"{r['bf16_ms']:.2f} ms, fp32 {r['f32_ms']:.2f} ms ({r['f32_ms'] / r['bf16_ms']:.2f}×)"
                          + (f", torch SDPA bf16 {r['torch_ms']:.2f} ms ({r['torch_ms'] / r['bf16_ms']:.2f}×)"
                             if r["torch_ms"] else ""), flush=True)
        for length in parse_list(args.training):
            for dim in dims:
                for causal in causals:
                    fwd, bwd, torch_ms = [], [], []
                    for rnd in range(args.rounds):
                        steps = ["ours", "torch"] if rnd % 2 == 0 else ["torch", "ours"]
                        for step in steps:
                            time.sleep(args.pause)
                            if step == "ours":
                                row = run_attn_bench_training(args.attn_bench, length, dim, causal, threads, args.reps)
                                fwd.append(row["forward_ms"])
                                bwd.append(row["backward_ms"])
                            elif "torch-sdpa" in workers:
                                reply = workers["torch-sdpa"].ask({"training": True, "length": length, "dim": dim,
                                                                   "causal": causal, "reps": args.reps})
                                if "ms" in reply:
                                    torch_ms.append(reply["ms"])
                    r = {"length": length, "dim": dim, "causal": causal, "threads": threads,
                         "forward_ms": statistics.median(fwd), "backward_ms": statistics.median(bwd),
                         "torch_ms": statistics.median(torch_ms) if torch_ms else None}
                    training_rows.append(r)
                    total = r["forward_ms"] + r["backward_ms"]
                    print(f"training L={length} D={dim} causal={causal} threads={threads}: ours fwd+bwd {total:.2f} ms"
                          + (f", torch SDPA autograd {r['torch_ms']:.2f} ms ({r['torch_ms'] / total:.2f}×)"
                             if r["torch_ms"] else ""), flush=True)
        if "numpy" in workers:
            for n in matmul_sizes:
                ours, blas = [], []
                for _ in range(args.rounds):
                    time.sleep(args.pause)
                    ours.append(run_attn_bench_matmul(args.attn_bench, n, threads, args.reps))
                    time.sleep(args.pause)
                    reply = workers["numpy"].ask({"matmul": n, "reps": args.reps})
                    if "ms" in reply:
                        blas.append(reply["ms"])
                if blas:
                    row = {"n": n, "threads": threads, "ours_ms": statistics.median(ours),
                           "blas_ms": statistics.median(blas)}
                    matmul_rows.append(row)
                    print(f"matmul N={n} threads={threads}: attn_matmul {row['ours_ms']:.2f} ms, "
                          f"OpenBLAS {row['blas_ms']:.2f} ms ({100 * row['blas_ms'] / row['ours_ms']:.0f} %)", flush=True)
        for worker in workers.values():
            worker.close()

    os.makedirs(args.out_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    md = markdown(results, list(infos), meta, infos)
    if bf16_rows:
        md += "\n" + markdown_bf16(bf16_rows, meta)
    if training_rows:
        md += "\n" + markdown_training(training_rows, meta)
    if matmul_rows:
        md += "\n" + markdown_matmul(matmul_rows, meta)
    md_path = os.path.join(args.out_dir, f"peers-{stamp}.md")
    csv_path = os.path.join(args.out_dir, f"peers-{stamp}.csv")
    with open(md_path, "w") as f:
        f.write(md)
    write_csv(csv_path, results, list(infos), meta)
    print()
    print(md)
    print(f"# written: {md_path}, {csv_path}")

    if not args.no_module:
        print()
        print(module_comparison(args, args.python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
