"""CLI: ``python reference_data/cr_sb2te3/generate.py doped|pretrain|assemble ...``.

Every finished task (one MD trajectory, or one chunk of pre-training single
points) is written atomically to its own file under ``--work-dir`` at once; a
rerun skips finished tasks. ``--max-minutes`` stops launching new tasks (exit
0, with the number left) so a time-limited command can simply be rerun.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .labels import pretrain_task
from .md import doped_task, init_worker
from .provenance import derive_seed, write_atomic_text, write_extxyz_gz, write_provenance

TEMPERATURES_K: tuple[float, ...] = (300.0, 600.0, 1200.0)
FRICTION_PER_FS: float = 0.02
PRETRAIN_CHUNK: int = 25


def log(msg: str) -> None:
    print(f"[datagen {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- planning
def dopant_combos() -> list[tuple[int, str, str]]:
    """All (n_Cr, sites, arrangement) combinations with n_Cr in 1..7."""
    combos: list[tuple[int, str, str]] = [(1, "substitutional", "single"), (1, "interstitial", "single")]
    for n in range(2, 8):
        for sites in ("substitutional", "interstitial", "mixed"):
            for arr in ("clustered", "isolated"):
                combos.append((n, sites, arr))
    return combos


def dopant_configs(n_configs: int, seed: int) -> list[tuple[int, str, str]]:
    """``n_configs`` dopant configurations: round 0 is every combo once (in a
    seeded order) plus one undoped cell; later rounds are reshuffled repeats."""
    base = dopant_combos()
    out: list[tuple[int, str, str]] = []
    r = 0
    while len(out) < n_configs:
        perm = np.random.default_rng(derive_seed(seed, "combo-order", r)).permutation(len(base))
        block = [base[i] for i in perm]
        if r == 0:
            block.append((0, "none", "none"))
        out.extend(block)
        r += 1
    return out[:n_configs]


def plan_doped(args: argparse.Namespace) -> list[dict[str, Any]]:
    from .md import TrajectorySpec

    specs = []
    for ci, (n, sites, arr) in enumerate(dopant_configs(args.n_configs, args.seed)):
        cfg_seed = derive_seed(args.seed, "config", ci)
        for temp in TEMPERATURES_K:
            tid = f"c{ci:03d}_n{n}_{sites[:3]}_{arr[:3]}_T{int(temp)}"
            specs.append(TrajectorySpec(
                trajectory=tid, config_index=ci, n_Cr=n, cr_sites=sites, cr_arrangement=arr,
                config_seed=cfg_seed, temperature_K=temp, seed=derive_seed(args.seed, "traj", tid),
                frames=args.frames, spacing=args.spacing, equil_steps=args.equil_steps,
                timestep_fs=args.timestep_fs, friction_per_fs=FRICTION_PER_FS,
            ).to_dict())
    return specs


def assign_splits(groups: dict[str, list[str]], seed: int, fractions: tuple[float, ...],
                  names: tuple[str, ...]) -> dict[str, str]:
    """Seeded split of whole groups (group -> member ids) into ``names``.

    Every non-first split gets at least one group when there are enough groups.
    """
    keys = sorted(groups)
    perm = [keys[i] for i in np.random.default_rng(derive_seed(seed, "split")).permutation(len(keys))]
    n = len(perm)
    sizes = [int(round(f * n)) for f in fractions[1:]]
    if n >= len(names):
        sizes = [max(1, s) for s in sizes]
    out: dict[str, str] = {}
    start = 0
    for name, size in zip(names[1:], sizes):
        for g in perm[start:start + size]:
            out.update({m: name for m in groups[g]})
        start += size
    for g in perm[start:]:
        out.update({m: names[0] for m in groups[g]})
    return out


def run_tasks(tasks: list[dict[str, Any]], fn: Callable[..., dict[str, Any]], args: argparse.Namespace,
              out_dir: Path) -> int:
    """Run the unfinished ``tasks`` in a spawn pool; return how many remain."""
    pending = [t for t in tasks if not (out_dir / f"{t['_id']}.json").exists()]
    log(f"{len(tasks) - len(pending)}/{len(tasks)} tasks already done, {len(pending)} to run "
        f"on {args.workers} workers ({args.device})")
    if not pending:
        return 0
    t_start = time.perf_counter()
    limit = args.max_minutes * 60.0 if args.max_minutes else math.inf
    durations: list[float] = []
    failed = 0
    ctx = get_context("spawn")  # CUDA cannot be forked
    running: dict[Future, dict[str, Any]] = {}
    queue = list(pending)
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx, initializer=init_worker) as ex:
        while queue or running:
            elapsed = time.perf_counter() - t_start
            est = float(np.median(durations)) if durations else 0.0
            while queue and len(running) < args.workers and elapsed + est < limit:
                t = queue.pop(0)
                payload = {k: v for k, v in t.items() if k != "_id"}
                running[ex.submit(fn, payload, args.device, str(out_dir))] = t
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                t = running.pop(fut)
                try:
                    stats = fut.result()
                except BrokenProcessPool as exc:
                    raise SystemExit(
                        f"error: a worker process died ({exc}); finished tasks are kept in "
                        f"{out_dir}; rerun (fewer --workers if memory ran out)"
                    ) from exc
                except Exception as exc:  # report and keep going; a rerun retries it
                    failed += 1
                    log(f"FAILED {t['_id']}: {type(exc).__name__}: {exc}")
                    continue
                durations.append(stats["wall_seconds"])
                write_atomic_text(out_dir / f"{t['_id']}.json", json.dumps({"task": t, "stats": stats}) + "\n")
                n_done = len(durations)
                el = time.perf_counter() - t_start
                left = len(queue) + len(running)
                eta = el / n_done * left / 1.0 if n_done else float("nan")
                extra = f", {stats['seconds_per_md_step']:.3f} s/MD step" if "seconds_per_md_step" in stats else ""
                log(f"done {t['_id']} in {stats['wall_seconds']:.1f} s{extra} | "
                    f"{len(tasks) - len(pending) + n_done}/{len(tasks)} | elapsed {el:.0f} s, ETA {eta:.0f} s")
    remaining = sum(1 for t in tasks if not (out_dir / f"{t['_id']}.json").exists())
    if remaining:
        why = f"{failed} failed" if failed else f"--max-minutes {args.max_minutes} reached"
        log(f"stopping with {remaining}/{len(tasks)} tasks left ({why}); rerun the same command to continue")
    return remaining


def _check_plan(work: Path, plan: dict[str, Any]) -> None:
    path = work / "plan.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != plan:
            raise SystemExit(
                f"error: {path} was made with different parameters; use the same options, "
                "or a fresh --work-dir"
            )
    else:
        write_atomic_text(path, json.dumps(plan, indent=1, sort_keys=True) + "\n")


# ----------------------------------------------------------------- commands
def cmd_doped(args: argparse.Namespace) -> int:
    work = Path(args.work_dir)
    specs = plan_doped(args)
    params = {k: getattr(args, k) for k in ("n_configs", "frames", "spacing", "equil_steps", "timestep_fs", "seed")}
    params.update(friction_per_fs=FRICTION_PER_FS, temperatures_K=list(TEMPERATURES_K), rattle_A=0.02)
    _check_plan(work, {"kind": "doped", "parameters": params, "trajectories": specs})
    (work / "traj").mkdir(parents=True, exist_ok=True)
    tasks = [dict(s, _id=s["trajectory"]) for s in specs]
    if run_tasks(tasks, doped_task, args, work / "traj"):
        return 0
    return cmd_assemble(args)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .structures import PRETRAIN_FAMILIES

    work = Path(args.work_dir)
    fams = [PRETRAIN_FAMILIES[i % len(PRETRAIN_FAMILIES)] for i in range(args.n)]
    chunks = []
    for k in range(0, args.n, PRETRAIN_CHUNK):
        idx = list(range(k, min(k + PRETRAIN_CHUNK, args.n)))
        chunks.append({"id": f"chunk{k // PRETRAIN_CHUNK:04d}", "indices": idx,
                       "families": [fams[i] for i in idx], "seed": args.seed})
    plan = {"kind": "pretrain", "parameters": {"n": args.n, "seed": args.seed, "strain": 0.03,
            "rattle_A": [0.03, 0.1], "min_pair_A": 1.8}, "chunks": chunks}
    _check_plan(work, plan)
    (work / "chunks").mkdir(parents=True, exist_ok=True)
    tasks = [dict(c, _id=c["id"]) for c in chunks]
    if run_tasks(tasks, pretrain_task, args, work / "chunks"):
        return 0
    return cmd_assemble(args)


def cmd_assemble(args: argparse.Namespace) -> int:
    from ase.io import read

    work, out = Path(args.work_dir), Path(args.out_dir)
    plan_path = work / "plan.json"
    if not plan_path.exists():
        raise SystemExit(f"error: {plan_path} not found; run 'doped' or 'pretrain' with this --work-dir first")
    plan = json.loads(plan_path.read_text())
    seed = int(plan["parameters"]["seed"])
    sub = "traj" if plan["kind"] == "doped" else "chunks"
    ids = [t["trajectory"] for t in plan["trajectories"]] if plan["kind"] == "doped" else [c["id"] for c in plan["chunks"]]
    missing = [i for i in ids if not (work / sub / f"{i}.json").exists()]
    if missing:
        raise SystemExit(f"error: {len(missing)}/{len(ids)} tasks unfinished in {work / sub} "
                         f"(e.g. {missing[:3]}); rerun the generating command first")
    frames_by_id = {i: read(work / sub / f"{i}.extxyz", index=":") for i in ids}
    stats = [json.loads((work / sub / f"{i}.json").read_text())["stats"] for i in ids]
    if plan["kind"] == "doped":
        groups: dict[str, list[str]] = {}
        for t in plan["trajectories"]:
            groups.setdefault(str(t["config_index"]), []).append(t["trajectory"])
        if len(groups) < 3:  # tiny smoke runs: split trajectories, not configurations
            groups = {i: [i] for i in ids}
        names, fracs = ("train", "valid", "test"), (0.8, 0.1, 0.1)
        split_of = assign_splits(groups, seed, fracs, names)
        count_keys = ("temperature_K", "config_type", "n_Cr", "cr_sites", "cr_arrangement")
    else:
        all_frames = [a for i in ids for a in frames_by_id[i]]
        by_fam: dict[str, list[str]] = {}
        for a in all_frames:
            by_fam.setdefault(a.info["config_type"], []).append(str(a.info["index"]))
        split_of = {}
        names, fracs = ("train", "valid"), (0.9, 0.1)
        for fam, members in sorted(by_fam.items()):  # stratified by family
            split_of.update(assign_splits({m: [m] for m in members}, derive_seed(seed, fam), fracs, names))
        count_keys = ("config_type",)
    split_frames: dict[str, list[Any]] = {n: [] for n in names}
    for i in ids:
        for a in frames_by_id[i]:
            key = i if plan["kind"] == "doped" else str(a.info["index"])
            a.info["split"] = split_of[key]
            a.calc = None
            split_frames[split_of[key]].append(a)
    empty = [n for n, f in split_frames.items() if not f]
    if empty:
        log(f"warning: splits {empty} are empty (too few tasks); they are not written")
    for n, f in split_frames.items():
        if f:
            write_extxyz_gz(out / f"{n}.extxyz.gz", f)
    extra: dict[str, Any] = {"n_tasks": len(ids), "split_method": (
        "whole dopant configurations (all their temperatures) per split, seeded" if plan["kind"] == "doped"
        else "per config_type family, seeded 90/10")}
    if plan["kind"] == "doped":
        extra["trajectories"] = [dict(t, split=split_of[t["trajectory"]]) for t in plan["trajectories"]]
        extra["md_seconds_per_step_median"] = float(np.median([s["seconds_per_md_step"] for s in stats]))
        extra["thermostat"] = "ase.md.langevin.Langevin (NVT), fixcm=True"
    extra["compute_seconds_total"] = float(sum(s["wall_seconds"] for s in stats))
    written = {n: f for n, f in split_frames.items() if f}
    p = write_provenance(out, plan["kind"], plan["parameters"], extra, written, count_keys)
    log("wrote " + ", ".join(f"{n}: {len(f)} frames" for n, f in written.items()) + f"; {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python reference_data/cr_sb2te3/generate.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, work_default: str | None) -> None:
        p.add_argument("--out-dir", required=True, help="where the final *.extxyz.gz and PROVENANCE.json go")
        p.add_argument("--work-dir", default=work_default, required=work_default is None,
                       help="per-task files (resumable)")
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
        p.add_argument("--seed", type=int, default=2026)
        p.add_argument("--max-minutes", type=float, default=None,
                       help="stop launching new tasks after this wall time (exit 0; rerun to continue)")

    d = sp.add_parser("doped", help="Langevin MD of Cr-doped Sb2Te3 (120-atom cell), CHGNet labels")
    common(d, None)
    d.add_argument("--n-configs", type=int, default=50, help="dopant configurations (each at 300/600/1200 K)")
    d.add_argument("--frames", type=int, default=20)
    d.add_argument("--spacing", type=int, default=25, help="MD steps between kept frames")
    d.add_argument("--equil-steps", type=int, default=100)
    d.add_argument("--timestep-fs", type=float, default=4.0)
    d.set_defaults(func=cmd_doped)
    p = sp.add_parser("pretrain", help="single points of diverse small Sb-Te-Cr cells")
    common(p, "/tmp/datagen_pretrain_work")
    p.add_argument("--n", type=int, default=2000)
    p.set_defaults(func=cmd_pretrain)
    a = sp.add_parser("assemble", help="merge finished per-task files into the final datasets")
    a.add_argument("--work-dir", required=True)
    a.add_argument("--out-dir", required=True)
    a.set_defaults(func=cmd_assemble)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("workers", "n_configs", "frames", "spacing", "n"):
        if getattr(args, name, 1) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1")
    if getattr(args, "equil_steps", 0) < 0:
        raise SystemExit("error: --equil-steps must be >= 0")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
