"""``compare``: every run of one or more studies (or single runs) scored alike, in one table and one figure.

Each run is evaluated on the same real split with the same seeds by the evaluation of the real
sample's kind (or its evaluation with those settings is read, see :mod:`.scoring`), so their
numbers compare with each other and with the one real-vs-real floor they share. Writes::

    OUT/compare.md, compare.csv, compare.json   every run's metrics (value and error) ranked by the
                                                metric, the floor, the best run per model and, for a
                                                study, the metric per value of each hyperparameter
    OUT/compare.pdf, compare.png                the ranked metric beside the floor, then the metric
                                                against each hyperparameter
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pcdata._io import write_json_atomic

from ..errors import EvaluationError, RunError
from .scoring import score_run, scorer_for

__all__ = ["compare", "collect"]


def collect(sources: Sequence[str | os.PathLike]) -> tuple[list[dict], list[dict]]:
    """The runs named by ``sources`` (run folders, or study folders for all their trials) and the
    studies among them (their ``study.json`` descriptions)."""
    from ..run import Run
    from .runner import storage_url, trial_dir
    from .trial import open_storage

    entries, studies = [], []
    for source in sources:
        path = Path(source)
        if (path / "study.json").exists():
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = json.loads((path / "study.json").read_text())["study"]
            studies.append(study)
            url = storage_url(study.get("storage"), path)
            db = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None
            if db is not None and not db.exists():
                raise RunError(f"{path}: a study folder without its database {db} (never started)")
            try:
                ostudy = optuna.load_study(study_name=study["name"], storage=open_storage(url))
            except KeyError:
                raise RunError(f"{path}: its storage {url} holds no study {study['name']!r} (never started)") from None
            for t in ostudy.get_trials(deepcopy=False):
                run = trial_dir(path, t.number)
                last = max(t.intermediate_values, default=None)
                entries.append({"label": f"{study['name']}/{t.number:04d}", "study": study["name"], "trial": t.number,
                                "model": study["model"], "state": t.state.name.lower(), "params": dict(t.params),
                                "run": str(run) if Run.exists(run) else None, "step": t.user_attrs.get("step"),
                                "last_report": None if last is None else t.intermediate_values[last],
                                "error": t.user_attrs.get("error")})
        elif Run.exists(path):
            run = Run.open(path)
            entries.append({"label": str(path), "study": None, "trial": None, "model": run.info["model"],
                            "state": "run", "params": {}, "run": str(path), "step": None, "last_report": None,
                            "error": None})
        else:
            raise RunError(f"{path}: neither a training run (run.json) nor a study folder (study.json)")
    return entries, studies


def compare(sources: Sequence[str | os.PathLike], out: str | os.PathLike, *, real: str | None = None,
            split: str | None = None, num: int | None = None, seed: int | None = None, metric: str | None = None,
            evaluate_pruned: bool = False, progress: bool = True) -> dict:
    """Score every run of ``sources`` alike and write the table and the figure to ``out``.

    Defaults come from the first study among the sources (its store, evaluation split, number of
    clouds, seed and metric), else: the runs' common store, split ``test``, 2000 clouds, seed 0,
    the first metric of the real sample's evaluation (``w1m`` for jets, ``auc_low`` for showers).
    Pruned trials are listed with the step they stopped at and their last validation report;
    ``evaluate_pruned`` scores them too (a sampling and an evaluation each).

    Raises:
        RunError: a source is neither a run nor a study folder.
        EvaluationError: the runs were trained on different stores and no ``real`` is given, the
            metric is not one of the evaluation's, or ``num`` is below what it needs.
    """
    from ..run import Run

    t0 = time.perf_counter()
    entries, studies = collect(sources)
    first = studies[0] if studies else {}
    split = split or first.get("split", "test")
    num = num or first.get("num", 2000)
    seed = first.get("seed", 0) if seed is None else seed
    if real is None:
        stores = {s["store"] for s in studies} | {Run.open(e["run"]).info["store"]["path"] for e in entries
                                                  if e["run"] and e["study"] is None}
        if len(stores) != 1:
            raise EvaluationError(f"the runs were trained on {len(stores)} stores ({', '.join(sorted(stores))}); "
                                  "give the real sample to compare with (--real)")
        real = stores.pop()
    scorer = scorer_for(real)
    metrics = scorer.metrics
    metric = metric or first.get("metric", metrics[0])
    if metric not in metrics:
        raise EvaluationError(f"metric: {metric!r} is not a metric of the {scorer.title} ({', '.join(metrics)})")
    if num < scorer.min_num:
        raise EvaluationError(f"num: the {scorer.title} needs at least {scorer.min_num} {scorer.clouds}, got {num}")
    direction = first.get("direction", scorer.direction)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EvaluationError(f"{out}: cannot create the output folder ({err.strerror or err})") from err

    floor = None
    for i, e in enumerate(entries):
        e["metrics"] = {}
        if e["run"] is None or Run.open(e["run"]).latest_checkpoint() is None:
            continue  # a trial that failed before its first checkpoint
        if e["state"] == "pruned" and not evaluate_pruned:
            continue
        if progress:
            print(f"[{time.perf_counter() - t0:6.1f}s] {i + 1}/{len(entries)} {e['label']}", file=sys.stderr, flush=True)
        report = score_run(e["run"], real, split=split, num=num, seed=seed, kind=scorer.kind)
        e["metrics"] = {m: dict(zip(("value", "error"), scorer.read(report, m))) for m in metrics}
        e["scale"] = {m: scorer.scale(report, m) for m in metrics}
        e["step"] = e["step"] if e["step"] is not None else _checkpoint_step(e["run"])
        if floor is None and report.get("floor"):
            floor = {m: {**dict(zip(("value", "error"), scorer.read(report["floor"], m))),
                         "scale": scorer.scale(report["floor"], m)} for m in metrics}
    sign = 1 if direction == "minimize" else -1
    # A metric the evaluation could not compute (None) ranks after every number.
    scored = sorted((e for e in entries if e["metrics"]),
                    key=lambda e: (e["metrics"][metric]["value"] is None, sign * (e["metrics"][metric]["value"] or 0)))
    entries = scored + [e for e in entries if not e["metrics"]]
    for rank, e in enumerate(entries, 1):
        e["rank"] = rank if e["metrics"] else None
    best = {}
    for e in scored:  # pruned trials stopped early: not candidates for a model's best
        if e["state"] in ("complete", "run") and e["model"] not in best:
            best[e["model"]] = e["label"]
            e["best_of_model"] = True
    params = list(dict.fromkeys(k for e in entries for k in e["params"]))
    effects = _effects(entries, params, metric, sign)
    result = {"settings": {"real": str(real), "kind": scorer.kind, "split": split, "num": num,
                           "num_real": num * scorer.real_per_num, "clouds": scorer.clouds, "seed": seed,
                           "metric": metric, "direction": direction, "metrics": list(metrics)},
              "runs": entries, "floor": floor, "best_per_model": best, "effects": effects, "params": params}
    write_json_atomic(out / "compare.json", result)
    _write_csv(out / "compare.csv", entries, params, floor, metrics)
    (out / "compare.md").write_text(_markdown(result), encoding="utf-8")
    result["figures"] = [p.name for p in _figure(out / "compare", entries, params, floor, metric)]
    write_json_atomic(out / "compare.json", result)
    return result


def _checkpoint_step(run: str) -> int | None:
    from ..run import Run

    ckpt = Run.open(run).latest_checkpoint()
    return int(ckpt.name.split("-")[-1]) if ckpt is not None else None


def _effects(entries: list[dict], params: list[str], metric: str, sign: int) -> dict:
    """Per hyperparameter and value: the metric's mean, best and count over the completed trials."""
    effects = {}
    for p in params:
        groups: dict[Any, list[float]] = {}
        for e in entries:
            if (p in e["params"] and e["metrics"] and e["state"] == "complete"
                    and e["metrics"][metric]["value"] is not None):
                groups.setdefault(e["params"][p], []).append(e["metrics"][metric]["value"])
        effects[p] = [{"value": v, "mean": float(np.mean(vs)), "best": sign * float(np.min(sign * np.asarray(vs))),
                       "n": len(vs)}
                      for v, vs in sorted(groups.items(), key=lambda kv: _sort_key(kv[0]))]
    return effects


def _sort_key(v: Any):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def _fmt(entry: dict | None) -> str:
    """``value ± error``; a metric without an error (an AUC) is its value alone."""
    if not entry:
        return ""
    if entry["value"] is None:
        return "n/a"
    return f"{entry['value']:.3g}" + ("" if entry["error"] is None else f" ± {entry['error']:.2g}")


def _cell(x: float | None) -> Any:
    return "" if x is None else x


def _value(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _write_csv(path: Path, entries: list[dict], params: list[str], floor: dict | None,
               metrics: Sequence[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "run", "model", "state", "step", "last_validation", *params,
                    *(c for m in metrics for c in (m, f"{m}_error")), "best_of_model"])
        for e in entries:
            w.writerow([e["rank"] or "", e["label"], e["model"], e["state"], e["step"] if e["step"] is not None else "",
                        "" if e["last_report"] is None else e["last_report"],
                        *(e["params"].get(p, "") for p in params),
                        *(_cell(x) for m in metrics for x in ((e["metrics"][m]["value"], e["metrics"][m]["error"])
                                                              if e["metrics"] else (None, None))),
                        bool(e.get("best_of_model"))])
        if floor:
            w.writerow(["", "real-vs-real floor", "", "", "", "", *([""] * len(params)),
                        *(_cell(x) for m in metrics for x in (floor[m]["value"], floor[m]["error"])), ""])


def _markdown(result: dict) -> str:
    s, params, floor = result["settings"], result["params"], result["floor"]
    metrics = s["metrics"]
    scale = next((e["scale"] for e in result["runs"] if e.get("scale")), {})
    units = ", ".join(f"{m} x1e-{round(math.log10(scale[m]))}" for m in metrics if scale.get(m, 1) > 1)
    lines = [f"# Comparison: {len(result['runs'])} runs ranked by {s['metric']} ({s['direction']})", "",
             f"Every run: {s['num']} generated {s['clouds']} against at most {s['num_real']} real {s['clouds']} of "
             f"split `{s['split']}` of `{s['real']}`, seed {s['seed']}; values ± errors in the evaluation's units"
             + (f" ({units})" if units else "") + "; a value without an error has none (a classifier's AUC or JSD).",
             "",
             "| rank | run | model | state | step | last validation | " + "".join(f"{p} | " for p in params)
             + " | ".join(metrics) + " |",
             "|" + "---|" * (6 + len(params) + len(metrics))]
    for e in result["runs"]:
        mark = " **(best of model)**" if e.get("best_of_model") else ""
        cells = [str(e["rank"] or "-"), e["label"] + mark, e["model"], e["state"], str(e["step"] or "-"),
                 "-" if e["last_report"] is None else f"{e['last_report']:.4g}",
                 *(_value(e["params"].get(p, "")) for p in params),
                 *(_fmt(e["metrics"].get(m)) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    if floor:
        lines.append("| | real-vs-real floor | | | | | " + "".join(" | " for _ in params)
                     + " | ".join(_fmt(floor[m]) for m in metrics) + " |")
    lines += ["", "## Best per model", "", "| model | run | " + f"{s['metric']} |", "|---|---|---|"]
    by_label = {e["label"]: e for e in result["runs"]}
    for model, label in result["best_per_model"].items():
        lines.append(f"| {model} | {label} | {_fmt(by_label[label]['metrics'][s['metric']])} |")
    if params:
        lines += ["", f"## Effect of each hyperparameter on {s['metric']} (completed trials)", ""]
        for p, rows in result["effects"].items():
            lines += [f"### {p}", "", f"| value | mean {s['metric']} | best | trials |", "|---|---|---|---|"]
            lines += [f"| {_value(r['value'])} | {r['mean']:.3g} | {r['best']:.3g} | {r['n']} |" for r in rows]
            lines.append("")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _style():
    import matplotlib as mpl

    try:
        import mplhep

        with mpl.style.context(mplhep.style.ROOT), mpl.rc_context({"font.size": 11, "axes.labelsize": 11,
                                                                    "legend.fontsize": 8, "xtick.labelsize": 8,
                                                                    "ytick.labelsize": 9}):
            yield
    except ImportError:  # plain matplotlib style; the figure stays the same
        yield


def _figure(stem: Path, entries: list[dict], params: list[str], floor: dict | None, metric: str) -> list[Path]:
    """The ranked metric with errors beside the floor band, then the metric against each hyperparameter."""
    from matplotlib.figure import Figure

    scored = [e for e in entries if e["metrics"] and e["metrics"][metric]["value"] is not None]
    models = list(dict.fromkeys(e["model"] for e in scored))
    colours = {m: f"C{i}" for i, m in enumerate(models)}
    scale = scored[0]["scale"][metric] if scored else 1
    unit = f" [x1e-{round(math.log10(scale))}]" if scale > 1 else ""
    with _style():
        fig = Figure(figsize=(5.5 + 4.0 * len(params), 4.8), layout="constrained")
        axes = fig.subplots(1, 1 + len(params), squeeze=False)[0]

        def band(ax) -> None:
            if floor and floor[metric]["value"] is not None:
                f = floor[metric]
                if f["error"] is not None:  # a metric without an error (an AUC) is a line alone
                    ax.axhspan(f["value"] - f["error"], f["value"] + f["error"], color="grey", alpha=0.3, lw=0)
                ax.axhline(f["value"], color="grey", lw=1, label="real-vs-real floor")

        ax = axes[0]
        band(ax)
        for i, e in enumerate(scored):
            m = e["metrics"][metric]
            hollow = e["state"] not in ("complete", "run")
            ax.errorbar([i], [m["value"]], yerr=[m["error"] or 0], fmt="*" if e.get("best_of_model") else "o",
                        ms=12 if e.get("best_of_model") else 6, color=colours[e["model"]],
                        mfc="white" if hollow else colours[e["model"]],
                        label=e["model"] if e["label"] == next(x["label"] for x in scored if x["model"] == e["model"])
                        else None)
        ax.set_xticks(range(len(scored)), [e["label"].split("/")[-1] if e["study"] else Path(e["label"]).name
                                           for e in scored], rotation=60, ha="right")
        ax.set_xlabel("run, ranked (hollow: pruned; star: best of its model)")
        ax.set_ylabel(f"{metric}{unit}")
        ax.legend(frameon=False)
        for ax, p in zip(axes[1:], params):
            band(ax)
            rows = [e for e in scored if p in e["params"]]
            values = [e["params"][p] for e in rows]
            everyone = [e["params"][p] for e in entries if p in e["params"]]
            distinct = sorted(set(everyone), key=_sort_key)
            if len(distinct) <= 8:  # a list of values: one evenly spaced position each, their mean joined
                xs = np.asarray([distinct.index(v) for v in values], float)
                ax.set_xticks(range(len(distinct)), [_value(v) for v in distinct])
                ax.set_xlim(-0.5, len(distinct) - 0.5)
                for i, d in enumerate(distinct):  # what the scored points leave out
                    left = sum(1 for e in entries if e["params"].get(p) == d and not e["metrics"])
                    if left:
                        ax.annotate(f"{left} not scored\n(pruned/failed)", (i, 0.12), xycoords=("data", "axes fraction"),
                                    ha="center", fontsize=7, color="grey")
                means = [np.mean([e["metrics"][metric]["value"] for e, v in zip(rows, values)
                                  if v == d and e["state"] in ("complete", "run")] or [np.nan]) for d in distinct]
                ax.plot(range(len(distinct)), means, color="black", lw=1, ls="--", label="mean of completed")
                ax.legend(frameon=False)
            else:  # a range: the values themselves
                xs = np.asarray(values, float)
                if len(xs) and xs.min() > 0 and xs.max() / xs.min() >= 10:
                    ax.set_xscale("log")
            for x, e in zip(xs, rows):
                m = e["metrics"][metric]
                hollow = e["state"] not in ("complete", "run")
                ax.errorbar([x], [m["value"]], yerr=[m["error"] or 0], fmt="o", color=colours[e["model"]],
                            mfc="white" if hollow else colours[e["model"]])
            ax.set_xlabel(p)
            ax.set_ylabel(f"{metric}{unit}")
        paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
        fig.savefig(paths[0])
        fig.savefig(paths[1], dpi=120)
    return paths
