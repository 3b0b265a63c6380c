#!/usr/bin/env python3
"""Performance model of one GPU training step, checked without a GPU.

Input: the emulated CUDA device's counters of a run (SCDREAMER_EMULATE_CUDA_STATS=FILE, see
emu/README.md): per kernel, the launches within training steps, the bytes of the buffers each
launch was passed and, for cuBLAS, the exact FLOPs. Output: a table per kernel (launches, MB and
GFLOP per step, predicted microseconds per step on each GPU) and the predicted time per step and
per epoch of N cells.

The model (stated so a GPU measurement can refute it):
  kernel time   = max(floor, bytes / (eff_bw * BW), flops / (eff_fp32 * FP32))
                  (+ f64 work of the ZINB/NB kernels at FP64 speed)
  device step   = sum of kernel times
  host step     = launches * t_launch (no CUDA graph: each launch costs the host 3-5 us)
  step          = max(device step, host step)  (launches are asynchronous: whichever is slower)
  epoch         = ceil(N / batch) * step + reads * t_sync  (the running sums, <= 10 per epoch)
Bytes are upper bounds: a launch is charged every buffer it was passed, whole (the resident
dataset too: run the emulator on a dataset of a few minibatches, e.g. 2 x batch cells).

  python3 bench/gpu_model.py STATS.json --batch 1024 --genes 2000 [--cells 1000000]
      [--measured-epoch-s S --gpu h100]   (prints measured beside predicted)
"""
import argparse
import json
import math

GPUS = {
    # name: (HBM bytes/s, FP32 FLOP/s, FP64 FLOP/s)
    "h100": (3.35e12, 67e12, 34e12),
    "h200": (4.8e12, 67e12, 34e12),
}
EFF_BW = 0.8  # share of peak bandwidth a streaming kernel reaches
EFF_FP32 = 0.6  # share of peak FP32 cuBLAS SGEMM reaches at these shapes (no TF32)
FLOOR_S = 2e-6  # a kernel's minimum time on the device
LAUNCH_S = (3e-6, 5e-6)  # host cost per launch without graphs (low, high)
SYNC_S = 20e-6  # one device-to-host read of the running sums
READS_PER_EPOCH = 10
# f64 operations per matrix element of the fused likelihood kernels (lgamma/digamma/log/exp in
# f64: a count of the kernels' arithmetic, rounded up).
LIKELIHOOD_F64_PER_ELEMENT = 400
LIKELIHOOD_KERNELS = ("zinb", "nb_")


def kernel_time(name, k, steps, batch, genes, gpu):
    bw, fp32, fp64 = GPUS[gpu]
    launches = k["launches"] / steps
    per_launch_bytes = k["bytes"] / max(k["launches"], 1)
    per_launch_flops = k["flops"] / max(k["launches"], 1)
    t = max(FLOOR_S, per_launch_bytes / (EFF_BW * bw), per_launch_flops / (EFF_FP32 * fp32))
    if name.startswith(LIKELIHOOD_KERNELS):
        t = max(t, batch * genes * LIKELIHOOD_F64_PER_ELEMENT / fp64)
    return launches * t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("stats")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--measured-epoch-s", type=float)
    ap.add_argument("--gpu", default="h100", choices=sorted(GPUS))
    ap.add_argument("--quiet", action="store_true", help="only the summary lines")
    a = ap.parse_args()
    s = json.load(open(a.stats))
    steps = len(s["steps"])
    if steps == 0:
        raise SystemExit(f"{a.stats}: no closed training step in the counters")
    kernels = s["step_kernels"]
    rows = []
    for name, k in kernels.items():
        rows.append((
            name,
            k["launches"] / steps,
            k["bytes"] / steps / 1e6,
            k["flops"] / steps / 1e9,
            {g: kernel_time(name, k, steps, a.batch, a.genes, g) for g in GPUS},
        ))
    rows.sort(key=lambda r: -r[4]["h100"])
    launches = sum(r[1] for r in rows)
    h2d = sum(r["h2d"] for r in s["steps"]) / steps
    d2h = sum(r["d2h"] for r in s["steps"]) / steps
    syncs = sum(r["syncs"] for r in s["steps"]) / steps
    if not a.quiet:
        print(f"counters: {a.stats}, {steps} closed steps at batch {a.batch}, {a.genes} genes")
        print("| kernel | launches/step | MB/step (upper bound) | GFLOP/step | H100 us/step | H200 us/step |")
        print("|---|--:|--:|--:|--:|--:|")
        for name, l, mb, gf, t in rows:
            print(f"| {name} | {l:.1f} | {mb:.2f} | {gf:.3f} | {t['h100'] * 1e6:.1f} | {t['h200'] * 1e6:.1f} |")
        print(f"| total | {launches:.1f} | {sum(r[2] for r in rows):.2f} | {sum(r[3] for r in rows):.3f} "
              f"| {sum(r[4]['h100'] for r in rows) * 1e6:.1f} | {sum(r[4]['h200'] for r in rows) * 1e6:.1f} |")
        print(f"per step: {launches:.0f} launches, {h2d:.2f} host-to-device copies, "
              f"{d2h:.2f} device-to-host copies, {syncs:.2f} synchronisations (means)")
    n_steps = math.ceil(a.cells / a.batch)
    for g in sorted(GPUS):
        dev = sum(r[4][g] for r in rows)
        lo, hi = (launches * t for t in LAUNCH_S)
        step_lo, step_hi = max(dev, lo), max(dev, hi)
        epoch_lo = n_steps * step_lo + READS_PER_EPOCH * SYNC_S
        epoch_hi = n_steps * step_hi + READS_PER_EPOCH * SYNC_S
        bound = "launch-bound" if hi > dev else "device-bound"
        line = (f"{g.upper()}: step {step_lo * 1e3:.3f}-{step_hi * 1e3:.3f} ms (device {dev * 1e3:.3f} ms, "
                f"host launches {lo * 1e3:.3f}-{hi * 1e3:.3f} ms, {bound}); epoch of {a.cells:,} cells "
                f"at batch {a.batch}: {epoch_lo:.2f}-{epoch_hi:.2f} s predicted")
        if a.measured_epoch_s is not None and g == a.gpu:
            line += f"; measured {a.measured_epoch_s:.2f} s ({a.measured_epoch_s / epoch_hi:.2f}x the upper prediction)"
        print(line)


if __name__ == "__main__":
    main()
