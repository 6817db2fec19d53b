"""``python -m mlplab --help``: how to call, every config group with its options, every key
with its default and meaning, examples and the exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from mlplab.config import CLI_KEYS, CONF_DIR


def usage() -> str:
    """The usage text, from the configs in ``CONF_DIR`` (composed by Hydra for the defaults)
    and the RunSpec fields' docs."""
    from hydra import compose, initialize_config_dir

    from mlplab.spec import FIELDS

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config")
    groups = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir())
    options = {g: ", ".join(sorted(q.stem for q in (Path(CONF_DIR) / g).glob("*.yaml"))) for g in groups}
    docs = {f.metadata["key"]: f.metadata["doc"] for f in FIELDS if f.metadata["config"]}
    docs.update({name: doc for name, _, _, doc in CLI_KEYS})
    keys = []
    for f in FIELDS:
        if f.metadata["config"] and not f.metadata["group"]:
            keys.append(f.metadata["key"])
    keys += [name for name, *_ in CLI_KEYS]
    prog = "mlplab" if Path(sys.argv[0]).stem == "mlplab" else "python -m mlplab"  # the command, or the module
    pad = " " * (len(prog) - len("python -m mlplab"))
    lines = [
        f"usage: {prog} [KEY=VALUE ...]              {pad}one run",
        f"       {prog} -m [KEY=V1,V2,... ...]       {pad}a sweep: every combination of the values",
        f"       {prog} -m sweep=NAME [KEY=... ...]  {pad}a sweep declared in conf/sweep/NAME.yaml",
        f"configs: {CONF_DIR} (your own sweep files: hydra.searchpath=[file://FOLDER] with FOLDER/sweep/NAME.yaml)",
        "",
        "Trains multilayer perceptrons by exact backprop and records per-layer gradient norms as",
        "parquet tables in <results_dir>/<sweep_name>/ (runs/, steps/, layers/). A run already",
        "done is skipped: rerun a command to resume it.",
        "",
        "config groups (GROUP=OPTION; default in brackets):",
    ]
    for g in groups:
        chosen = OmegaConf.select(cfg, f"{g}.name") if g != "sweep" else None
        opts = ", ".join(f"[{o}]" if o == chosen else o for o in options[g].split(", "))
        lines.append(f"  {g:<12}{opts}")
    lines += ["", "keys (KEY=VALUE; default in brackets):"]
    for k in keys:
        default = OmegaConf.select(cfg, k)
        default = "null" if default is None else str(default).lower() if isinstance(default, bool) else default
        lines.append(f"  {k:<20}{'[' + str(default) + ']':<10} {docs.get(k, '')}".rstrip())
    lines += [
        "",
        "examples:",
        f"  {prog} depth=8 activation=relu loss=bce train.lr=0.1",
        f"  {prog} residual=true norm=batch depth=16 init=orthogonal",
        f"  {prog} -m depth=1,4,16 norm=none,batch seed=0,1,2 sweep_name=mine",
        f"  {prog} -m sweep=default hydra.launcher.n_workers=2",
        "",
        "exit codes: 0 every run ok or diverged (divergence is data), 1 a run failed or is missing",
        "(or the disk is full: free space and rerun), 2 bad input (nothing is run), 130 interrupted",
        "(rerun to resume). debug=true shows tracebacks; --hydra-help shows Hydra's own options.",
    ]
    return "\n".join(lines)
